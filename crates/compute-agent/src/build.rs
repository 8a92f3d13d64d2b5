//! The build saga of one guest: `resolve_image` (reads the image and its kernel and
//! ramdisk from the image API, so the driver knows where to fetch them and what they must
//! hash to; no undo: it only reads), `prepare_vif_events` (starts keeping the
//! `network-vif-plugged` events of the ports not yet ACTIVE, when the driver plugs ports;
//! undo: stop keeping them), `spawn_guest` (undo: destroy it), `wait_vifs_plugged` (as
//! Nova: the guest is not built until the network service said its ports are plugged, or
//! the wait timed out and `vif_plugging_is_fatal` is off) and `wait_running` (no undo: it
//! only observes). When a step fails the saga destroys what it made, and the agent
//! reports the failure so the conductor can reschedule. Port allocation, the image cache
//! and config drives join as steps in front of `spawn_guest` with the network and QEMU
//! slices.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferro_client::{Client, TokenSource};
use ferro_saga::{MemoryLog, Saga, Step, StepError};
use ferro_virt::{Driver, ImageSource, InstanceSpec, PowerState, VirtError};
use serde_json::{Value, json};

use crate::Agent;
use crate::events::{WaitError, Waiters};

/// The event a plugged port is announced with.
pub const VIF_PLUGGED: &str = "network-vif-plugged";

/// What the build steps work on.
pub struct BuildCtx {
    pub driver: Arc<dyn Driver>,
    pub spawn_timeout: Duration,
    /// The image API and the service's credentials; `None` when the driver needs no
    /// image bytes (fake).
    pub images: Option<(String, Arc<dyn TokenSource>)>,
    /// The host's instance events, and how long a build waits for its ports (zero: not
    /// at all) and whether it fails when they do not come (Nova's `vif_plugging_timeout`,
    /// `vif_plugging_is_fatal`).
    pub events: Arc<Waiters>,
    pub vif_timeout: Duration,
    pub vif_fatal: bool,
}

fn spec_of(state: &Value) -> Result<InstanceSpec, StepError> {
    serde_json::from_value(state["instance"].clone()).map_err(StepError::new)
}

/// Fills the spec's image sources from the image API with the service's token (Glance
/// lets the `service` role read any image, as Nova's image cache needs).
pub struct ResolveImage;

