//! Instance events from other services (Nova's `InstanceEvents`): a build registers the
//! events it will wait for *before* it acts, so one that arrives early is kept, then waits
//! for all of them with a deadline. Events nobody waits for are dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// `(instance uuid, event name, tag)`.
type Key = (String, String, String);

/// The events builds on this host wait for, with the status each arrived with.
#[derive(Default)]
pub struct Waiters {
    slots: Mutex<HashMap<Key, Option<String>>>,
    arrived: tokio::sync::Notify,
}

/// How a wait ended badly.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitError {
    /// Events still missing at the deadline (`name-tag`).
    TimedOut(Vec<String>),
    /// An event arrived with status `failed`.
    Failed(String),
}

fn key(uuid: &str, name: &str, tag: &str) -> Key {
    (uuid.to_string(), name.to_string(), tag.to_string())
}

impl Waiters {
    /// Starts keeping `name` events for `uuid` with each of `tags`.
    pub fn prepare(&self, uuid: &str, name: &str, tags: &[String]) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for t in tags {
            slots.entry(key(uuid, name, t)).or_insert(None);
        }
    }

    /// Forgets every event of `uuid` (the build ended).
    pub fn clear(&self, uuid: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(u, _, _), _| u != uuid);
    }

    /// Records an event; answers whether a build waited for it.
    pub fn deliver(&self, uuid: &str, name: &str, tag: &str, status: &str) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get_mut(&key(uuid, name, tag)) {
            Some(slot) => {
                *slot = Some(status.to_string());
                drop(slots);
                self.arrived.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// Waits until every `name` event of `uuid` with one of `tags` arrived, at most
    /// `timeout`; the events stay registered (the caller clears them).
    pub async fn wait(
        &self,
        uuid: &str,
        name: &str,
        tags: &[String],
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let missing: Vec<String> = {
                let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                let mut missing = Vec::new();
                for t in tags {
                    match slots.get(&key(uuid, name, t)).cloned().flatten() {
                        Some(s) if s == "failed" => {
                            return Err(WaitError::Failed(format!("{name}-{t}")));
                        }
                        // `in-progress` is news, not the end.
                        Some(s) if s == "completed" => {}
                        _ => missing.push(format!("{name}-{t}")),
                    }
                }
                missing
            };
            if missing.is_empty() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(WaitError::TimedOut(missing));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn an_early_event_is_kept_and_a_late_one_wakes_the_wait() {
        let w = std::sync::Arc::new(Waiters::default());
        let t = tags(&["p1", "p2"]);
        w.prepare("vm", "network-vif-plugged", &t);
        assert!(w.deliver("vm", "network-vif-plugged", "p1", "completed"));
        assert!(!w.deliver("vm", "network-vif-plugged", "p9", "completed"));
        assert!(!w.deliver("other", "network-vif-plugged", "p1", "completed"));
        let w2 = w.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            w2.deliver("vm", "network-vif-plugged", "p2", "completed");
        });
        w.wait("vm", "network-vif-plugged", &t, Duration::from_secs(5))
            .await
            .unwrap();
        w.clear("vm");
        assert!(!w.deliver("vm", "network-vif-plugged", "p1", "completed"));
    }

    #[tokio::test]
    async fn a_missing_event_times_out_and_a_failed_one_fails() {
        let w = Waiters::default();
        let t = tags(&["p1", "p2"]);
        w.prepare("vm", "network-vif-plugged", &t);
        w.deliver("vm", "network-vif-plugged", "p1", "in-progress");
        assert_eq!(
            w.wait("vm", "network-vif-plugged", &t, Duration::from_millis(50))
                .await,
            Err(WaitError::TimedOut(tags(&[
                "network-vif-plugged-p1",
                "network-vif-plugged-p2"
            ])))
        );
        w.deliver("vm", "network-vif-plugged", "p2", "failed");
        assert_eq!(
            w.wait("vm", "network-vif-plugged", &t, Duration::from_secs(5))
                .await,
            Err(WaitError::Failed("network-vif-plugged-p2".into()))
        );
    }
}
