//! The RabbitMQ (AMQP 0-9-1) bus backend, for control planes spread over
//! several processes and hosts.
//!
//! Mapping onto the broker, with `P` the bus's name prefix
//! ([`AmqpConfig::prefix`]):
//! - `cast`/`call` topic `t` is the durable queue `P.t`, published to through
//!   the default exchange as persistent messages; consumers of it compete,
//!   each on its own channel with a QoS prefetch, and ack manually.
//! - `call` adds `reply_to` (the bus's exclusive reply queue `P.reply.<id>`),
//!   a `correlation_id` and a per-message `expiration` equal to the timeout,
//!   so a request nobody picked up in time is discarded by the broker.
//! - `fanout` topic `t` is the fanout exchange `P.fanout.t`; every
//!   subscriber binds its own exclusive, auto-deleted, server-named queue.
//!
//! Every publish waits for its publisher confirm. Work queues and fanout
//! exchanges are declared on first use. The connection is opened lazily and
//! re-opened with exponential backoff when it drops (broker restart, forced
//! close, missed heartbeats): publishers retry for up to
//! [`AmqpConfig::publish_timeout`], subscriptions re-attach on their next
//! [`Subscription::next`], and whatever a consumer held unacked is
//! redelivered by the broker. This module must not know any service,
//! method or payload; it only moves [`Envelope`]s.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use crate::{Acknowledge, Bus, BusError, Delivery, Envelope, Subscription, SubscriptionSource};

/// The header carrying a call's deadline, in milliseconds since the Unix
/// epoch, so a consumer can skip a request its caller already gave up on
/// even when the broker handed it over before it expired.
const DEADLINE_HEADER: &str = "x-ferro-deadline-ms";
/// `delivery_mode` of a message the broker writes to disk.
const PERSISTENT: u8 = 2;
/// `delivery_mode` of a message kept in memory only.
const TRANSIENT: u8 = 1;
/// The first pause before re-connecting; doubled per failure up to
/// [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest pause between re-connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one attempt to open a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a consumer may take to deliver a reply to a call whose request
/// carries no deadline.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest call timeout honoured as given.
const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No critical section here can panic half-way, so a poisoned lock still
    // guards consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn transport(what: &str) -> impl FnOnce(lapin::Error) -> BusError + '_ {
    move |e| BusError::Transport(format!("{what}: {e}"))
}

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How an [`AmqpBus`] reaches its broker and names what it declares there.
#[derive(Clone)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost` (the vhost percent-encoded,
    /// `%2f` for `/`), optionally with `?heartbeat=<s>&frame_max=…`.
    pub url: String,
    /// Prefix of every queue and exchange name, so several clouds (or test
    /// runs) can share one broker. Default `ferro`.
    pub prefix: String,
    /// QoS prefetch of each subscription: how many unacked messages the
    /// broker hands one consumer ahead of its acks (0 is taken as 1, never
    /// as AMQP's "unlimited"). Default 10.
    pub prefetch: u16,
    /// Heartbeat interval (seconds) asked of the broker when the URL does
    /// not name one; a connection silent for about twice this long counts
    /// as dead and is re-opened. Default 10.
    pub heartbeat: u16,
    /// How long `cast` and `fanout` keep retrying through a broker outage
    /// before failing with [`BusError::Transport`]. Default 30 s.
    pub publish_timeout: Duration,
}

impl std::fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("prefetch", &self.prefetch)
            .field("heartbeat", &self.heartbeat)
            .field("publish_timeout", &self.publish_timeout)
            .finish()
    }
}

/// `url` with the password of its user info replaced by `***`, for logs
/// and error messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

impl AmqpConfig {
    /// The defaults for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "ferro".to_owned(),
            prefetch: 10,
            heartbeat: 10,
            publish_timeout: Duration::from_secs(30),
        }
    }

    /// The same configuration naming everything under `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// The live connection and the confirm-mode channel publishes go through.
#[derive(Clone)]
struct Link {
    conn: Arc<Connection>,
    /// Which connection this is; bumped per re-connection.
    conn_id: u64,
    channel: Channel,
    /// Which publisher channel this is; declarations are cached per
    /// channel, so the cache empties whenever the channel is replaced.
    channel_id: u64,
}

/// Where a publish goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Route {
    /// A durable work queue, declared before the first publish.
    Queue(String),
    /// A fanout exchange, declared before the first publish.
    Fanout(String),
    /// A caller's reply queue, which its caller declares.
    Reply(String),
}

impl Route {
    fn exchange_and_key(&self) -> (&str, &str) {
        match self {
            Route::Queue(queue) | Route::Reply(queue) => ("", queue),
            Route::Fanout(exchange) => (exchange, ""),
        }
    }
}

/// Everything this bus declared, for [`AmqpBus::delete_topology`].
#[derive(Default)]
struct Topology {
    queues: HashSet<String>,
    exchanges: HashSet<String>,
}

type ReplyTx = oneshot::Sender<Result<Value, String>>;

struct Inner {
    uri: AMQPUri,
    prefix: String,
    prefetch: u16,
    publish_timeout: Duration,
    /// The name the connection shows in the broker's management tools.
    connection_name: String,
    link: tokio::sync::Mutex<Option<Link>>,
    next_id: AtomicU64,
    /// Routes declared on the publisher channel with the given id.
    declared: Mutex<(u64, HashSet<Route>)>,
    topology: Mutex<Topology>,
    /// This bus's reply queue, shared by all its calls.
    reply_queue: String,
    /// Calls waiting for their reply, by correlation id.
    pending: Mutex<HashMap<String, ReplyTx>>,
    /// The connection the reply queue is being consumed on, if any.
    reply_ready: watch::Sender<Option<u64>>,
    reply_listener_started: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Channels keep their connection open, so close it explicitly:
        // subscriptions then end instead of outliving the bus.
        if let Some(link) = self.link.get_mut().take()
            && let Ok(handle) = Handle::try_current()
        {
            handle.spawn(async move {
                let _ = link.conn.close(200, "bus dropped".into()).await;
            });
        }
    }
}