async fn image_source(c: &Client, base: &str, id: &str) -> Result<(ImageSource, Value), StepError> {
    let r = c
        .get(&format!("/v2/images/{id}"))
        .await
        .map_err(StepError::from_error)?;
    if r.status != 200 {
        return Err(StepError::new(format!(
            "Image {id} could not be read: the image service answered {}",
            r.status
        )));
    }
    let img = r.body;
    if img["status"] != "active" {
        return Err(StepError::new(format!(
            "Image {id} is not active (status {})",
            img["status"]
        )));
    }
    let text = |k: &str| {
        img[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let source = ImageSource {
        id: id.to_string(),
        url: format!("{base}/v2/images/{id}/file"),
        token: c.token.clone(),
        disk_format: text("disk_format").unwrap_or_default(),
        os_hash_algo: text("os_hash_algo"),
        os_hash_value: text("os_hash_value"),
    };
    Ok((source, img))
}

/// Fills `spec`'s image, kernel and ramdisk sources from the image API `images` names
/// (nothing to do without one).
pub async fn resolve_image(
    images: Option<&(String, Arc<dyn TokenSource>)>,
    spec: &mut InstanceSpec,
) -> Result<(), StepError> {
    let Some((url, auth)) = images else {
        return Ok(());
    };
    let token = auth.token().await.map_err(StepError::from_error)?;
    let base = url.trim_end_matches('/');
    let c = Client::new(base).with_token(&token);
    let (root, img) = image_source(&c, base, &spec.image_ref).await?;
    spec.image = Some(root);
    let prop = |k: &str| {
        img[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    spec.kernel = None;
    spec.ramdisk = None;
    if let Some(k) = prop("kernel_id") {
        spec.kernel = Some(image_source(&c, base, &k).await?.0);
        if let Some(r) = prop("ramdisk_id") {
            spec.ramdisk = Some(image_source(&c, base, &r).await?.0);
        }
    }
    spec.os_command_line = prop("os_command_line");
    Ok(())
}

/// The image API and credentials of `agent`, when its driver needs image bytes.
pub fn image_api(agent: &Agent) -> Option<(String, Arc<dyn TokenSource>)> {
    (!agent.config.image_url.is_empty())
        .then(|| (agent.config.image_url.clone(), agent.auth.clone()))
}

#[async_trait]
impl Step<BuildCtx> for ResolveImage {
    fn name(&self) -> &'static str {
        "resolve_image"
    }
    async fn run(&self, ctx: &BuildCtx, state: &mut Value) -> Result<(), StepError> {
        let mut spec = spec_of(state)?;
        resolve_image(ctx.images.as_ref(), &mut spec).await?;
        state["instance"] = serde_json::to_value(&spec).map_err(StepError::new)?;
        Ok(())
    }
    async fn undo(&self, _ctx: &BuildCtx, _state: &Value) -> Result<(), StepError> {
        Ok(())
    }
}

/// The ports whose plugging the build waits for: those not yet ACTIVE, when the driver
/// plugs ports and waiting is on.
fn awaited_ports(ctx: &BuildCtx, spec: &InstanceSpec) -> Vec<String> {
    if !ctx.driver.plugs_vifs() || ctx.vif_timeout.is_zero() {
        return Vec::new();
    }
    spec.nics
        .iter()
        .filter(|n| !n.active)
        .map(|n| n.port_id.clone())
        .collect()
}

/// Starts keeping the port events before the ports are plugged, so none is missed.
pub struct PrepareVifEvents;

#[async_trait]
impl Step<BuildCtx> for PrepareVifEvents {
    fn name(&self) -> &'static str {
        "prepare_vif_events"
    }
    async fn run(&self, ctx: &BuildCtx, state: &mut Value) -> Result<(), StepError> {
        let spec = spec_of(state)?;
        ctx.events
            .prepare(&spec.uuid, VIF_PLUGGED, &awaited_ports(ctx, &spec));
        Ok(())
    }
    async fn undo(&self, ctx: &BuildCtx, state: &Value) -> Result<(), StepError> {
        ctx.events.clear(&spec_of(state)?.uuid);
        Ok(())
    }
}

/// Waits for the network service to announce every awaited port plugged.
pub struct WaitVifsPlugged;

#[async_trait]
impl Step<BuildCtx> for WaitVifsPlugged {
    fn name(&self) -> &'static str {
        "wait_vifs_plugged"
    }
    async fn run(&self, ctx: &BuildCtx, state: &mut Value) -> Result<(), StepError> {
        let spec = spec_of(state)?;
        let ports = awaited_ports(ctx, &spec);
        let waited = ctx
            .events
            .wait(&spec.uuid, VIF_PLUGGED, &ports, ctx.vif_timeout)
            .await;
        ctx.events.clear(&spec.uuid);
        match waited {
            Ok(()) => Ok(()),
            Err(WaitError::TimedOut(missing)) if !ctx.vif_fatal => {
                tracing::warn!(uuid = %spec.uuid, ?missing, "ports not announced plugged in time; going on");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(uuid = %spec.uuid, error = ?e, "virtual interface creation failed");
                Err(StepError::new("Virtual Interface creation failed"))
            }
        }
    }
    async fn undo(&self, _ctx: &BuildCtx, _state: &Value) -> Result<(), StepError> {
        Ok(())
    }
}

/// Creates and starts the guest.
pub struct SpawnGuest;

#[async_trait]
impl Step<BuildCtx> for SpawnGuest {
    fn name(&self) -> &'static str {
        "spawn_guest"
    }
    async fn run(&self, ctx: &BuildCtx, state: &mut Value) -> Result<(), StepError> {
        let spec = spec_of(state)?;
        ctx.driver.spawn(&spec).await.map_err(StepError::from_error)
    }
    async fn undo(&self, ctx: &BuildCtx, state: &Value) -> Result<(), StepError> {
        let spec = spec_of(state)?;
        ctx.driver
            .destroy(&spec.uuid)
            .await
            .map_err(StepError::from_error)
    }
}

/// Waits until the hypervisor reports the guest running.
pub struct WaitRunning;

