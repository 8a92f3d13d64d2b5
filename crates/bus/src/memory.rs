//! The in-process bus backend.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::{Acknowledge, Bus, BusError, Delivery, Envelope, Subscription, SubscriptionSource};

type ReplyTx = oneshot::Sender<Result<Value, String>>;

/// A message in flight, with the reply channel of its caller (calls only).
struct Message {
    envelope: Envelope,
    reply: Option<ReplyTx>,
    redelivered: bool,
}

struct Consumer {
    id: u64,
    tx: mpsc::UnboundedSender<Message>,
}

/// A work queue: messages waiting for a consumer, and the consumers.
/// Invariant: `pending` is non-empty only while `consumers` is empty.
#[derive(Default)]
struct Queue {
    pending: VecDeque<Message>,
    consumers: Vec<Consumer>,
    cursor: usize,
}

impl Queue {
    /// Hands `msg` to the next consumer (round robin), or queues it.
    fn dispatch(&mut self, mut msg: Message, front: bool) {
        while !self.consumers.is_empty() {
            let index = self.cursor % self.consumers.len();
            self.cursor = index + 1;
            match self.consumers[index].tx.send(msg) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    // The consumer is gone; forget it and try the next.
                    self.consumers.remove(index);
                    self.cursor = index;
                    msg = back;
                }
            }
        }
        if front {
            self.pending.push_front(msg);
        } else {
            self.pending.push_back(msg);
        }
    }
}

#[derive(Default)]
struct Shared {
    queues: Mutex<HashMap<String, Queue>>,
    fanouts: Mutex<HashMap<String, Vec<Consumer>>>,
    next_id: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No critical section here can panic half-way, so a poisoned lock still
    // guards consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn dispatch(&self, topic: &str, msg: Message, front: bool) {
        lock(&self.queues)
            .entry(topic.to_owned())
            .or_default()
            .dispatch(msg, front);
    }
}

/// An in-process [`Bus`]: queues, competing consumers, calls and fanout
/// over tokio channels. Clones share the same bus. Nothing survives the
/// process; delivery is at-least-once within it.
#[derive(Clone, Default)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

impl MemoryBus {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn send(&self, topic: &str, mut envelope: Envelope, reply: Option<ReplyTx>) {
        topic.clone_into(&mut envelope.topic);
        self.shared.dispatch(
            topic,
            Message {
                envelope,
                reply,
                redelivered: false,
            },
            false,
        );
    }
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").finish_non_exhaustive()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn cast(&self, topic: &str, msg: Envelope) -> Result<(), BusError> {
        self.send(topic, msg, None);
        Ok(())
    }

    async fn call(&self, topic: &str, msg: Envelope, timeout: Duration) -> Result<Value, BusError> {
        let (tx, rx) = oneshot::channel();
        self.send(topic, msg, Some(tx));
        // On timeout `rx` is dropped, which marks the request expired: a
        // consumer skips it instead of handling it.
        match tokio::time::timeout(timeout, rx).await {
            Err(_elapsed) => Err(BusError::Timeout {
                topic: topic.to_owned(),
                timeout,
            }),
            Ok(Err(_closed)) => Err(BusError::Closed),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(message))) => Err(BusError::Remote { message }),
        }
    }

    async fn fanout(&self, topic: &str, msg: Envelope) -> Result<(), BusError> {
        let mut envelope = msg;
        topic.clone_into(&mut envelope.topic);
        let mut fanouts = lock(&self.shared.fanouts);
        if let Some(subscribers) = fanouts.get_mut(topic) {
            subscribers.retain(|consumer| {
                consumer
                    .tx
                    .send(Message {
                        envelope: envelope.clone(),
                        reply: None,
                        redelivered: false,
                    })
                    .is_ok()
            });
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut queues = lock(&self.shared.queues);
            let queue = queues.entry(topic.to_owned()).or_default();
            queue.consumers.push(Consumer { id, tx });
            let waiting = std::mem::take(&mut queue.pending);
            for msg in waiting {
                queue.dispatch(msg, false);
            }
        }
        Ok(Subscription::new(MemorySource {
            rx,
            kind: SourceKind::Work {
                shared: Arc::downgrade(&self.shared),
                topic: topic.to_owned(),
                id,
            },
        }))
    }

    async fn subscribe_fanout(&self, topic: &str) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.fanouts)
            .entry(topic.to_owned())
            .or_default()
            .push(Consumer { id, tx: tx.clone() });
        Ok(Subscription::new(MemorySource {
            rx,
            kind: SourceKind::Fanout {
                shared: Arc::downgrade(&self.shared),
                topic: topic.to_owned(),
                id,
                own: tx.downgrade(),
            },
        }))
    }
}

