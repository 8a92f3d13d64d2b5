//! The message bus seam between FerroStack services, in the manner of
//! oslo.messaging RPC: `cast` (fire and forget to one consumer of a topic),
//! `call` (request/reply to one consumer, with a timeout) and `fanout` (a copy
//! to every subscriber), carried as JSON [`Envelope`]s. This crate owns the
//! [`Bus`] trait, the delivery/acknowledgement model (at-least-once: a
//! [`Delivery`] dropped without `ack`/`reply` is redelivered), the in-process
//! [`MemoryBus`] backend, the RabbitMQ backend `AmqpBus` (cargo feature
//! `amqp`, on by default), the [`connect`] URL dispatcher and the backend
//! [`contract`] test suite every backend must pass. It must not know about any
//! service, RPC method or payload schema, and it must not grow a backend
//! without also running [`contract::run_all`] against it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "amqp")]
mod amqp;
pub mod contract;
mod memory;

#[cfg(feature = "amqp")]
pub use amqp::{AmqpBus, AmqpConfig};
pub use memory::MemoryBus;

/// Errors of every bus operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BusError {
    /// A `call` got no reply within its timeout.
    #[error("no reply on topic {topic:?} within {timeout:?}")]
    Timeout {
        /// The topic the call was sent to.
        topic: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The handler of a `call` replied with an error.
    #[error("remote handler failed: {message}")]
    Remote {
        /// The handler's error message.
        message: String,
    },
    /// The bus URL names a backend this build does not provide.
    #[error("unsupported bus backend: {0}")]
    Unsupported(String),
    /// The bus URL could not be understood.
    #[error("invalid bus URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The bus (or the consumer side of a call) went away before the
    /// operation completed.
    #[error("message bus closed")]
    Closed,
    /// A backend's transport failed (broker connection, channel, encoding).
    #[error("message bus transport error: {0}")]
    Transport(String),
}

/// One message on the bus: routing information plus a JSON payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The topic the message was sent to. The `topic` argument of
    /// [`Bus::cast`]/[`Bus::call`]/[`Bus::fanout`] is authoritative: the bus
    /// overwrites this field with it before delivery.
    pub topic: String,
    /// The method (operation name) the receiver should perform.
    pub method: String,
    /// The request id of the API request that caused this message, if any,
    /// carried end to end for log correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The method's arguments.
    pub payload: Value,
}

impl Envelope {
    /// A new envelope without a request id.
    pub fn new(topic: impl Into<String>, method: impl Into<String>, payload: Value) -> Self {
        Self {
            topic: topic.into(),
            method: method.into(),
            request_id: None,
            payload,
        }
    }

    /// The same envelope carrying `request_id`.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }
}

/// A message bus backend. Object safe: services hold an `Arc<dyn Bus>`.
///
/// Topics used with `cast`/`call` (work queues) and topics used with
/// `fanout` are separate namespaces.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Sends `msg` to exactly one consumer of `topic` (competing consumers,
    /// dispatched round robin). With no consumer yet the message waits in the
    /// topic's queue until one subscribes.
    async fn cast(&self, topic: &str, msg: Envelope) -> Result<(), BusError>;

    /// Sends `msg` to one consumer of `topic` and waits for its reply.
    /// Fails with [`BusError::Timeout`] when no reply arrives within
    /// `timeout` (a request not yet picked up by then is discarded), and with
    /// [`BusError::Remote`] when the handler replies with an error.
    async fn call(&self, topic: &str, msg: Envelope, timeout: Duration) -> Result<Value, BusError>;

    /// Sends a copy of `msg` to every current fanout subscriber of `topic`.
    /// With no subscriber the message is dropped (not an error).
    async fn fanout(&self, topic: &str, msg: Envelope) -> Result<(), BusError>;

    /// Becomes a (competing) consumer of the work queue `topic`.
    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError>;

    /// Becomes a subscriber of the fanout `topic`; only messages fanned out
    /// after this returns are received.
    async fn subscribe_fanout(&self, topic: &str) -> Result<Subscription, BusError>;
}

