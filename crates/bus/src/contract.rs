//! The behaviour every [`Bus`] backend must show, as a reusable test suite.
//!
//! Each check takes a fresh bus and returns `Err` describing the first
//! violation; [`run_all`] runs every check, each on a new bus from `make`.
//! A backend's tests call it, e.g. for the in-process backend:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), String> {
//! use std::sync::Arc;
//! use ferro_bus::{Bus, MemoryBus, contract};
//! contract::run_all(|| Arc::new(MemoryBus::new()) as Arc<dyn Bus>).await
//! # }
//! ```
//!
//! Checks wait at most a few seconds for expected messages and a short
//! quiet period (see [`QUIET`]) to conclude that nothing more arrives. They
//! use topics prefixed `contract.` and need a tokio runtime with timers.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Bus, BusError, Delivery, Envelope, Subscription};

/// How long a check waits for a message it expects.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How long a check waits to conclude that no (further) message arrives.
pub const QUIET: Duration = Duration::from_millis(200);

/// The signature of one contract check.
pub type Check =
    fn(Arc<dyn Bus>) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Names and entry points of every check, in the order [`run_all`]
        /// runs them.
        pub const CHECKS: &[(&str, Check)] = &[$((stringify!($name), |bus| Box::pin($name(bus)))),*];
    };
}