enum SourceKind {
    Work {
        shared: Weak<Shared>,
        topic: String,
        id: u64,
    },
    Fanout {
        shared: Weak<Shared>,
        topic: String,
        id: u64,
        /// This subscription's own queue, where unsettled copies go back.
        own: mpsc::WeakUnboundedSender<Message>,
    },
}

struct MemorySource {
    rx: mpsc::UnboundedReceiver<Message>,
    kind: SourceKind,
}

#[async_trait]
impl SubscriptionSource for MemorySource {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            // `recv` is cancel safe and nothing below awaits.
            let msg = self.rx.recv().await?;
            if let Some(reply) = &msg.reply
                && reply.is_closed()
            {
                tracing::debug!(
                    topic = %msg.envelope.topic,
                    method = %msg.envelope.method,
                    "skipping call whose caller gave up"
                );
                continue;
            }
            let requeue = match &self.kind {
                SourceKind::Work { shared, topic, .. } => Requeue::Work {
                    shared: shared.clone(),
                    topic: topic.clone(),
                },
                SourceKind::Fanout { own, .. } => Requeue::Fanout(own.clone()),
            };
            let envelope = msg.envelope.clone();
            let redelivered = msg.redelivered;
            let expects_reply = msg.reply.is_some();
            return Some(Delivery::new(
                envelope,
                redelivered,
                expects_reply,
                Box::new(MemoryAcker { msg, requeue }),
            ));
        }
    }
}

impl Drop for MemorySource {
    fn drop(&mut self) {
        match &self.kind {
            SourceKind::Work { shared, topic, id } => {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let mut queues = lock(&shared.queues);
                let Some(queue) = queues.get_mut(topic) else {
                    return;
                };
                queue.consumers.retain(|consumer| consumer.id != *id);
                // Messages handed to us but never taken go to the others.
                self.rx.close();
                while let Ok(msg) = self.rx.try_recv() {
                    queue.dispatch(msg, false);
                }
            }
            SourceKind::Fanout {
                shared, topic, id, ..
            } => {
                if let Some(shared) = shared.upgrade()
                    && let Some(subscribers) = lock(&shared.fanouts).get_mut(topic)
                {
                    subscribers.retain(|consumer| consumer.id != *id);
                }
            }
        }
    }
}

enum Requeue {
    Work { shared: Weak<Shared>, topic: String },
    Fanout(mpsc::WeakUnboundedSender<Message>),
}

struct MemoryAcker {
    msg: Message,
    requeue: Requeue,
}

