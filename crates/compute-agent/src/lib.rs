//! The compute agent (nova-compute) of one host: it consumes `compute.<host>` on the bus,
//! builds guests through a [`Driver`] with a saga that undoes itself, performs power
//! actions and deletions, registers the host's inventory in placement over HTTP with its
//! service token, and heartbeats to the conductor.
//!
//! It reports every outcome to the conductor over the bus ([`ConductorRequest`]); it never
//! links the database and never writes an instance row (ARCHITECTURE.md §2, §4).

pub mod build;
pub mod events;
pub mod inventory;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferro_api_types::compute::{
    AgentRequest, CONDUCTOR_TOPIC, CONTRACT_VERSION, ConductorRequest, HostResources, MigrateStep,
    PowerAction, ShelveStep, compute_topic,
};
use ferro_bus::{Bus, Envelope};
use ferro_client::TokenSource;
use ferro_virt::Driver;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Settings of one agent.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The host name (`fake-0`); the bus topic is `compute.<host>`, the resource provider
    /// is named after it.
    pub host: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
    /// Nova's `reserved_host_memory_mb`.
    pub reserved_memory_mb: i64,
    /// Nova's `initial_cpu_allocation_ratio`.
    pub cpu_allocation_ratio: f64,
    /// Placement's base URL (`http://host:8778`).
    pub placement_url: String,
    /// Nova's `report_interval`.
    pub heartbeat_interval: Duration,
    /// How long a spawned guest may take to run.
    pub spawn_timeout: Duration,
    /// The image API's base URL (`http://host:9292`), where the driver's image bytes come
    /// from; empty for drivers that need none (fake).
    pub image_url: String,
    /// How long a build waits for `network-vif-plugged` of its ports when the driver plugs
    /// them (zero: no wait), and whether a timeout fails the build (Nova's
    /// `vif_plugging_timeout`, `vif_plugging_is_fatal`).
    pub vif_plugging_timeout: Duration,
    pub vif_plugging_is_fatal: bool,
    /// How often the driver's image cache is swept (Nova's `[image_cache]
    /// manager_interval`, 2400 s; zero: never).
    pub image_cache_interval: Duration,
    /// How long a cached base image no guest uses is kept (Nova's `[image_cache]
    /// remove_unused_original_minimum_age_seconds`, 86400 s).
    pub image_cache_max_age: Duration,
    /// How often the agent tells the conductor which guests run here, so that those of
    /// servers deleted while the agent was away are destroyed (Nova's
    /// `running_deleted_instance_poll_interval`, 1800 s; zero: only when the agent starts).
    pub running_deleted_poll_interval: Duration,
    /// How often the agent reports its guests' power states for the conductor to sync
    /// (Nova's `sync_power_state_interval`, 600 s; zero: never periodically).
    pub sync_power_state_interval: Duration,
}

impl AgentConfig {
    /// A host named `host` with a small default inventory.
    pub fn new(host: &str, placement_url: &str) -> AgentConfig {
        AgentConfig {
            host: host.to_string(),
            vcpus: 8,
            memory_mb: 16384,
            disk_gb: 200,
            reserved_memory_mb: 512,
            cpu_allocation_ratio: 4.0,
            placement_url: placement_url.trim_end_matches('/').to_string(),
            heartbeat_interval: Duration::from_secs(10),
            spawn_timeout: Duration::from_secs(300),
            image_url: String::new(),
            vif_plugging_timeout: Duration::from_secs(300),
            vif_plugging_is_fatal: true,
            image_cache_interval: Duration::from_secs(2400),
            image_cache_max_age: Duration::from_secs(86_400),
            running_deleted_poll_interval: Duration::from_secs(1800),
            sync_power_state_interval: Duration::from_secs(600),
        }
    }
}