/// Opens the bus named by `url`:
/// - `memory://` (anything after the scheme is ignored) opens a new,
///   private [`MemoryBus`];
/// - `amqp://user:password@host:port/vhost` opens an `AmqpBus` with the
///   default [`AmqpConfig`] (names prefixed `ferro.`); it connects on first
///   use. It fails with [`BusError::Unsupported`] for `amqps://` (no TLS in
///   this build) and when built without the `amqp` feature.
pub fn connect(url: &str) -> Result<Arc<dyn Bus>, BusError> {
    let Some((scheme, _rest)) = url.split_once("://") else {
        return Err(BusError::InvalidUrl {
            url: url.to_owned(),
            reason: "expected <scheme>://…, e.g. memory:// or amqp://host".to_owned(),
        });
    };
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => Ok(Arc::new(MemoryBus::new())),
        "amqp" | "amqps" => connect_amqp(url),
        other => Err(BusError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("unknown scheme {other:?} (supported: memory, amqp)"),
        }),
    }
}

/// Splits a `prefix=<name>` query parameter (the bus's name prefix, so several clouds can
/// share one broker) off an AMQP URL.
fn split_prefix(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut prefix = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("prefix=") {
            Some(p) => {
                prefix = Some(p.to_owned());
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    if rest.is_empty() {
        (base.to_owned(), prefix)
    } else {
        (format!("{base}?{}", rest.join("&")), prefix)
    }
}

#[cfg(feature = "amqp")]
fn connect_amqp(url: &str) -> Result<Arc<dyn Bus>, BusError> {
    let (url, prefix) = split_prefix(url);
    let mut config = AmqpConfig::new(&url);
    if let Some(p) = prefix {
        config = config.with_prefix(p);
    }
    Ok(Arc::new(AmqpBus::new(config)?))
}

#[cfg(not(feature = "amqp"))]
fn connect_amqp(_url: &str) -> Result<Arc<dyn Bus>, BusError> {
    Err(BusError::Unsupported(
        "amqp:// (ferro-bus was built without its `amqp` feature)".to_owned(),
    ))
}

/// The backend side of a [`Subscription`]. Implemented by bus backends, not
/// by services.
#[async_trait]
pub trait SubscriptionSource: Send {
    /// The next delivery, or `None` once the bus is gone. Must be cancel
    /// safe: dropping the future before it completes loses no message.
    async fn next(&mut self) -> Option<Delivery>;
}

/// A stream of [`Delivery`]s from one subscription. Dropping it
/// unsubscribes; messages handed to it but not yet taken with
/// [`Subscription::next`] go back to the queue (work queues only).
pub struct Subscription {
    source: Box<dyn SubscriptionSource>,
}

impl Subscription {
    /// Wraps a backend's subscription.
    pub fn new(source: impl SubscriptionSource + 'static) -> Self {
        Self {
            source: Box::new(source),
        }
    }

    /// Waits for the next delivery; `None` once the bus is gone. Cancel
    /// safe, so it may be used in `tokio::select!`.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.source.next().await
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

/// The backend side of a [`Delivery`]'s settlement. Implemented by bus
/// backends, not by services. Exactly one method is called, once.
#[async_trait]
pub trait Acknowledge: Send {
    /// The message was handled; for a call, the caller receives `null`.
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    /// The message was handled with this result; for a cast this is an ack.
    async fn reply(self: Box<Self>, result: Result<Value, String>) -> Result<(), BusError>;
    /// The delivery was dropped unsettled: put the message back for
    /// redelivery. Called from `Drop`, so it must not block.
    fn requeue(self: Box<Self>);
}

/// One message handed to a consumer. Settle it with [`Delivery::ack`] or
/// [`Delivery::reply`]; dropping it unsettled redelivers the message to
/// another (or the same) consumer, as an unacked RabbitMQ delivery would be.
pub struct Delivery {
    envelope: Envelope,
    redelivered: bool,
    expects_reply: bool,
    acker: Option<Box<dyn Acknowledge>>,
}

impl Delivery {
    /// Builds a delivery (for bus backends).
    pub fn new(
        envelope: Envelope,
        redelivered: bool,
        expects_reply: bool,
        acker: Box<dyn Acknowledge>,
    ) -> Self {
        Self {
            envelope,
            redelivered,
            expects_reply,
            acker: Some(acker),
        }
    }

    /// The message.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Whether this message was delivered before and not settled then
    /// (handlers must be idempotent).
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// Whether a caller waits for a [`Delivery::reply`] (it came from
    /// [`Bus::call`]).
    pub fn expects_reply(&self) -> bool {
        self.expects_reply
    }

    /// Acknowledges the message; a waiting caller receives `null`.
    pub async fn ack(mut self) -> Result<(), BusError> {
        match self.acker.take() {
            Some(acker) => acker.ack().await,
            None => Ok(()),
        }
    }

    /// Replies to a call (`Err` reaches the caller as
    /// [`BusError::Remote`]) and acknowledges the message. For a cast or
    /// fanout the result is discarded and this is an ack.
    pub async fn reply(mut self, result: Result<Value, String>) -> Result<(), BusError> {
        match self.acker.take() {
            Some(acker) => acker.reply(result).await,
            None => Ok(()),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            tracing::debug!(
                topic = %self.envelope.topic,
                method = %self.envelope.method,
                "delivery dropped without ack, requeueing"
            );
            acker.requeue();
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("envelope", &self.envelope)
            .field("redelivered", &self.redelivered)
            .field("expects_reply", &self.expects_reply)
            .field("settled", &self.acker.is_none())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_memory() {
        assert!(connect("memory://").is_ok());
        assert!(connect("MEMORY://anything").is_ok());
    }

    #[cfg(feature = "amqp")]
    #[test]
    fn connect_amqp_opens_lazily() {
        // No broker is needed: the connection opens on first use.
        assert!(connect("amqp://guest:guest@127.0.0.1:1/%2f").is_ok());
        assert!(connect("AMQP://localhost").is_ok());
        assert!(matches!(
            connect("amqps://host/"),
            Err(BusError::Unsupported(_))
        ));
        assert!(matches!(
            connect("amqp://host:notaport/"),
            Err(BusError::InvalidUrl { .. })
        ));
    }

    #[cfg(not(feature = "amqp"))]
    #[test]
    fn connect_amqp_needs_the_feature() {
        match connect("amqp://guest:guest@localhost:5672/") {
            Err(BusError::Unsupported(msg)) => assert!(msg.contains("amqp")),
            other => panic!("unexpected: {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_prefix_parameter_is_split_off_the_url() {
        assert_eq!(split_prefix("amqp://h/%2f"), ("amqp://h/%2f".into(), None));
        assert_eq!(
            split_prefix("amqp://h/%2f?prefix=t1"),
            ("amqp://h/%2f".into(), Some("t1".into()))
        );
        assert_eq!(
            split_prefix("amqp://h?heartbeat=5&prefix=t2"),
            ("amqp://h?heartbeat=5".into(), Some("t2".into()))
        );
    }

    #[test]
    fn connect_rejects_garbage() {
        assert!(matches!(
            connect("kafka://x"),
            Err(BusError::InvalidUrl { .. })
        ));
        assert!(matches!(
            connect("memory"),
            Err(BusError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn envelope_serde_round_trip() {
        let env = Envelope::new("compute", "build", serde_json::json!({"id": 1}))
            .with_request_id("req-1");
        let text = serde_json::to_string(&env).expect("serialize");
        let back: Envelope = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, env);
        let bare: Envelope =
            serde_json::from_str(r#"{"topic":"t","method":"m","payload":null}"#).expect("bare");
        assert_eq!(bare.request_id, None);
    }

    #[test]
    fn bus_is_object_safe_and_futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
        assert_send(bus.cast("t", Envelope::new("t", "m", Value::Null)));
        assert_send(bus.subscribe("t"));
    }
}