checks!(
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

/// Runs every check in [`CHECKS`], each against a new bus from `make`;
/// the error names the failing check.
pub async fn run_all(make: impl Fn() -> Arc<dyn Bus>) -> Result<(), String> {
    for (name, check) in CHECKS {
        check(make())
            .await
            .map_err(|e| format!("bus contract check {name} failed: {e}"))?;
    }
    Ok(())
}

fn env(topic: &str, method: &str, payload: Value) -> Envelope {
    Envelope::new(topic, method, payload)
}

fn bus_err(what: &str) -> impl FnOnce(BusError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The next delivery, failing if none arrives within [`PATIENCE`].
async fn expect_delivery(sub: &mut Subscription, what: &str) -> Result<Delivery, String> {
    match tokio::time::timeout(PATIENCE, sub.next()).await {
        Ok(Some(delivery)) => Ok(delivery),
        Ok(None) => Err(format!("{what}: subscription ended")),
        Err(_) => Err(format!("{what}: nothing delivered within {PATIENCE:?}")),
    }
}

/// Fails if a delivery arrives within [`QUIET`].
async fn expect_quiet(sub: &mut Subscription, what: &str) -> Result<(), String> {
    match tokio::time::timeout(QUIET, sub.next()).await {
        Ok(Some(delivery)) => Err(format!(
            "{what}: unexpected delivery {:?}",
            delivery.envelope()
        )),
        Ok(None) | Err(_) => Ok(()),
    }
}

/// Takes and acks deliveries until the subscription stays quiet.
async fn drain(sub: &mut Subscription) -> Result<Vec<Value>, String> {
    let mut seen = Vec::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(QUIET, sub.next()).await {
        seen.push(delivery.envelope().payload.clone());
        delivery.ack().await.map_err(bus_err("ack"))?;
    }
    Ok(seen)
}

/// Ten casts to a topic with two consumers: each message is delivered
/// exactly once in total, and both consumers get some.
pub async fn cast_delivers_once_across_competing_consumers(
    bus: Arc<dyn Bus>,
) -> Result<(), String> {
    let topic = "contract.competing";
    let mut a = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    let mut b = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    for i in 0..10 {
        bus.cast(topic, env(topic, "work", json!(i)))
            .await
            .map_err(bus_err("cast"))?;
    }
    let (got_a, got_b) = tokio::join!(drain(&mut a), drain(&mut b));
    let (got_a, got_b) = (got_a?, got_b?);
    if got_a.is_empty() || got_b.is_empty() {
        return Err(format!(
            "work not shared between consumers: a got {got_a:?}, b got {got_b:?}"
        ));
    }
    let mut all: Vec<Value> = got_a.into_iter().chain(got_b).collect();
    all.sort_by_key(|v| v.as_i64());
    let expected: Vec<Value> = (0..10).map(|i| json!(i)).collect();
    if all != expected {
        return Err(format!("expected each of 0..10 once, got {all:?}"));
    }
    Ok(())
}

/// Casts sent before anyone subscribes wait in the queue and arrive, in
/// order, once a consumer subscribes.
pub async fn cast_queued_before_subscribe(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.queued";
    for i in 0..3 {
        bus.cast(topic, env(topic, "work", json!(i)))
            .await
            .map_err(bus_err("cast"))?;
    }
    let mut sub = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    let mut got = Vec::new();
    for _ in 0..3 {
        let delivery = expect_delivery(&mut sub, "queued cast").await?;
        got.push(delivery.envelope().payload.clone());
        delivery.ack().await.map_err(bus_err("ack"))?;
    }
    if got != vec![json!(0), json!(1), json!(2)] {
        return Err(format!("expected [0, 1, 2] in order, got {got:?}"));
    }
    expect_quiet(&mut sub, "after the queued casts").await
}

async fn serve_once(
    mut sub: Subscription,
    answer: impl FnOnce(&Envelope) -> Result<Value, String> + Send,
) -> Result<Envelope, String> {
    let delivery = expect_delivery(&mut sub, "call request").await?;
    if !delivery.expects_reply() {
        return Err("a call's delivery must expect a reply".to_owned());
    }
    let envelope = delivery.envelope().clone();
    delivery
        .reply(answer(&envelope))
        .await
        .map_err(bus_err("reply"))?;
    Ok(envelope)
}

/// A call reaches a consumer, whose reply is the call's result.
pub async fn call_reply(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.call";
    let sub = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    let server = tokio::spawn(serve_once(sub, |env| {
        let n = env.payload["n"].as_i64().unwrap_or_default();
        Ok(json!({ "n": n + 1 }))
    }));
    let result = bus
        .call(topic, env(topic, "add_one", json!({"n": 41})), PATIENCE)
        .await
        .map_err(bus_err("call"))?;
    let request = server.await.map_err(|e| format!("server task: {e}"))??;
    if request.method != "add_one" || request.payload != json!({"n": 41}) {
        return Err(format!("consumer saw a different request: {request:?}"));
    }
    if result != json!({"n": 42}) {
        return Err(format!("expected {{\"n\": 42}}, got {result}"));
    }
    Ok(())
}

/// A call made before anyone subscribes is answered once a consumer
/// subscribes within the timeout.
pub async fn call_queued_before_subscribe(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.call-queued";
    let caller = {
        let bus = bus.clone();
        tokio::spawn(async move {
            bus.call(topic, env(topic, "ping", Value::Null), PATIENCE)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sub = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    serve_once(sub, |_| Ok(json!("pong"))).await?;
    let result = caller
        .await
        .map_err(|e| format!("caller task: {e}"))?
        .map_err(bus_err("call"))?;
    if result != json!("pong") {
        return Err(format!("expected \"pong\", got {result}"));
    }
    Ok(())
}

/// A call nobody answers fails with [`BusError::Timeout`] after (not
/// before) its timeout, both without consumers and with a consumer that
/// holds the request without replying.
pub async fn call_timeout(bus: Arc<dyn Bus>) -> Result<(), String> {
    let timeout = Duration::from_millis(150);
    let check = |result: Result<Value, BusError>, started: Instant, what: &str| match result {
        Err(BusError::Timeout { .. }) if started.elapsed() >= timeout => Ok(()),
        Err(BusError::Timeout { .. }) => Err(format!(
            "{what}: timed out after {:?}, before the {timeout:?} timeout",
            started.elapsed()
        )),
        other => Err(format!("{what}: expected a timeout, got {other:?}")),
    };

    let topic = "contract.timeout-nobody";
    let started = Instant::now();
    let result = bus.call(topic, env(topic, "m", Value::Null), timeout).await;
    check(result, started, "no consumer")?;

    let topic = "contract.timeout-silent";
    let mut sub = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    let holder = tokio::spawn(async move {
        let delivery = expect_delivery(&mut sub, "silent consumer").await?;
        tokio::time::sleep(timeout * 3).await;
        delivery.ack().await.map_err(bus_err("late ack"))
    });
    let started = Instant::now();
    let result = bus.call(topic, env(topic, "m", Value::Null), timeout).await;
    check(result, started, "silent consumer")?;
    holder.await.map_err(|e| format!("holder task: {e}"))?
}

/// A handler's error reply reaches the caller as [`BusError::Remote`] with
/// its message.
pub async fn call_remote_error(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.remote-error";
    let sub = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    let server = tokio::spawn(serve_once(sub, |_| Err("instance not found".to_owned())));
    let result = bus
        .call(topic, env(topic, "m", Value::Null), PATIENCE)
        .await;
    server.await.map_err(|e| format!("server task: {e}"))??;
    match result {
        Err(BusError::Remote { message }) if message == "instance not found" => Ok(()),
        other => Err(format!(
            "expected Remote {{ message: \"instance not found\" }}, got {other:?}"
        )),
    }
}

/// Every current fanout subscriber gets exactly one copy.
pub async fn fanout_to_all(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.fanout";
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(
            bus.subscribe_fanout(topic)
                .await
                .map_err(bus_err("subscribe_fanout"))?,
        );
    }
    bus.fanout(topic, env(topic, "update", json!({"v": 1})))
        .await
        .map_err(bus_err("fanout"))?;
    for (i, sub) in subs.iter_mut().enumerate() {
        let delivery = expect_delivery(sub, &format!("fanout subscriber {i}")).await?;
        if delivery.envelope().payload != json!({"v": 1}) || delivery.envelope().method != "update"
        {
            return Err(format!(
                "subscriber {i} got the wrong message {:?}",
                delivery.envelope()
            ));
        }
        delivery.ack().await.map_err(bus_err("ack"))?;
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        expect_quiet(sub, &format!("fanout subscriber {i} after its copy")).await?;
    }
    Ok(())
}

/// Fanning out with no subscriber succeeds (the message is dropped).
pub async fn fanout_without_subscribers(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.fanout-empty";
    bus.fanout(topic, env(topic, "m", Value::Null))
        .await
        .map_err(bus_err("fanout with no subscriber"))
}

/// A delivery dropped without ack comes back (marked redelivered); once
/// acked it does not.
pub async fn unacked_delivery_redelivered(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.redeliver";
    let mut sub = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    bus.cast(topic, env(topic, "m", json!("once")))
        .await
        .map_err(bus_err("cast"))?;
    let first = expect_delivery(&mut sub, "first delivery").await?;
    if first.redelivered() {
        return Err("a first delivery must not be marked redelivered".to_owned());
    }
    drop(first);
    let second = expect_delivery(&mut sub, "redelivery of the dropped message").await?;
    if second.envelope().payload != json!("once") || !second.redelivered() {
        return Err(format!(
            "expected the dropped message marked redelivered, got {second:?}"
        ));
    }
    second.ack().await.map_err(bus_err("ack"))?;
    expect_quiet(&mut sub, "after the ack").await
}

/// With two consumers, a delivery dropped (with its consumer) goes to the
/// other consumer.
pub async fn unacked_delivery_goes_to_other_consumer(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.redeliver-other";
    let mut a = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    let mut b = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    bus.cast(topic, env(topic, "m", json!("hot potato")))
        .await
        .map_err(bus_err("cast"))?;
    let winner = tokio::select! {
        delivery = a.next() => delivery.map(|d| (d, true)),
        delivery = b.next() => delivery.map(|d| (d, false)),
        () = tokio::time::sleep(PATIENCE) => None,
    };
    let Some((delivery, a_got_it)) = winner else {
        return Err(format!("nothing delivered within {PATIENCE:?}"));
    };
    // The consumer that got it dies without acking: first its
    // subscription goes, then the unsettled delivery.
    let mut other = if a_got_it {
        drop(a);
        b
    } else {
        drop(b);
        a
    };
    drop(delivery);
    let again = expect_delivery(&mut other, "redelivery to the other consumer").await?;
    if again.envelope().payload != json!("hot potato") || !again.redelivered() {
        return Err(format!(
            "expected the dropped message marked redelivered, got {again:?}"
        ));
    }
    again.ack().await.map_err(bus_err("ack"))?;
    expect_quiet(&mut other, "after the ack").await
}

/// A call whose delivery is dropped unanswered is redelivered, and the
/// caller gets the reply to the redelivery.
pub async fn unacked_call_redelivered(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.redeliver-call";
    let mut sub = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    let caller = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.call(topic, env(topic, "m", json!(1)), PATIENCE).await })
    };
    drop(expect_delivery(&mut sub, "call request").await?);
    let again = expect_delivery(&mut sub, "redelivered call request").await?;
    if !again.redelivered() || !again.expects_reply() {
        return Err(format!("expected a redelivered call, got {again:?}"));
    }
    again
        .reply(Ok(json!("second time lucky")))
        .await
        .map_err(bus_err("reply"))?;
    let result = caller
        .await
        .map_err(|e| format!("caller task: {e}"))?
        .map_err(bus_err("call"))?;
    if result != json!("second time lucky") {
        return Err(format!("expected the redelivery's reply, got {result}"));
    }
    Ok(())
}

/// Messages handed to a consumer that unsubscribes before taking them are
/// not lost: the next consumer gets them.
pub async fn undelivered_messages_survive_subscriber_drop(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.subscriber-drop";
    let first = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    for i in 0..3 {
        bus.cast(topic, env(topic, "m", json!(i)))
            .await
            .map_err(bus_err("cast"))?;
    }
    drop(first);
    let mut second = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    let mut got: BTreeSet<i64> = BTreeSet::new();
    for _ in 0..3 {
        let delivery = expect_delivery(&mut second, "message of a dropped consumer").await?;
        got.extend(delivery.envelope().payload.as_i64());
        delivery.ack().await.map_err(bus_err("ack"))?;
    }
    if got != BTreeSet::from([0, 1, 2]) {
        return Err(format!("expected 0, 1 and 2, got {got:?}"));
    }
    expect_quiet(&mut second, "after the three messages").await
}

/// Topic, method, payload and request id arrive unchanged, for casts,
/// calls and fanouts.
pub async fn request_id_preserved(bus: Arc<dyn Bus>) -> Result<(), String> {
    let topic = "contract.request-id";
    let sent = env(topic, "do_it", json!({"a": [1, 2]})).with_request_id("req-6f1c");

    let mut sub = bus.subscribe(topic).await.map_err(bus_err("subscribe"))?;
    bus.cast(topic, sent.clone())
        .await
        .map_err(bus_err("cast"))?;
    let delivery = expect_delivery(&mut sub, "cast").await?;
    if delivery.envelope() != &sent {
        return Err(format!(
            "cast: sent {sent:?}, received {:?}",
            delivery.envelope()
        ));
    }
    delivery.ack().await.map_err(bus_err("ack"))?;

    let server = tokio::spawn(serve_once(sub, |_| Ok(Value::Null)));
    bus.call(topic, sent.clone(), PATIENCE)
        .await
        .map_err(bus_err("call"))?;
    let received = server.await.map_err(|e| format!("server task: {e}"))??;
    if received != sent {
        return Err(format!("call: sent {sent:?}, received {received:?}"));
    }

    let mut fan = bus
        .subscribe_fanout(topic)
        .await
        .map_err(bus_err("subscribe_fanout"))?;
    bus.fanout(topic, sent.clone())
        .await
        .map_err(bus_err("fanout"))?;
    let delivery = expect_delivery(&mut fan, "fanout").await?;
    if delivery.envelope() != &sent {
        return Err(format!(
            "fanout: sent {sent:?}, received {:?}",
            delivery.envelope()
        ));
    }
    delivery.ack().await.map_err(bus_err("ack"))
}

/// A consumer of one topic receives nothing sent to another.
pub async fn topics_are_isolated(bus: Arc<dyn Bus>) -> Result<(), String> {
    let mut a = bus
        .subscribe("contract.iso-a")
        .await
        .map_err(bus_err("subscribe"))?;
    let mut fan_a = bus
        .subscribe_fanout("contract.iso-a")
        .await
        .map_err(bus_err("subscribe_fanout"))?;
    bus.cast("contract.iso-b", env("contract.iso-b", "m", Value::Null))
        .await
        .map_err(bus_err("cast"))?;
    bus.fanout("contract.iso-b", env("contract.iso-b", "m", Value::Null))
        .await
        .map_err(bus_err("fanout"))?;
    expect_quiet(&mut a, "consumer of another topic").await?;
    expect_quiet(&mut fan_a, "fanout subscriber of another topic").await
}