/// One compute agent: its host's driver, bus and service credentials.
pub struct Agent {
    pub config: AgentConfig,
    pub bus: Arc<dyn Bus>,
    pub driver: Arc<dyn Driver>,
    pub auth: Arc<dyn TokenSource>,
    /// The host's resource provider, once registered in placement.
    provider: Mutex<Option<String>>,
    /// One lock per instance: messages about one guest run one at a time (a per-VM actor).
    guests: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The instance events builds wait for (delivered outside the guest's lock, which the
    /// waiting build holds).
    pub events: Arc<events::Waiters>,
}

impl Agent {
    pub fn new(
        config: AgentConfig,
        bus: Arc<dyn Bus>,
        driver: Arc<dyn Driver>,
        auth: Arc<dyn TokenSource>,
    ) -> Arc<Agent> {
        Arc::new(Agent {
            config,
            bus,
            driver,
            auth,
            provider: Mutex::new(None),
            guests: Mutex::new(HashMap::new()),
            events: Arc::new(events::Waiters::default()),
        })
    }

    /// The resource provider uuid, once registered.
    pub fn provider(&self) -> Option<String> {
        self.provider
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn guest_lock(&self, uuid: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.guests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(uuid.to_string())
            .or_default()
            .clone()
    }

    /// Sends `req` to the conductor.
    pub async fn report(&self, req: ConductorRequest, request_id: Option<&str>) {
        let (method, payload) = req.to_parts();
        let mut env = Envelope::new(CONDUCTOR_TOPIC, method, payload);
        if let Some(r) = request_id {
            env = env.with_request_id(r);
        }
        if let Err(e) = self.bus.cast(CONDUCTOR_TOPIC, env).await {
            tracing::error!(host = %self.config.host, error = %e, "report to the conductor failed");
        }
    }

    async fn heartbeat(&self) {
        let running = self
            .driver
            .list_instances()
            .await
            .map(|v| v.len())
            .unwrap_or(0);
        let resources = HostResources {
            vcpus: self.config.vcpus,
            memory_mb: self.config.memory_mb,
            local_gb: self.config.disk_gb,
            hypervisor_type: self.driver.hypervisor_type().to_string(),
            hypervisor_version: self.driver.hypervisor_version(),
            provider_uuid: self.provider(),
            running_instances: i64::try_from(running).unwrap_or(i64::MAX),
            cpu_info: self.driver.cpu_info(),
        };
        self.report(
            ConductorRequest::ServiceHeartbeat {
                version: CONTRACT_VERSION.into(),
                host: self.config.host.clone(),
                resources,
            },
            None,
        )
        .await;
    }

    /// Tells the conductor which guests the hypervisor runs (see
    /// [`ConductorRequest::GuestsOnHost`]).
    async fn report_guests(&self) {
        let taken_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let uuids = match self.driver.list_instances().await {
            Ok(uuids) => uuids,
            Err(e) => {
                tracing::warn!(host = %self.config.host, error = %e, "listing guests");
                return;
            }
        };
        let mut guests = Vec::with_capacity(uuids.len());
        for uuid in uuids {
            // A guest that went away meanwhile reports no state; its server keeps its own.
            if let Ok(state) = self.driver.power_state(&uuid).await {
                guests.push((uuid, state));
            }
        }
        self.report(
            ConductorRequest::GuestsOnHost {
                version: CONTRACT_VERSION.into(),
                host: self.config.host.clone(),
                guests,
                taken_at,
            },
            None,
        )
        .await
    }

    /// Handles one request: casts report their outcome to the conductor; calls return
    /// their answer (`Some`), for the caller.
    pub async fn handle(
        &self,
        req: AgentRequest,
        request_id: Option<&str>,
    ) -> Option<Result<Value, String>> {
        match req {
            AgentRequest::Migrate {
                step,
                instance,
                power_on,
                ..
            } => {
                let lock = self.guest_lock(&instance.uuid);
                let _g = lock.lock().await;
                let d = &self.driver;
                let uuid = instance.uuid.clone();
                let done = match step {
                    MigrateStep::PowerOff => d.migrate_disk_and_power_off(&uuid).await,
                    MigrateStep::Finish => d.finish_migration(&instance, power_on).await,
                    MigrateStep::Confirm | MigrateStep::DropDestination => d.destroy(&uuid).await,
                    MigrateStep::FinishRevert => {
                        d.finish_revert_migration(&instance, power_on).await
                    }
                    MigrateStep::Rebuild => {
                        // The (new) image's bytes come from the image API, as for a build.
                        let mut spec = instance.clone();
                        match build::resolve_image(build::image_api(self).as_ref(), &mut spec).await
                        {
                            Ok(()) => d.rebuild(&spec, power_on).await,
                            Err(e) => Err(ferro_virt::VirtError::Failed(e.message().to_string())),
                        }
                    }
                };
                return Some(match done {
                    Ok(()) => {
                        let state = d
                            .power_state(&uuid)
                            .await
                            .unwrap_or(ferro_virt::PowerState::NoState);
                        Ok(json!({"power_state": state.code()}))
                    }
                    Err(e) => Err(e.to_string()),
                });
            }
            AgentRequest::Shelve {
                uuid,
                step,
                image_id,
                token,
                ..
            } => {
                let lock = self.guest_lock(&uuid);
                let _g = lock.lock().await;
                return Some(self.shelve_step(&uuid, step, image_id, token).await);
            }
            AgentRequest::SnapshotInstance {
                uuid,
                image_id,
                token,
                ..
            } => {
                let error = {
                    let lock = self.guest_lock(&uuid);
                    let _g = lock.lock().await;
                    self.snapshot(&uuid, &image_id, &token).await.err()
                };
                if let Some(e) = &error {
                    tracing::warn!(%uuid, %image_id, error = %e, "snapshot failed");
                    let images =
                        ferro_client::Client::new(&self.config.image_url).with_token(&token);
                    let _ = images.delete(&format!("/v2/images/{image_id}")).await;
                }
                self.report(
                    ConductorRequest::SnapshotDone {
                        version: CONTRACT_VERSION.into(),
                        uuid,
                        host: self.config.host.clone(),
                        image_id,
                        error,
                    },
                    request_id,
                )
                .await;
            }
            AgentRequest::AttachInterface { uuid, nic, .. } => {
                let lock = self.guest_lock(&uuid);
                let _g = lock.lock().await;
                return Some(
                    self.driver
                        .attach_interface(&uuid, &nic)
                        .await
                        .map(|()| json!({}))
                        .map_err(|e| e.to_string()),
                );
            }
            AgentRequest::DetachInterface { uuid, port_id, .. } => {
                let lock = self.guest_lock(&uuid);
                let _g = lock.lock().await;
                return Some(
                    self.driver
                        .detach_interface(&uuid, &port_id)
                        .await
                        .map(|()| json!({}))
                        .map_err(|e| e.to_string()),
                );
            }
            AgentRequest::ExternalEvent {
                uuid,
                name,
                tag,
                status,
                ..
            } => {
                let tag = tag.unwrap_or_default();
                if !self.events.deliver(&uuid, &name, &tag, &status) {
                    // Nova too only acts on events someone waits for (network-changed
                    // refreshes a cache this agent does not keep).
                    tracing::debug!(%uuid, %name, %tag, "an instance event nobody waits for");
                }
            }
            AgentRequest::GetConsoleOutput { uuid, length, .. } => {
                return Some(
                    self.driver
                        .console_output(&uuid)
                        .await
                        .map(|log| json!({"output": tail(&log, length)}))
                        .map_err(|e| e.to_string()),
                );
            }
            AgentRequest::BuildAndRunInstance { instance, .. } => {
                let lock = self.guest_lock(&instance.uuid);
                let _g = lock.lock().await;
                let uuid = instance.uuid.clone();
                let report = match build::build(self, instance).await {
                    Ok(power_state) => ConductorRequest::BuildSucceeded {
                        version: CONTRACT_VERSION.into(),
                        uuid,
                        host: self.config.host.clone(),
                        power_state,
                    },
                    Err(reason) => ConductorRequest::BuildFailed {
                        version: CONTRACT_VERSION.into(),
                        uuid,
                        host: self.config.host.clone(),
                        reason,
                    },
                };
                self.report(report, request_id).await;
            }
            AgentRequest::TerminateInstance { uuid, .. } => {
                let lock = self.guest_lock(&uuid);
                {
                    let _g = lock.lock().await;
                    if let Err(e) = self.driver.destroy(&uuid).await {
                        // Reported as destroyed only once the driver managed it; the
                        // conductor's sweep retries a delete stuck in `deleting`.
                        tracing::error!(%uuid, error = %e, "destroy failed");
                        return None;
                    }
                }
                self.guests
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&uuid);
                self.report(
                    ConductorRequest::InstanceDestroyed {
                        version: CONTRACT_VERSION.into(),
                        uuid,
                        host: self.config.host.clone(),
                    },
                    request_id,
                )
                .await;
            }
            AgentRequest::PowerAction { uuid, action, .. } => {
                let lock = self.guest_lock(&uuid);
                let _g = lock.lock().await;
                let d = &self.driver;
                let result = match action {
                    PowerAction::Stop => d.power_off(&uuid).await,
                    PowerAction::Start => d.power_on(&uuid).await,
                    PowerAction::RebootSoft => d.reboot(&uuid, false).await,
                    PowerAction::RebootHard => d.reboot(&uuid, true).await,
                    PowerAction::Pause => d.pause(&uuid).await,
                    PowerAction::Unpause => d.unpause(&uuid).await,
                    PowerAction::Suspend => d.suspend(&uuid).await,
                    PowerAction::Resume => d.resume(&uuid).await,
                };
                let power_state = d
                    .power_state(&uuid)
                    .await
                    .unwrap_or(ferro_virt::PowerState::NoState);
                self.report(
                    ConductorRequest::PowerActionDone {
                        version: CONTRACT_VERSION.into(),
                        uuid,
                        host: self.config.host.clone(),
                        action,
                        error: result.err().map(|e| e.to_string()),
                        power_state,
                    },
                    request_id,
                )
                .await;
            }
        }
        None
    }
}

impl Agent {
    /// Writes the guest's disk to a scratch file and uploads it as image `image_id`.
    // TODO-perf: the upload holds the image in memory; large disks need a streamed body.
    /// One step of a shelve (see [`ShelveStep`]), under the guest's lock: the guest's power
    /// state after it. A failed snapshot leaves the guest powered off and the image queued
    /// (the conductor deletes it).
    async fn shelve_step(
        &self,
        uuid: &str,
        step: ShelveStep,
        image_id: Option<String>,
        token: Option<String>,
    ) -> Result<Value, String> {
        let d = &self.driver;
        let state = |s: ferro_virt::PowerState| Ok(json!({"power_state": s.code()}));
        match step {
            ShelveStep::PowerOn => d.power_on(uuid).await.map_err(|e| e.to_string())?,
            ShelveStep::Snapshot | ShelveStep::Offload => {
                let now = d.power_state(uuid).await.map_err(|e| e.to_string())?;
                if now != ferro_virt::PowerState::Shutdown {
                    d.power_off(uuid).await.map_err(|e| e.to_string())?;
                }
            }
        }
        let after = d.power_state(uuid).await.map_err(|e| e.to_string())?;
        match step {
            ShelveStep::PowerOn => {}
            ShelveStep::Snapshot => {
                let (Some(image_id), Some(token)) = (image_id, token) else {
                    return Err("a shelve snapshot needs an image and a token".into());
                };
                self.snapshot(uuid, &image_id, &token).await?;
            }
            ShelveStep::Offload => d.destroy(uuid).await.map_err(|e| e.to_string())?,
        }
        state(after)
    }