/// Exponential backoff between re-connection attempts.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(BACKOFF_START)
    }

    /// The pause to take now; the next one is twice as long.
    fn next_delay(&mut self) -> Duration {
        let delay = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        delay
    }
}

impl Inner {
    fn work_queue(&self, topic: &str) -> String {
        format!("{}.{topic}", self.prefix)
    }

    fn fanout_exchange(&self, topic: &str) -> String {
        format!("{}.fanout.{topic}", self.prefix)
    }

    fn record(&self, route: &Route) {
        let mut topology = lock(&self.topology);
        match route {
            Route::Queue(queue) => {
                topology.queues.insert(queue.clone());
            }
            Route::Fanout(exchange) => {
                topology.exchanges.insert(exchange.clone());
            }
            Route::Reply(_) => {}
        }
    }

    /// The current link, opening a new connection (or only a new publisher
    /// channel) when it is gone. One attempt; see [`Inner::link`].
    async fn link_once(&self) -> Result<Link, BusError> {
        let mut current = self.link.lock().await;
        if let Some(link) = current.as_ref() {
            if link.channel.status().connected() {
                return Ok(link.clone());
            }
            if link.conn.status().connected() {
                // Only the channel died (e.g. a broker refusal closes it).
                let channel = open_publisher(&link.conn).await?;
                let link = Link {
                    channel,
                    channel_id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    ..link.clone()
                };
                *current = Some(link.clone());
                return Ok(link);
            }
        }
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(self.connection_name.as_str()));
        let conn = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_uri(self.uri.clone(), properties),
        )
        .await
        {
            Ok(conn) => conn.map_err(transport("connecting to the AMQP broker"))?,
            Err(_) => {
                return Err(BusError::Transport(format!(
                    "connecting to the AMQP broker took over {CONNECT_TIMEOUT:?}"
                )));
            }
        };
        let channel = open_publisher(&conn).await?;
        let link = Link {
            conn: Arc::new(conn),
            conn_id: self.next_id.fetch_add(1, Ordering::Relaxed),
            channel,
            channel_id: self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        tracing::info!(
            host = %self.uri.authority.host,
            port = self.uri.authority.port,
            vhost = %self.uri.vhost,
            "connected to the AMQP broker"
        );
        *current = Some(link.clone());
        Ok(link)
    }

    /// [`Inner::link_once`], retried with backoff until `deadline`.
    async fn link(&self, deadline: Instant) -> Result<Link, BusError> {
        let mut backoff = Backoff::new();
        loop {
            match self.link_once().await {
                Ok(link) => return Ok(link),
                Err(error) => {
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= deadline {
                        return Err(error);
                    }
                    tracing::warn!(%error, ?delay, "AMQP broker unreachable, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Declares `route` on the publisher channel unless already done there.
    async fn declare(&self, link: &Link, route: &Route) -> Result<(), BusError> {
        {
            let mut declared = lock(&self.declared);
            if declared.0 != link.channel_id {
                *declared = (link.channel_id, HashSet::new());
            }
            if declared.1.contains(route) {
                return Ok(());
            }
        }
        match route {
            Route::Queue(queue) => declare_work_queue(&link.channel, queue).await?,
            Route::Fanout(exchange) => declare_fanout_exchange(&link.channel, exchange).await?,
            Route::Reply(_) => return Ok(()),
        }
        self.record(route);
        let mut declared = lock(&self.declared);
        if declared.0 == link.channel_id {
            declared.1.insert(route.clone());
        }
        Ok(())
    }

    fn forget_declared(&self) {
        lock(&self.declared).1.clear();
    }

    /// Publishes once and waits for the broker's confirm.
    async fn publish_once(
        &self,
        route: &Route,
        body: &[u8],
        properties: &BasicProperties,
    ) -> Result<(), BusError> {
        let link = self.link_once().await?;
        self.declare(&link, route).await?;
        let (exchange, routing_key) = route.exchange_and_key();
        let confirm = link
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    // A work queue deleted behind our back returns the
                    // message instead of dropping it silently.
                    mandatory: matches!(route, Route::Queue(_)),
                    ..BasicPublishOptions::default()
                },
                body,
                properties.clone(),
            )
            .await
            .map_err(transport("publishing"))?
            .await
            .map_err(transport("waiting for the publisher confirm"))?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_returned)) => {
                self.forget_declared();
                Err(BusError::Transport(format!(
                    "the broker could not route to {route:?}"
                )))
            }
            Confirmation::Nack(_) => Err(BusError::Transport(format!(
                "the broker refused a message for {route:?}"
            ))),
        }
    }

    /// Publishes, retrying through broker outages until `deadline`. A
    /// message whose confirm was lost with the connection is published
    /// again, so consumers may see it twice (at-least-once).
    async fn publish(
        &self,
        route: &Route,
        body: &[u8],
        properties: BasicProperties,
        deadline: Instant,
    ) -> Result<(), BusError> {
        let mut backoff = Backoff::new();
        loop {
            match self.publish_once(route, body, &properties).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= deadline {
                        return Err(error);
                    }
                    tracing::warn!(%error, ?route, ?delay, "publish failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Opens a consumer channel for `kind` on the current connection (one
    /// attempt). Dropping the result, even half-built, closes the channel
    /// and so returns its unacked messages to their queue.
    async fn attach(&self, kind: &SourceKind) -> Result<Attached, BusError> {
        let link = self.link_once().await?;
        let channel = link
            .conn
            .create_channel()
            .await
            .map_err(transport("opening a consumer channel"))?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(transport("setting the prefetch"))?;
        let queue = match kind {
            SourceKind::Work { topic } => {
                let queue = self.work_queue(topic);
                declare_work_queue(&channel, &queue).await?;
                self.record(&Route::Queue(queue.clone()));
                queue
            }
            SourceKind::Fanout { topic } => {
                let exchange = self.fanout_exchange(topic);
                declare_fanout_exchange(&channel, &exchange).await?;
                self.record(&Route::Fanout(exchange.clone()));
                let queue = channel
                    .queue_declare(
                        "".into(),
                        QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(transport("declaring a fanout subscriber queue"))?;
                let queue = queue.name().as_str().to_owned();
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        exchange.into(),
                        "".into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(transport("binding a fanout subscriber queue"))?;
                queue
            }
        };
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(transport("starting a consumer"))?;
        Ok(Attached { channel, consumer })
    }

    /// Starts the task that consumes this bus's reply queue, once.
    fn start_reply_listener(self: &Arc<Self>) {
        if self.reply_listener_started.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(reply_listener(Arc::downgrade(self)));
    }

    /// Waits until the reply queue is consumed on the connection calls
    /// currently publish over.
    async fn reply_queue_ready(self: &Arc<Self>, deadline: Instant) -> Result<(), BusError> {
        self.start_reply_listener();
        let mut ready = self.reply_ready.subscribe();
        loop {
            let link = self.link(deadline).await?;
            let wanted = Some(link.conn_id);
            let waited = tokio::time::timeout_at(
                deadline.into(),
                ready.wait_for(|on| *on == wanted || on.is_some_and(|id| id > link.conn_id)),
            )
            .await;
            match waited {
                Err(_elapsed) => {
                    return Err(BusError::Transport(
                        "the reply queue was not ready in time".to_owned(),
                    ));
                }
                Ok(Err(_closed)) => return Err(BusError::Closed),
                Ok(Ok(on)) if *on == wanted => return Ok(()),
                // The listener moved to a newer connection; look again.
                Ok(Ok(_)) => {}
            }
        }
    }
}

async fn open_publisher(conn: &Connection) -> Result<Channel, BusError> {
    let channel = conn
        .create_channel()
        .await
        .map_err(transport("opening the publisher channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(transport("enabling publisher confirms"))?;
    Ok(channel)
}

async fn declare_work_queue(channel: &Channel, queue: &str) -> Result<(), BusError> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(drop)
        .map_err(transport("declaring a work queue"))
}

async fn declare_fanout_exchange(channel: &Channel, exchange: &str) -> Result<(), BusError> {
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(transport("declaring a fanout exchange"))
}

/// Consumes the bus's exclusive reply queue and hands each reply to its
/// waiting call, re-declaring the queue on every new connection. Ends
/// once the bus is dropped.
async fn reply_listener(bus: Weak<Inner>) {
    let mut backoff = Backoff::new();
    loop {
        let attached = {
            let Some(inner) = bus.upgrade() else { return };
            attach_reply_queue(&inner).await
        };
        let (conn_id, channel, mut consumer) = match attached {
            Ok(attached) => attached,
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, "reply queue unavailable, retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff = Backoff::new();
        match bus.upgrade() {
            Some(inner) => inner.reply_ready.send_replace(Some(conn_id)),
            None => return,
        };
        while let Some(Ok(delivery)) = consumer.next().await {
            let Some(inner) = bus.upgrade() else { return };
            let Some(correlation_id) = delivery.properties.correlation_id().as_ref() else {
                continue;
            };
            let waiter = lock(&inner.pending).remove(correlation_id.as_str());
            let Some(waiter) = waiter else {
                tracing::debug!(%correlation_id, "reply after its caller gave up");
                continue;
            };
            let result = serde_json::from_slice::<Result<Value, String>>(&delivery.data)
                .unwrap_or_else(|e| Err(format!("undecodable reply: {e}")));
            // Fails only if the caller gave up meanwhile.
            let _ = waiter.send(result);
        }
        drop(channel);
        let Some(inner) = bus.upgrade() else { return };
        inner.reply_ready.send_replace(None);
        tracing::debug!("reply queue consumer ended; re-attaching");
    }
}

async fn attach_reply_queue(inner: &Inner) -> Result<(u64, Channel, Consumer), BusError> {
    let link = inner.link_once().await?;
    let channel = link
        .conn
        .create_channel()
        .await
        .map_err(transport("opening the reply channel"))?;
    channel
        .queue_declare(
            inner.reply_queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(transport("declaring the reply queue"))?;
    let consumer = channel
        .basic_consume(
            inner.reply_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(transport("consuming the reply queue"))?;
    Ok((link.conn_id, channel, consumer))
}

/// A [`Bus`] over a RabbitMQ broker. Clones share one connection; it is
/// opened on first use and re-opened whenever it drops. Dropping the last
/// clone closes it, which ends every subscription.
#[derive(Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus")
            .field("prefix", &self.inner.prefix)
            .field("connection_name", &self.inner.connection_name)
            .finish_non_exhaustive()
    }
}

impl AmqpBus {
    /// A bus for `config`, without connecting yet (a bad host or password
    /// shows up on first use; see [`AmqpBus::connect`] to fail early).
    /// Fails only on a malformed URL or prefix.
    pub fn new(config: AmqpConfig) -> Result<Self, BusError> {
        let invalid = |reason: String| BusError::InvalidUrl {
            url: redact(&config.url),
            reason,
        };
        let mut uri: AMQPUri = config.url.parse().map_err(invalid)?;
        if uri.scheme != lapin::uri::AMQPScheme::AMQP {
            // TODO-security: TLS to the broker needs a rustls build with
            // the ring provider; until then use amqp:// on a trusted network.
            return Err(BusError::Unsupported(
                "amqps:// (this build has no TLS for AMQP; use amqp://)".to_owned(),
            ));
        }
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(config.heartbeat);
        }
        if config.prefix.is_empty() || config.prefix.len() > 100 {
            return Err(invalid(format!(
                "the name prefix must be 1 to 100 bytes, got {:?}",
                config.prefix
            )));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (reply_ready, _) = watch::channel(None);
        Ok(Self {
            inner: Arc::new(Inner {
                uri,
                reply_queue: format!("{}.reply.{id}", config.prefix),
                connection_name: format!("ferrostack {} {id}", config.prefix),
                prefix: config.prefix,
                prefetch: config.prefetch.max(1),
                publish_timeout: config.publish_timeout,
                link: tokio::sync::Mutex::new(None),
                next_id: AtomicU64::new(1),
                declared: Mutex::new((0, HashSet::new())),
                topology: Mutex::new(Topology::default()),
                pending: Mutex::new(HashMap::new()),
                reply_ready,
                reply_listener_started: AtomicBool::new(false),
            }),
        })
    }

    /// [`AmqpBus::new`], then connects once, failing with
    /// [`BusError::Transport`] if the broker cannot be reached or refuses
    /// the credentials.
    pub async fn connect(config: AmqpConfig) -> Result<Self, BusError> {
        let bus = Self::new(config)?;
        bus.inner.link_once().await?;
        Ok(bus)
    }

    /// The name this bus's connection carries in the broker
    /// (`rabbitmqctl list_connections client_properties`), unique per bus.
    pub fn connection_name(&self) -> &str {
        &self.inner.connection_name
    }

    /// Deletes every work queue and fanout exchange this bus declared,
    /// with whatever messages they hold (for tests and teardown).
    pub async fn delete_topology(&self) -> Result<(), BusError> {
        let (queues, exchanges) = {
            let topology = lock(&self.inner.topology);
            (topology.queues.clone(), topology.exchanges.clone())
        };
        let deadline = Instant::now() + self.inner.publish_timeout;
        let link = self.inner.link(deadline).await?;
        for queue in queues {
            link.channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(transport("deleting a work queue"))?;
        }
        for exchange in exchanges {
            link.channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(transport("deleting a fanout exchange"))?;
        }
        *lock(&self.inner.topology) = Topology::default();
        self.inner.forget_declared();
        Ok(())
    }

    fn body(topic: &str, mut envelope: Envelope) -> Result<Vec<u8>, BusError> {
        topic.clone_into(&mut envelope.topic);
        serde_json::to_vec(&envelope)
            .map_err(|e| BusError::Transport(format!("encoding an envelope: {e}")))
    }

    fn properties(delivery_mode: u8) -> BasicProperties {
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(delivery_mode)
    }
}

/// Removes a call's waiter when the call ends, however it ends.
struct PendingGuard<'a> {
    inner: &'a Inner,
    correlation_id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.pending).remove(&self.correlation_id);
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn cast(&self, topic: &str, msg: Envelope) -> Result<(), BusError> {
        let body = Self::body(topic, msg)?;
        let route = Route::Queue(self.inner.work_queue(topic));
        let deadline = Instant::now() + self.inner.publish_timeout;
        self.inner
            .publish(&route, &body, Self::properties(PERSISTENT), deadline)
            .await
    }

    async fn call(&self, topic: &str, msg: Envelope, timeout: Duration) -> Result<Value, BusError> {
        // Beyond a year is "forever"; capping keeps the clock sums below
        // from overflowing.
        let waited = timeout.min(MAX_CALL_TIMEOUT);
        let deadline = Instant::now() + waited;
        let timed_out = || BusError::Timeout {
            topic: topic.to_owned(),
            timeout,
        };
        let body = Self::body(topic, msg)?;
        let correlation_id = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(correlation_id.clone(), tx);
        let _guard = PendingGuard {
            inner: &self.inner,
            correlation_id: correlation_id.clone(),
        };

        match self.inner.reply_queue_ready(deadline).await {
            Ok(()) => {}
            Err(_) if Instant::now() >= deadline => return Err(timed_out()),
            Err(error) => return Err(error),
        }
        let mut headers = FieldTable::default();
        headers.insert(
            DEADLINE_HEADER.into(),
            AMQPValue::LongLongInt(unix_millis(SystemTime::now() + waited)),
        );
        // The broker drops the request once it has waited this long in the
        // queue; a silent consumer is covered by the timeout below.
        let expiration = waited.as_millis().max(1).to_string();
        let properties = Self::properties(TRANSIENT)
            .with_reply_to(self.inner.reply_queue.as_str().into())
            .with_correlation_id(correlation_id.as_str().into())
            .with_expiration(expiration.into())
            .with_headers(headers);
        let route = Route::Queue(self.inner.work_queue(topic));
        match self
            .inner
            .publish(&route, &body, properties, deadline)
            .await
        {
            Ok(()) => {}
            Err(_) if Instant::now() >= deadline => return Err(timed_out()),
            Err(error) => return Err(error),
        }
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Err(_elapsed) => Err(timed_out()),
            Ok(Err(_closed)) => Err(BusError::Closed),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(message))) => Err(BusError::Remote { message }),
        }
    }

    async fn fanout(&self, topic: &str, msg: Envelope) -> Result<(), BusError> {
        let body = Self::body(topic, msg)?;
        let route = Route::Fanout(self.inner.fanout_exchange(topic));
        let deadline = Instant::now() + self.inner.publish_timeout;
        self.inner
            .publish(&route, &body, Self::properties(TRANSIENT), deadline)
            .await
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        self.subscribe_kind(SourceKind::Work {
            topic: topic.to_owned(),
        })
        .await
    }

    async fn subscribe_fanout(&self, topic: &str) -> Result<Subscription, BusError> {
        self.subscribe_kind(SourceKind::Fanout {
            topic: topic.to_owned(),
        })
        .await
    }
}

