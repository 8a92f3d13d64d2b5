//! A small asynchronous QMP client: it reads QEMU's greeting, negotiates capabilities and
//! executes commands over the VM's unix socket, keeping aside the asynchronous events QEMU
//! interleaves with answers for [`Qmp::wait_event`]. One connection per operation: QEMU serves one QMP client at a
//! time, and a fresh connection is what makes an agent restart need no state.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP protocol: {0}")]
    Protocol(String),
    #[error("QMP timed out waiting for {0}")]
    Timeout(String),
    /// QEMU answered the command with an error.
    #[error("QMP {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

/// A negotiated QMP session.
pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    timeout: Duration,
    /// Events read while waiting for answers, oldest first.
    events: Vec<Value>,
}

impl Qmp {
    /// Connects to `path`, reads the greeting and leaves negotiation mode. Every later
    /// answer must come within `timeout`.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let stream = tokio::time::timeout(timeout, UnixStream::connect(path))
            .await
            .map_err(|_| QmpError::Timeout(format!("connecting to {}", path.display())))?
            .map_err(|source| QmpError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let (r, w) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(r),
            writer: w,
            next_id: 1,
            timeout,
            events: Vec::new(),
        };
        let greeting = qmp.read_message("the greeting").await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "not a QMP greeting: {greeting}"
            )));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    async fn read_message(&mut self, what: &str) -> Result<Value, QmpError> {
        self.read_until(what, tokio::time::Instant::now() + self.timeout)
            .await
    }

    /// The next message, which must come before `deadline`.
    async fn read_until(
        &mut self,
        what: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line))
            .await
            .map_err(|_| QmpError::Timeout(what.to_string()))??;
        if n == 0 {
            return Err(QmpError::Protocol(format!(
                "QEMU closed the socket before {what}"
            )));
        }
        serde_json::from_str(&line)
            .map_err(|e| QmpError::Protocol(format!("bad JSON from QEMU ({e}): {line}")))
    }

    /// Runs `command` with `arguments`; its `return` value, or the error QEMU gave.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"execute": command, "id": id});
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).await?;
        loop {
            let m = self.read_message(command).await?;
            if m.get("event").is_some() {
                self.events.push(m);
                continue;
            }
            if m.get("id").and_then(Value::as_u64) != Some(id) {
                // An answer to an earlier command of a previous client cannot come here:
                // each connection is fresh. Anything else is a protocol error.
                return Err(QmpError::Protocol(format!("unexpected answer: {m}")));
            }
            if let Some(r) = m.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = m.get("error") {
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: e["class"].as_str().unwrap_or("GenericError").to_string(),
                    desc: e["desc"].as_str().unwrap_or_default().to_string(),
                });
            }
            return Err(QmpError::Protocol(format!("answer without return: {m}")));
        }
    }

    /// Waits up to `timeout` for an event named `name` whose `data` passes `matches` (one
    /// that came while a command ran counts too); the event's `data`.
    pub async fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let is_it = |m: &Value| m["event"] == name && matches(&m["data"]);
        if let Some(i) = self.events.iter().position(is_it) {
            return Ok(self.events.remove(i)["data"].take());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let what = format!("the event {name}");
        loop {
            let mut m = self.read_until(&what, deadline).await?;
            if is_it(&m) {
                return Ok(m["data"].take());
            }
        }
    }

    /// `query-status`'s `status` (`running`, `paused`, `shutdown`...).
    pub async fn status(&mut self) -> Result<String, QmpError> {
        let r = self.execute("query-status", None).await?;
        r["status"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| QmpError::Protocol(format!("query-status without status: {r}")))
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::UnixListener;

    use super::*;

    /// A QEMU stand-in: greets, accepts capabilities, emits an event before each answer,
    /// answers `query-status`, `device_del` (then `DEVICE_DELETED`) and fails anything
    /// else as QEMU does.
    async fn fake_qemu(listener: UnixListener) {
        let (s, _) = listener.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
            .await
            .unwrap();
        while let Some(line) = lines.next_line().await.unwrap() {
            let m: Value = serde_json::from_str(&line).unwrap();
            let id = m["id"].clone();
            w.write_all(b"{\"event\": \"RESUME\", \"data\": {}}\n")
                .await
                .unwrap();
            let answer = match m["execute"].as_str().unwrap() {
                "qmp_capabilities" => json!({"return": {}, "id": id}),
                "query-status" => {
                    json!({"return": {"status": "running", "running": true}, "id": id})
                }
                "device_del" => {
                    let dev = m["arguments"]["id"].clone();
                    w.write_all(format!("{}\n", json!({"return": {}, "id": id})).as_bytes())
                        .await
                        .unwrap();
                    // The event follows the answer, as the guest releases the device.
                    json!({"event": "DEVICE_DELETED", "data": {"device": dev}})
                }
                other => json!({"error": {"class": "CommandNotFound",
                    "desc": format!("The command {other} has not been found")}, "id": id}),
            };
            w.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn negotiates_skips_events_and_reports_command_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(fake_qemu(listener));
        let mut q = Qmp::connect(&path, Duration::from_secs(5)).await.unwrap();
        assert_eq!(q.status().await.unwrap(), "running");
        match q.execute("bogus", None).await {
            Err(QmpError::Command { class, .. }) => assert_eq!(class, "CommandNotFound"),
            other => panic!("expected a command error, got {other:?}"),
        }
        // An event that came while a command ran is kept for the waiter.
        q.execute("device_del", Some(json!({"id": "net-a"})))
            .await
            .unwrap();
        q.status().await.unwrap();
        let is = |d: &str| {
            let d = d.to_string();
            move |v: &Value| v["device"] == d.as_str()
        };
        let gone = q
            .wait_event("DEVICE_DELETED", is("net-a"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(gone["device"], "net-a");
        assert!(matches!(
            q.wait_event("DEVICE_DELETED", is("net-a"), Duration::from_millis(200))
                .await,
            Err(QmpError::Timeout(_))
        ));
        drop(q);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_socket_and_a_silent_peer_are_clean_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        assert!(matches!(
            Qmp::connect(&path, Duration::from_secs(1)).await,
            Err(QmpError::Connect { .. })
        ));
        let _listener = UnixListener::bind(&path).unwrap();
        assert!(matches!(
            Qmp::connect(&path, Duration::from_millis(200)).await,
            Err(QmpError::Timeout(_))
        ));
    }
}