    async fn snapshot(&self, uuid: &str, image_id: &str, token: &str) -> Result<(), String> {
        let dest = std::env::temp_dir().join(format!("ferrostack-snapshot-{image_id}"));
        let result = async {
            self.driver
                .snapshot(uuid, &dest)
                .await
                .map_err(|e| e.to_string())?;
            let bytes = tokio::fs::read(&dest)
                .await
                .map_err(|e| format!("reading the snapshot: {e}"))?;
            let images = ferro_client::Client::new(&self.config.image_url).with_token(token);
            let r = images
                .put_bytes(&format!("/v2/images/{image_id}/file"), bytes)
                .await
                .map_err(|e| format!("uploading the snapshot: {e}"))?;
            if r.status != 204 {
                return Err(format!("the image API answered {} to the upload", r.status));
            }
            Ok(())
        }
        .await;
        let _ = tokio::fs::remove_file(&dest).await;
        result
    }
}

/// The last `length` lines of `log` (upstream `_tail_log`): all of it for `None` or -1,
/// nothing for 0.
fn tail(log: &str, length: Option<i64>) -> String {
    let Some(n) = length.filter(|n| *n >= 0) else {
        return log.to_string();
    };
    let lines: Vec<&str> = log.split('\n').collect();
    let keep = usize::try_from(n).unwrap_or(usize::MAX).min(lines.len());
    lines[lines.len() - keep..].join("\n")
}

/// Starts the agent: its message loop, its placement registration and its heartbeat.
pub async fn start(agent: Arc<Agent>) -> Result<Vec<JoinHandle<()>>, ferro_bus::BusError> {
    let mut sub = agent
        .bus
        .subscribe(&compute_topic(&agent.config.host))
        .await?;
    let mut tasks = Vec::new();
    let a = agent.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(delivery) = sub.next().await {
            let env = delivery.envelope().clone();
            let a = a.clone();
            tokio::spawn(async move {
                let answer = match AgentRequest::parse(&env.method, &env.payload) {
                    Ok(req) => a.handle(req, env.request_id.as_deref()).await,
                    Err(e) => {
                        tracing::error!(host = %a.config.host, error = %e, "dropped");
                        Some(Err(e.to_string()))
                    }
                };
                let done = match answer {
                    Some(answer) if delivery.expects_reply() => delivery.reply(answer).await,
                    _ => delivery.ack().await,
                };
                if let Err(e) = done {
                    tracing::warn!(error = %e, "ack failed");
                }
            });
        }
    }));
    let a = agent.clone();
    tasks.push(tokio::spawn(async move {
        let mut wait = Duration::from_millis(200);
        loop {
            match inventory::register(&a).await {
                Ok(uuid) => {
                    *a.provider.lock().unwrap_or_else(|e| e.into_inner()) = Some(uuid);
                    a.heartbeat().await;
                    // Servers deleted while this agent was away left their guests here.
                    a.report_guests().await;
                    break;
                }
                Err(e) => {
                    tracing::debug!(host = %a.config.host, error = %e, "placement registration; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }));
    let a = agent.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            a.heartbeat().await;
            tokio::time::sleep(a.config.heartbeat_interval).await;
        }
    }));
    // One report serves both the reap of deleted servers' guests and the power state
    // sync: it goes at the shorter of the two intervals.
    let every = [
        agent.config.running_deleted_poll_interval,
        agent.config.sync_power_state_interval,
    ]
    .into_iter()
    .filter(|d| !d.is_zero())
    .min();
    if let Some(every) = every {
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                a.report_guests().await;
            }
        }));
    }
    if !agent.config.image_cache_interval.is_zero() {
        let a = agent;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(a.config.image_cache_interval).await;
                if let Err(e) = a
                    .driver
                    .manage_image_cache(a.config.image_cache_max_age)
                    .await
                {
                    tracing::warn!(host = %a.config.host, error = %e, "image cache pass");
                }
            }
        }));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        let log = "a\nb\nc";
        assert_eq!(tail(log, None), log);
        assert_eq!(tail(log, Some(-1)), log);
        assert_eq!(tail(log, Some(0)), "");
        assert_eq!(tail(log, Some(2)), "b\nc");
        assert_eq!(tail(log, Some(10)), log);
    }
}