#[async_trait]
impl Acknowledge for MemoryAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.reply(Ok(Value::Null)).await
    }

    async fn reply(self: Box<Self>, result: Result<Value, String>) -> Result<(), BusError> {
        if let Some(reply) = self.msg.reply
            && reply.send(result).is_err()
        {
            // The caller timed out meanwhile; nobody to tell.
            tracing::debug!(
                topic = %self.msg.envelope.topic,
                method = %self.msg.envelope.method,
                "reply after the caller gave up"
            );
        }
        Ok(())
    }

    fn requeue(self: Box<Self>) {
        let Self { mut msg, requeue } = *self;
        msg.redelivered = true;
        match requeue {
            Requeue::Work { shared, topic } => {
                if let Some(shared) = shared.upgrade() {
                    shared.dispatch(&topic, msg, true);
                }
            }
            Requeue::Fanout(own) => {
                if let Some(tx) = own.upgrade() {
                    // Fails only if the subscription is gone: then the copy
                    // has nobody left to go to.
                    let _ = tx.send(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract;
    use serde_json::json;

    fn bus() -> Arc<dyn Bus> {
        Arc::new(MemoryBus::new())
    }

    async fn recv(sub: &mut Subscription) -> Delivery {
        match tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => panic!("subscription ended"),
            Err(_) => panic!("no delivery within 2s"),
        }
    }

    macro_rules! contract_tests {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() -> Result<(), String> {
                contract::$name(bus()).await
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

    #[tokio::test]
    async fn run_all_passes() -> Result<(), String> {
        contract::run_all(bus).await
    }

    #[tokio::test]
    async fn dispatch_is_strict_round_robin() {
        let bus = MemoryBus::new();
        let mut a = bus.subscribe("rr").await.expect("subscribe");
        let mut b = bus.subscribe("rr").await.expect("subscribe");
        for i in 0..4 {
            bus.cast("rr", Envelope::new("rr", "m", json!(i)))
                .await
                .expect("cast");
        }
        for expected in [0, 2] {
            let d = recv(&mut a).await;
            assert_eq!(d.envelope().payload, json!(expected));
            d.ack().await.expect("ack");
        }
        for expected in [1, 3] {
            let d = recv(&mut b).await;
            assert_eq!(d.envelope().payload, json!(expected));
            d.ack().await.expect("ack");
        }
    }

    #[tokio::test]
    async fn expired_call_is_skipped() {
        let bus = MemoryBus::new();
        let err = bus
            .call(
                "late",
                Envelope::new("late", "m", json!("stale")),
                Duration::from_millis(20),
            )
            .await
            .expect_err("nobody listens");
        assert!(matches!(err, BusError::Timeout { .. }));
        bus.cast("late", Envelope::new("late", "m", json!("fresh")))
            .await
            .expect("cast");
        let mut sub = bus.subscribe("late").await.expect("subscribe");
        let d = recv(&mut sub).await;
        assert_eq!(d.envelope().payload, json!("fresh"));
        d.ack().await.expect("ack");
    }

    #[tokio::test]
    async fn ack_on_call_replies_null() {
        let bus = MemoryBus::new();
        let mut sub = bus.subscribe("t").await.expect("subscribe");
        let caller = {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.call(
                    "t",
                    Envelope::new("t", "m", Value::Null),
                    Duration::from_secs(2),
                )
                .await
            })
        };
        let d = recv(&mut sub).await;
        assert!(d.expects_reply());
        d.ack().await.expect("ack");
        let got = caller.await.expect("join");
        assert_eq!(got, Ok(Value::Null));
    }

    #[tokio::test]
    async fn dropping_the_bus_ends_subscriptions() {
        let bus = MemoryBus::new();
        let mut sub = bus.subscribe("t").await.expect("subscribe");
        let mut fan = bus.subscribe_fanout("t").await.expect("subscribe");
        drop(bus);
        assert!(sub.next().await.is_none());
        assert!(fan.next().await.is_none());
    }

    #[tokio::test]
    async fn work_and_fanout_namespaces_are_separate() {
        let bus = MemoryBus::new();
        let mut work = bus.subscribe("t").await.expect("subscribe");
        let mut fan = bus.subscribe_fanout("t").await.expect("subscribe");
        bus.fanout("t", Envelope::new("t", "f", Value::Null))
            .await
            .expect("fanout");
        bus.cast("t", Envelope::new("t", "c", Value::Null))
            .await
            .expect("cast");
        let d = recv(&mut work).await;
        assert_eq!(d.envelope().method, "c");
        d.ack().await.expect("ack");
        let d = recv(&mut fan).await;
        assert_eq!(d.envelope().method, "f");
        d.ack().await.expect("ack");
    }

    #[tokio::test]
    async fn unacked_fanout_copy_comes_back_to_same_subscriber() {
        let bus = MemoryBus::new();
        let mut fan = bus.subscribe_fanout("t").await.expect("subscribe");
        bus.fanout("t", Envelope::new("t", "f", json!(7)))
            .await
            .expect("fanout");
        drop(recv(&mut fan).await);
        let d = recv(&mut fan).await;
        assert!(d.redelivered());
        assert_eq!(d.envelope().payload, json!(7));
        d.ack().await.expect("ack");
    }

    #[tokio::test]
    async fn envelope_topic_is_overwritten_by_routing_topic() {
        let bus = MemoryBus::new();
        let mut sub = bus.subscribe("real").await.expect("subscribe");
        bus.cast("real", Envelope::new("wrong", "m", Value::Null))
            .await
            .expect("cast");
        let d = recv(&mut sub).await;
        assert_eq!(d.envelope().topic, "real");
        d.ack().await.expect("ack");
    }
}
