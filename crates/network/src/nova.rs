//! The Nova notifier (Neutron's `nova.notifier`): tells the compute API about its servers'
//! ports through `POST /v2.1/os-server-external-events` with the service's credentials —
//! `network-vif-plugged` when an agent found a server's port plugged (Nova waits for it
//! before the server is ACTIVE), `network-vif-unplugged` when it went, `network-vif-deleted`
//! when the port was deleted. Events are batched for a moment and sent in one request, as
//! upstream's `send_events`; a batch Nova refuses is logged and dropped, as upstream's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferro_client::{Client, TokenSource};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::manager::{Doc, Networking};
use crate::model::s;

/// How long events gather before they are sent.
const BATCH: Duration = Duration::from_millis(20);

/// Where the events go and with whose token.
pub struct NovaNotifier {
    /// The compute API with its version (`http://host:8774/v2.1`).
    url: String,
    auth: Arc<dyn TokenSource>,
    queue: Mutex<Vec<Value>>,
    wake: tokio::sync::Notify,
}

impl NovaNotifier {
    pub fn new(compute_url: &str, auth: Arc<dyn TokenSource>) -> NovaNotifier {
        NovaNotifier {
            url: compute_url.trim_end_matches('/').to_string(),
            auth,
            queue: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    async fn send(&self, events: Vec<Value>) {
        let n = events.len();
        let token = match self.auth.token().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(events = n, error = %e, "no token to tell the compute API");
                return;
            }
        };
        let c = Client::new(&self.url).with_token(&token);
        match c
            .post("/os-server-external-events", &json!({ "events": events }))
            .await
        {
            Ok(r) if r.status == 200 || r.status == 207 => {
                tracing::debug!(events = n, status = r.status, "compute told");
            }
            Ok(r) => {
                if r.status == 401 {
                    self.auth.invalidate();
                }
                tracing::info!(events = n, status = r.status, body = %r.body, "the compute API refused events");
            }
            Err(e) => tracing::warn!(events = n, error = %e, "telling the compute API failed"),
        }
    }
}

/// The event about a port's server, when the port belongs to one (`compute:*` owner and a
/// device id).
fn event(port: &Doc, name: &str) -> Option<Value> {
    let server = s(port, "device_id");
    (s(port, "device_owner").starts_with("compute:") && !server.is_empty()).then(|| {
        json!({"server_uuid": server, "name": name, "status": "completed",
            "tag": s(port, "id")})
    })
}

impl Networking {
    /// Connects the notifier (once); without one nothing is sent.
    pub fn connect_nova(&self, notifier: NovaNotifier) {
        let _ = self.nova.set(Arc::new(notifier));
    }

    /// Queues the event `name` about `port`'s server, if it has one.
    pub(crate) fn notify_nova(&self, port: &Doc, name: &str) {
        let (Some(n), Some(e)) = (self.nova.get(), event(port, name)) else {
            return;
        };
        n.queue.lock().unwrap_or_else(|e| e.into_inner()).push(e);
        n.wake.notify_one();
    }

    /// `network-vif-plugged` / `-unplugged` for a port whose status went from `old` to
    /// `new` (Neutron tells Nova only of real transitions).
    pub(crate) fn port_status_changed(&self, port: &Doc, old: &str, new: &str) {
        match (old, new) {
            (o, "ACTIVE") if o != "ACTIVE" => self.notify_nova(port, "network-vif-plugged"),
            ("ACTIVE", "DOWN") => self.notify_nova(port, "network-vif-unplugged"),
            _ => {}
        }
    }
}

/// The notifier's sender task, when one is connected.
pub fn worker(net: Arc<Networking>) -> Option<JoinHandle<()>> {
    let n = net.nova.get()?.clone();
    Some(tokio::spawn(async move {
        loop {
            n.wake.notified().await;
            tokio::time::sleep(BATCH).await;
            let batch = std::mem::take(&mut *n.queue.lock().unwrap_or_else(|e| e.into_inner()));
            if !batch.is_empty() {
                n.send(batch).await;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_servers_ports_make_events() {
        let doc = |owner: &str, device: &str| {
            json!({"id": "p", "device_owner": owner, "device_id": device})
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(
            event(&doc("compute:nova", "vm"), "network-vif-plugged"),
            Some(json!({"server_uuid": "vm", "name": "network-vif-plugged",
                "status": "completed", "tag": "p"}))
        );
        assert_eq!(
            event(&doc("network:dhcp", "x"), "network-vif-plugged"),
            None
        );
        assert_eq!(event(&doc("compute:nova", ""), "network-vif-deleted"), None);
    }
}