#[async_trait]
impl Step<BuildCtx> for WaitRunning {
    fn name(&self) -> &'static str {
        "wait_running"
    }
    async fn run(&self, ctx: &BuildCtx, state: &mut Value) -> Result<(), StepError> {
        let spec = spec_of(state)?;
        let start = Instant::now();
        loop {
            match ctx.driver.power_state(&spec.uuid).await {
                Ok(PowerState::Running) => {
                    state["power_state"] = json!(PowerState::Running);
                    return Ok(());
                }
                Ok(PowerState::Crashed) => {
                    return Err(StepError::new("the guest crashed while starting"));
                }
                Ok(_) | Err(VirtError::NotFound(_)) => {}
                Err(e) => return Err(StepError::from_error(e)),
            }
            if start.elapsed() > ctx.spawn_timeout {
                return Err(StepError::new("the guest did not start in time"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    async fn undo(&self, _ctx: &BuildCtx, _state: &Value) -> Result<(), StepError> {
        Ok(())
    }
}

/// The build saga.
pub fn saga() -> Saga<BuildCtx> {
    Saga::new("build_and_run_instance")
        .step(ResolveImage)
        .step(PrepareVifEvents)
        .step(SpawnGuest)
        .step(WaitVifsPlugged)
        .step(WaitRunning)
}

/// Builds `instance` on the agent's host: its power state, or why it failed (after undo).
pub async fn build(agent: &Agent, instance: InstanceSpec) -> Result<PowerState, String> {
    let ctx = BuildCtx {
        driver: agent.driver.clone(),
        spawn_timeout: agent.config.spawn_timeout,
        images: image_api(agent),
        events: agent.events.clone(),
        vif_timeout: agent.config.vif_plugging_timeout,
        vif_fatal: agent.config.vif_plugging_is_fatal,
    };
    let initial = json!({ "instance": instance });
    // TODO-correctness: agents have no database, so the saga log is in memory and a crash
    // mid-build is reconciled by the conductor's sweep, not resumed here.
    match saga().execute(&ctx, &MemoryLog::new(), initial).await {
        Ok(state) => {
            Ok(serde_json::from_value(state["power_state"].clone()).unwrap_or(PowerState::Running))
        }
        Err(e) => Err(e
            .step_error()
            .map(|s| s.message().to_string())
            .unwrap_or_else(|| e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use ferro_saga::testing;
    use ferro_virt::FakeDriver;

    use super::*;

    fn initial(uuid: &str) -> Value {
        json!({"instance": InstanceSpec {
            uuid: uuid.into(), name: format!("instance-{uuid}"), vcpus: 1, memory_mb: 64,
            root_gb: 1, ephemeral_gb: 0, swap_mb: 0, image_ref: "img".into(),
            user_data: None, key_data: None, ..InstanceSpec::default()
        }})
    }

    #[tokio::test]
    async fn the_build_saga_leaks_nothing_and_repeats_safely() {
        let ctx = BuildCtx {
            driver: Arc::new(FakeDriver::new()),
            spawn_timeout: Duration::from_secs(2),
            images: None,
            events: Arc::new(Waiters::default()),
            vif_timeout: Duration::ZERO,
            vif_fatal: true,
        };
        let count = async |c: &BuildCtx| c.driver.list_instances().await.map(|v| v.len());
        testing::fail_each_step_in_turn(saga, &ctx, initial("a"), count)
            .await
            .unwrap();
        testing::run_each_step_twice(saga, &ctx, initial("b"), count)
            .await
            .unwrap();
    }

    /// A stand-in image API: each connection gets the JSON of the image its path names
    /// (404 for unknown ones), checking the service token came along.
    async fn image_api(images: Value) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let id = path.trim_start_matches("/v2/images/");
                let authed = req.to_ascii_lowercase().contains("x-auth-token: tok");
                let (status, body) = match &images[id] {
                    Value::Null => ("404 Not Found", "{}".to_string()),
                    _ if !authed => ("401 Unauthorized", "{}".to_string()),
                    img => ("200 OK", img.to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        url
    }

    struct Tok;

    #[async_trait]
    impl TokenSource for Tok {
        async fn token(&self) -> Result<String, ferro_client::ClientError> {
            Ok("tok".into())
        }
        fn invalidate(&self) {}
    }

    #[tokio::test]
    async fn resolve_image_names_the_bytes_kernel_and_ramdisk_of_an_image() {
        let url = image_api(json!({
            "ami": {"status": "active", "disk_format": "ami", "os_hash_algo": "sha512",
                    "os_hash_value": "ab", "kernel_id": "aki", "ramdisk_id": "ari",
                    "os_command_line": "console=ttyS0"},
            "aki": {"status": "active", "disk_format": "aki"},
            "ari": {"status": "active", "disk_format": "ari"},
            "queued": {"status": "queued", "disk_format": "raw"},
        }))
        .await;
        let api: (String, Arc<dyn TokenSource>) = (url.clone(), Arc::new(Tok));
        let mut spec = InstanceSpec {
            uuid: "u".into(),
            image_ref: "ami".into(),
            ..InstanceSpec::default()
        };
        resolve_image(Some(&api), &mut spec).await.unwrap();
        let image = spec.image.clone().unwrap();
        assert_eq!(image.url, format!("{url}/v2/images/ami/file"));
        assert_eq!(image.token.as_deref(), Some("tok"));
        assert_eq!(image.disk_format, "ami");
        assert_eq!(image.os_hash_value.as_deref(), Some("ab"));
        assert_eq!(spec.kernel.as_ref().unwrap().id, "aki");
        assert_eq!(spec.ramdisk.as_ref().unwrap().id, "ari");
        assert_eq!(spec.os_command_line.as_deref(), Some("console=ttyS0"));

        for (id, why) in [("queued", "not active"), ("gone", "answered 404")] {
            let mut spec = InstanceSpec {
                image_ref: id.into(),
                ..InstanceSpec::default()
            };
            let e = resolve_image(Some(&api), &mut spec).await.unwrap_err();
            assert!(e.message().contains(why), "{}", e.message());
        }
        // Without an image API (the fake driver) the spec stays as it is.
        let mut spec = InstanceSpec::default();
        resolve_image(None, &mut spec).await.unwrap();
        assert!(spec.image.is_none());
    }
}