impl AmqpBus {
    async fn subscribe_kind(&self, kind: SourceKind) -> Result<Subscription, BusError> {
        // Attach before returning: a fanout subscriber must see every
        // message fanned out after this, and a second competing consumer
        // must share the work queued from now on.
        let deadline = Instant::now() + self.inner.publish_timeout;
        let mut backoff = Backoff::new();
        let attached = loop {
            match self.inner.attach(&kind).await {
                Ok(attached) => break attached,
                Err(error) => {
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= deadline {
                        return Err(error);
                    }
                    tracing::warn!(%error, ?delay, "subscribing failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        Ok(Subscription::new(AmqpSource {
            bus: Arc::downgrade(&self.inner),
            kind,
            attached: Some(attached),
            backoff: Backoff::new(),
        }))
    }
}

#[derive(Debug)]
enum SourceKind {
    Work { topic: String },
    Fanout { topic: String },
}

/// A consumer channel and its consumer.
struct Attached {
    channel: Channel,
    consumer: Consumer,
}

struct AmqpSource {
    bus: Weak<Inner>,
    kind: SourceKind,
    /// `None` after the connection dropped, until re-attached.
    attached: Option<Attached>,
    backoff: Backoff,
}

impl AmqpSource {
    /// Wraps a broker delivery, or `None` for a call whose caller already
    /// gave up (acked and skipped).
    async fn wrap(&self, delivery: lapin::message::Delivery, channel: Channel) -> Option<Delivery> {
        let properties = &delivery.properties;
        let reply = match (properties.reply_to(), properties.correlation_id()) {
            (Some(reply_to), Some(correlation_id)) => Some(ReplyTo {
                queue: reply_to.as_str().to_owned(),
                correlation_id: correlation_id.as_str().to_owned(),
                deadline: deadline_of(properties),
            }),
            _ => None,
        };
        if let Some(ReplyTo {
            deadline: Some(deadline),
            ..
        }) = &reply
            && *deadline < SystemTime::now()
        {
            tracing::debug!(kind = ?self.kind, "skipping call whose caller gave up");
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            return None;
        }
        let envelope = match serde_json::from_slice::<Envelope>(&delivery.data) {
            Ok(envelope) => envelope,
            Err(error) => {
                // Redelivering a message nobody can decode would loop
                // forever; drop it loudly instead.
                tracing::error!(%error, kind = ?self.kind, "discarding an undecodable message");
                let _ = delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: false,
                        ..BasicNackOptions::default()
                    })
                    .await;
                return None;
            }
        };
        let expects_reply = reply.is_some();
        Some(Delivery::new(
            envelope,
            delivery.redelivered,
            expects_reply,
            Box::new(AmqpAcker {
                acker: delivery.acker,
                channel,
                bus: self.bus.clone(),
                reply,
                handle: Handle::current(),
            }),
        ))
    }
}

fn deadline_of(properties: &BasicProperties) -> Option<SystemTime> {
    let headers = properties.headers().as_ref()?;
    let millis = match headers.inner().get(DEADLINE_HEADER)? {
        AMQPValue::LongLongInt(millis) => u64::try_from(*millis).ok()?,
        _ => return None,
    };
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

#[async_trait]
impl SubscriptionSource for AmqpSource {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(attached) = &mut self.attached {
                // `StreamExt::next` is cancel safe; after it, a delivery
                // lives in `wrap` only until it is returned or settled, and
                // an unsettled one dropped by a cancel comes back when the
                // channel closes.
                match attached.consumer.next().await {
                    Some(Ok(delivery)) => {
                        let channel = attached.channel.clone();
                        if let Some(delivery) = self.wrap(delivery, channel).await {
                            return Some(delivery);
                        }
                        continue;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, kind = ?self.kind, "consumer failed; re-attaching");
                    }
                    None => {
                        tracing::debug!(kind = ?self.kind, "consumer ended; re-attaching");
                    }
                }
                self.attached = None;
            }
            let inner = self.bus.upgrade()?;
            match inner.attach(&self.kind).await {
                Ok(attached) => {
                    tracing::info!(kind = ?self.kind, "consumer re-attached");
                    self.attached = Some(attached);
                    self.backoff = Backoff::new();
                }
                Err(error) => {
                    drop(inner);
                    let delay = self.backoff.next_delay();
                    tracing::warn!(%error, kind = ?self.kind, ?delay, "re-attaching failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// Where a call's reply goes.
struct ReplyTo {
    queue: String,
    correlation_id: String,
    deadline: Option<SystemTime>,
}

struct AmqpAcker {
    acker: lapin::Acker,
    /// Keeps the consumer channel open until this delivery is settled,
    /// even after its subscription is dropped.
    channel: Channel,
    bus: Weak<Inner>,
    reply: Option<ReplyTo>,
    handle: Handle,
}

impl AmqpAcker {
    async fn settle(self) -> Result<(), BusError> {
        let acked = self
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(transport("acking"))?;
        drop(self.channel);
        if acked {
            Ok(())
        } else {
            Err(BusError::Transport(
                "the delivery's channel closed before the ack; the broker redelivers it".to_owned(),
            ))
        }
    }
}

#[async_trait]
impl Acknowledge for AmqpAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.reply(Ok(Value::Null)).await
    }

    async fn reply(mut self: Box<Self>, result: Result<Value, String>) -> Result<(), BusError> {
        let mut replied = Ok(());
        if let Some(reply) = self.reply.take() {
            replied = match self.bus.upgrade() {
                Some(inner) => {
                    let body = serde_json::to_vec(&result)
                        .map_err(|e| BusError::Transport(format!("encoding a reply: {e}")))?;
                    let properties = AmqpBus::properties(TRANSIENT)
                        .with_correlation_id(ShortString::from(reply.correlation_id));
                    let left = match reply.deadline {
                        None => Some(REPLY_TIMEOUT),
                        Some(at) => at.duration_since(SystemTime::now()).ok(),
                    };
                    match left {
                        Some(left) => {
                            let route = Route::Reply(reply.queue);
                            let deadline = Instant::now() + left;
                            inner.publish(&route, &body, properties, deadline).await
                        }
                        // The caller has given up; nobody reads the reply.
                        None => Ok(()),
                    }
                }
                None => Err(BusError::Closed),
            };
            if let Err(error) = &replied {
                // The work is done; acking keeps it from being redone for a
                // caller that will time out anyway.
                tracing::warn!(%error, "could not deliver a reply");
            }
        }
        self.settle().await.and(replied)
    }

    fn requeue(self: Box<Self>) {
        let Self {
            acker,
            channel,
            handle,
            ..
        } = *self;
        handle.spawn(async move {
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            // Fails only with the channel, whose closing requeues anyway.
            let _ = acker.nack(requeue).await;
            drop(channel);
        });
    }
}

/// These tests need a broker: they run when `FERRO_TEST_AMQP_URL` names one
/// (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`) and print a notice and
/// pass otherwise. Each bus gets its own random name prefix, so parallel
/// tests and runs do not collide, and everything it declared is deleted
/// afterwards. Forcing a connection closed needs `rabbitmqctl` on the
/// broker's host; restarting the broker also needs
/// `FERRO_TEST_AMQP_RESTART=1`.
#[cfg(test)]
mod tests {
    use std::process::Command;

    use serde_json::json;

    use super::*;
    use crate::contract;

    const URL_VAR: &str = "FERRO_TEST_AMQP_URL";

    /// Tests share the broker; the one that stops it has it to itself.
    static BROKER_GATE: std::sync::RwLock<()> = std::sync::RwLock::new(());

    /// Buses on the test broker, whose queues and exchanges are deleted by
    /// [`TestBroker::cleanup`] or, if the test panicked first, by `Drop`.
    struct TestBroker {
        url: String,
        buses: Mutex<Vec<AmqpBus>>,
        cleaned: bool,
        /// A read or write guard of [`BROKER_GATE`].
        _gate: Box<dyn std::any::Any>,
    }

    impl TestBroker {
        /// `None` (after printing why) when no broker is configured.
        fn new(test: &str) -> Option<Self> {
            Self::gated(test, || {
                Box::new(BROKER_GATE.read().unwrap_or_else(PoisonError::into_inner))
            })
        }

        /// [`TestBroker::new`], once no other test uses the broker.
        fn exclusive(test: &str) -> Option<Self> {
            Self::gated(test, || {
                Box::new(BROKER_GATE.write().unwrap_or_else(PoisonError::into_inner))
            })
        }

        fn gated(test: &str, gate: impl FnOnce() -> Box<dyn std::any::Any>) -> Option<Self> {
            match std::env::var(URL_VAR) {
                Ok(url) if !url.is_empty() => Some(Self {
                    url,
                    buses: Mutex::new(Vec::new()),
                    cleaned: false,
                    _gate: gate(),
                }),
                _ => {
                    eprintln!("skipping {test}: set {URL_VAR} to run it against RabbitMQ");
                    None
                }
            }
        }

        /// A new bus with its own random name prefix.
        fn bus(&self) -> AmqpBus {
            let prefix = format!(
                "ferro-test-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            let mut config = AmqpConfig::new(self.url.clone()).with_prefix(prefix);
            config.publish_timeout = Duration::from_secs(20);
            let bus = AmqpBus::new(config).expect("test broker URL");
            lock(&self.buses).push(bus.clone());
            bus
        }

        fn dyn_bus(&self) -> Arc<dyn Bus> {
            Arc::new(self.bus())
        }

        async fn cleanup(mut self) {
            let buses = std::mem::take(&mut *lock(&self.buses));
            self.cleaned = true;
            delete_all(buses).await;
        }
    }

    async fn delete_all(buses: Vec<AmqpBus>) {
        for bus in buses {
            if let Err(error) = bus.delete_topology().await {
                eprintln!("cleaning up {bus:?}: {error}");
            }
        }
    }

    impl Drop for TestBroker {
        fn drop(&mut self) {
            let buses = std::mem::take(&mut *lock(&self.buses));
            if self.cleaned || buses.is_empty() {
                return;
            }
            // A panicking test cannot await; clean up on a runtime of our own.
            let cleanup = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let fresh = buses
                        .iter()
                        .map(|bus| AmqpBus {
                            inner: Arc::new(rebuild(&bus.inner)),
                        })
                        .collect::<Vec<_>>();
                    runtime.block_on(delete_all(fresh));
                }
            });
            let _ = cleanup.join();
        }
    }

    /// A bus naming what `old` declared, but owning no connection opened on
    /// another runtime.
    fn rebuild(old: &Inner) -> Inner {
        let (reply_ready, _) = watch::channel(None);
        let topology = lock(&old.topology);
        Inner {
            uri: old.uri.clone(),
            prefix: old.prefix.clone(),
            prefetch: old.prefetch,
            publish_timeout: old.publish_timeout,
            connection_name: format!("{} cleanup", old.connection_name),
            link: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            declared: Mutex::new((0, HashSet::new())),
            topology: Mutex::new(Topology {
                queues: topology.queues.clone(),
                exchanges: topology.exchanges.clone(),
            }),
            reply_queue: old.reply_queue.clone(),
            pending: Mutex::new(HashMap::new()),
            reply_ready,
            reply_listener_started: AtomicBool::new(false),
        }
    }

    async fn recv(sub: &mut Subscription, what: &str) -> Delivery {
        match tokio::time::timeout(Duration::from_secs(30), sub.next()).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => panic!("{what}: subscription ended"),
            Err(_) => panic!("{what}: no delivery within 30s"),
        }
    }

    fn env(topic: &str, payload: Value) -> Envelope {
        Envelope::new(topic, "m", payload)
    }

    macro_rules! contract_tests {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> Result<(), String> {
                let Some(broker) = TestBroker::new(stringify!($name)) else {
                    return Ok(());
                };
                let result = contract::$name(broker.dyn_bus()).await;
                broker.cleanup().await;
                result
            }
        )*};
    }

    contract_tests!(
        cast_delivers_once_across_competing_consumers,
        cast_queued_before_subscribe,
        call_reply,
        call_queued_before_subscribe,
        call_timeout,
        call_remote_error,
        fanout_to_all,
        fanout_without_subscribers,
        unacked_delivery_redelivered,
        unacked_delivery_goes_to_other_consumer,
        unacked_call_redelivered,
        undelivered_messages_survive_subscriber_drop,
        request_id_preserved,
        topics_are_isolated,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_passes() -> Result<(), String> {
        let Some(broker) = TestBroker::new("run_all_passes") else {
            return Ok(());
        };
        let result = contract::run_all(|| broker.dyn_bus()).await;
        broker.cleanup().await;
        result
    }

    #[tokio::test]
    async fn unreachable_broker_fails_connect_and_cast() {
        // Port 1 on loopback refuses at once; no broker needed.
        let mut config = AmqpConfig::new("amqp://guest:guest@127.0.0.1:1/%2f");
        config.publish_timeout = Duration::from_millis(300);
        assert!(matches!(
            AmqpBus::connect(config.clone()).await,
            Err(BusError::Transport(_))
        ));
        let bus = AmqpBus::new(config).expect("valid URL");
        let started = Instant::now();
        let result = bus.cast("t", env("t", Value::Null)).await;
        assert!(matches!(result, Err(BusError::Transport(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let result = bus
            .call("t", env("t", Value::Null), Duration::from_millis(300))
            .await;
        assert!(result.is_err(), "{result:?}");
    }

    #[test]
    fn config_defaults_and_url_checks() {
        let config = AmqpConfig::new("amqp://h");
        assert_eq!(config.prefix, "ferro");
        assert_eq!(config.prefetch, 10);
        let bus = AmqpBus::new(config).expect("valid");
        assert_eq!(bus.inner.uri.query.heartbeat, Some(10));
        assert_eq!(bus.inner.work_queue("compute"), "ferro.compute");
        assert_eq!(bus.inner.fanout_exchange("compute"), "ferro.fanout.compute");
        let bus = AmqpBus::new(AmqpConfig::new("amqp://h/%2f?heartbeat=3")).expect("valid");
        assert_eq!(bus.inner.uri.query.heartbeat, Some(3));
        assert!(matches!(
            AmqpBus::new(AmqpConfig::new("amqp://h").with_prefix("")),
            Err(BusError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn passwords_stay_out_of_debug_and_errors() {
        assert_eq!(
            redact("amqp://u:secret@h:5672/%2f"),
            "amqp://u:***@h:5672/%2f"
        );
        assert_eq!(redact("amqp://u@h/"), "amqp://u@h/");
        assert_eq!(redact("amqp://h/a@b"), "amqp://h/a@b");
        let config = AmqpConfig::new("amqp://u:secret@h/");
        assert!(!format!("{config:?}").contains("secret"));
        let err = AmqpBus::new(AmqpConfig::new("amqp://u:secret@h:port/")).expect_err("bad port");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn call_deadline_header_round_trips() {
        let at = SystemTime::now() + Duration::from_secs(3);
        let mut headers = FieldTable::default();
        headers.insert(
            DEADLINE_HEADER.into(),
            AMQPValue::LongLongInt(unix_millis(at)),
        );
        let properties = BasicProperties::default().with_headers(headers);
        let got = deadline_of(&properties).expect("deadline");
        let skew = at.duration_since(got).unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_millis(1), "{skew:?}");
        assert_eq!(deadline_of(&BasicProperties::default()), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_call_is_discarded_before_delivery() {
        let Some(broker) = TestBroker::new("expired_call_is_discarded_before_delivery") else {
            return;
        };
        let bus = broker.bus();
        let err = bus
            .call(
                "late",
                env("late", json!("stale")),
                Duration::from_millis(50),
            )
            .await
            .expect_err("nobody listens");
        assert!(matches!(err, BusError::Timeout { .. }), "{err:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        bus.cast("late", env("late", json!("fresh")))
            .await
            .expect("cast");
        let mut sub = bus.subscribe("late").await.expect("subscribe");
        let d = recv(&mut sub, "fresh cast").await;
        assert_eq!(d.envelope().payload, json!("fresh"));
        d.ack().await.expect("ack");
        drop(sub);
        broker.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prefetch_bounds_unacked_deliveries_per_consumer() {
        let Some(broker) = TestBroker::new("prefetch_bounds_unacked_deliveries_per_consumer")
        else {
            return;
        };
        let mut config = AmqpConfig::new(broker.url.clone()).with_prefix(format!(
            "ferro-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        config.prefetch = 2;
        let bus = AmqpBus::new(config).expect("bus");
        lock(&broker.buses).push(bus.clone());
        let mut greedy = bus.subscribe("qos").await.expect("subscribe");
        for i in 0..6 {
            bus.cast("qos", env("qos", json!(i))).await.expect("cast");
        }
        // Hold two unacked: the broker must not hand this consumer more.
        let first = recv(&mut greedy, "first").await;
        let second = recv(&mut greedy, "second").await;
        let mut patient = bus.subscribe("qos").await.expect("subscribe");
        let mut rest = Vec::new();
        for _ in 0..4 {
            let d = recv(&mut patient, "the rest").await;
            rest.push(d.envelope().payload.as_i64().expect("number"));
            d.ack().await.expect("ack");
        }
        rest.sort_unstable();
        assert_eq!(rest, vec![2, 3, 4, 5]);
        first.ack().await.expect("ack");
        second.ack().await.expect("ack");
        drop((greedy, patient));
        broker.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_bus_ends_subscriptions() {
        let Some(broker) = TestBroker::new("dropping_the_bus_ends_subscriptions") else {
            return;
        };
        // The broker keeps a clone of every bus it makes, for cleanup; this
        // one records the names and a bus of our own is dropped for good.
        let names = broker.bus();
        let own = AmqpBus::new(
            AmqpConfig::new(broker.url.clone()).with_prefix(names.inner.prefix.clone()),
        )
        .expect("bus");
        let mut sub = own.subscribe("t").await.expect("subscribe");
        let mut fan = own.subscribe_fanout("t").await.expect("subscribe");
        *lock(&names.inner.topology) = std::mem::take(&mut *lock(&own.inner.topology));
        drop(own);
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            (sub.next().await.is_none(), fan.next().await.is_none())
        })
        .await
        .expect("subscriptions end within 10s");
        assert_eq!(ended, (true, true));
        broker.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn call_round_trip_latency() {
        let Some(broker) = TestBroker::new("call_round_trip_latency") else {
            return;
        };
        let bus = broker.bus();
        let mut sub = bus.subscribe("echo").await.expect("subscribe");
        let server = tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                let payload = d.envelope().payload.clone();
                if d.reply(Ok(payload)).await.is_err() {
                    break;
                }
            }
        });
        let mut samples = Vec::new();
        for i in 0..200 {
            let started = Instant::now();
            let got = bus
                .call("echo", env("echo", json!(i)), Duration::from_secs(5))
                .await
                .expect("call");
            samples.push(started.elapsed());
            assert_eq!(got, json!(i));
        }
        server.abort();
        samples.sort_unstable();
        let p50 = samples[samples.len() / 2];
        let p99 = samples[samples.len() * 99 / 100];
        println!(
            "AMQP call round trip over {} calls: p50 {p50:?}, p99 {p99:?}",
            samples.len()
        );
        // Generous: a loaded 2-core machine answers in a few milliseconds.
        assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
        broker.cleanup().await;
    }

    /// Runs `rabbitmqctl`, or `None` when it is not installed here.
    fn rabbitmqctl(args: &[&str]) -> Option<String> {
        let output = match Command::new("rabbitmqctl").args(args).output() {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => panic!("running rabbitmqctl {args:?}: {error}"),
        };
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Closes the broker side of `bus`'s connection, as an operator (or a
    /// network fault) would; `false` when `rabbitmqctl` is unavailable.
    fn force_close(bus: &AmqpBus) -> bool {
        // Tab-separated `pid<TAB>client_properties`, one connection a line
        // (the JSON formatter prints pids that close_connection rejects).
        let Some(listing) = rabbitmqctl(&["list_connections", "pid", "client_properties", "-s"])
        else {
            return false;
        };
        let ours: Vec<&str> = listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(_, properties)| properties.contains(bus.connection_name()))
            .map(|(pid, _)| pid)
            .collect();
        assert!(
            !ours.is_empty(),
            "no broker connection named {}",
            bus.connection_name()
        );
        for pid in ours {
            rabbitmqctl(&["close_connection", pid, "ferro-bus reconnect test"]);
        }
        true
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_a_forced_connection_close() {
        let Some(broker) = TestBroker::new("survives_a_forced_connection_close") else {
            return;
        };
        let bus = broker.bus();
        let mut sub = bus.subscribe("work").await.expect("subscribe");
        let mut fan = bus.subscribe_fanout("news").await.expect("subscribe");
        bus.cast("work", env("work", json!("in flight")))
            .await
            .expect("cast");
        let held = recv(&mut sub, "first delivery").await;
        assert!(!held.redelivered());

        if !force_close(&bus) {
            eprintln!("skipping survives_a_forced_connection_close: no rabbitmqctl here");
            drop((held, sub, fan));
            broker.cleanup().await;
            return;
        }

        // The consumer re-attaches and the broker redelivers what it held.
        let again = recv(&mut sub, "redelivery after reconnect").await;
        assert_eq!(again.envelope().payload, json!("in flight"));
        assert!(again.redelivered());
        again.ack().await.expect("ack on the new connection");
        assert!(
            matches!(held.ack().await, Err(BusError::Transport(_))),
            "an ack on the dead channel must fail"
        );

        // Publishers re-connect: a cast and a call both get through.
        bus.cast("work", env("work", json!("after")))
            .await
            .expect("cast after reconnect");
        let d = recv(&mut sub, "cast after reconnect").await;
        assert_eq!(d.envelope().payload, json!("after"));
        d.ack().await.expect("ack");
        let server = tokio::spawn(async move {
            let d = recv(&mut sub, "call after reconnect").await;
            d.reply(Ok(json!("pong"))).await.expect("reply");
        });
        let got = bus
            .call("work", env("work", json!("ping")), Duration::from_secs(20))
            .await
            .expect("call after reconnect");
        assert_eq!(got, json!("pong"));
        server.await.expect("server");

        // The fanout subscriber re-binds; fanout reaches current subscribers
        // only, so keep fanning out until its new queue is bound.
        let fanned = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                bus.fanout("news", env("news", json!("hello")))
                    .await
                    .expect("fanout");
                if let Ok(Some(d)) =
                    tokio::time::timeout(Duration::from_millis(300), fan.next()).await
                {
                    return d;
                }
            }
        })
        .await
        .expect("fanout after reconnect");
        assert_eq!(fanned.envelope().payload, json!("hello"));
        fanned.ack().await.expect("ack");
        drop(fan);
        broker.cleanup().await;
    }

    /// Starts the broker application again when dropped, even if the test
    /// failed half-way.
    struct StoppedBroker;

    impl StoppedBroker {
        fn stop() -> Self {
            rabbitmqctl(&["stop_app"]).expect("rabbitmqctl stop_app");
            Self
        }
    }

    impl Drop for StoppedBroker {
        fn drop(&mut self) {
            if rabbitmqctl(&["start_app"]).is_some() {
                let _ = rabbitmqctl(&["await_startup"]);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_a_broker_restart() {
        if std::env::var("FERRO_TEST_AMQP_RESTART").as_deref() != Ok("1") {
            eprintln!(
                "skipping survives_a_broker_restart: set FERRO_TEST_AMQP_RESTART=1 \
                 (it stops the local RabbitMQ for a few seconds)"
            );
            return;
        }
        let Some(broker) = TestBroker::exclusive("survives_a_broker_restart") else {
            return;
        };
        let bus = broker.bus();
        let mut sub = bus.subscribe("work").await.expect("subscribe");
        bus.cast("work", env("work", json!(1))).await.expect("cast");
        let held = recv(&mut sub, "first delivery").await;

        let stopped = StoppedBroker::stop();
        // A publisher during the outage waits for the broker to come back.
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.cast("work", env("work", json!(2))).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(stopped);
        publisher
            .await
            .expect("publisher")
            .expect("cast through the restart");

        let mut got = Vec::new();
        for _ in 0..2 {
            let d = recv(&mut sub, "after the restart").await;
            got.push(d.envelope().payload.as_i64().expect("number"));
            d.ack().await.expect("ack");
        }
        got.sort_unstable();
        assert_eq!(
            got,
            vec![1, 2],
            "the held message is redelivered, the new one arrives"
        );
        assert!(held.ack().await.is_err());
        drop(sub);
        broker.cleanup().await;
    }
}
