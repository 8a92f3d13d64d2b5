//! The conductor and its scheduler: it consumes the `conductor` topic, places instances
//! (placement allocation candidates → filters → weighers → claim), casts builds to agents,
//! and records every outcome the agents report. It alone writes an instance after the API
//! created it (ARCHITECTURE.md §4); writes are compare-and-swap on the state read, so a
//! redelivered or late message changes nothing.
//!
//! A periodic sweep fails instances stuck in a transitional task state past
//! `task_timeout` (upstream's `instance_build_timeout` and `_cleanup_running_deleted`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferro_api_types::compute::{
    AgentRequest, CONDUCTOR_TOPIC, CONTRACT_VERSION, ConductorRequest, HostResources, InstanceSpec,
    PowerAction,
};
use ferro_common::time::now_micros;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::Compute;
use crate::db::{self, ComputeNode};
use crate::fault::{Fault, Result};
use crate::model::{DEFAULT_ZONE, Instance, InstanceFault, PowerState, VmState, task_state};

/// The binary name of compute agents in the service registry.
pub const COMPUTE_BINARY: &str = "nova-compute";

/// The tracing target of the scheduler's per-decision timings (`claim_host`); enable with
/// `FERROSTACK_LOG=info,ferro_compute::scheduler=debug`.
pub const SCHEDULER_TRACE: &str = "ferro_compute::scheduler";

/// One placement candidate after filtering: its host and what to claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub host: String,
    pub provider: String,
    pub allocations: Value,
    /// MEMORY_MB capacity minus use: the RAM weigher's measure.
    pub free_ram_mb: i64,
}

/// The resources an instance asks placement for (upstream `resources_from_flavor`):
/// zero amounts are left out, swap counts towards disk in whole GiB.
pub fn resources_query(i: &Instance) -> String {
    let f = &i.flavor;
    let disk = f.root_gb + f.ephemeral_gb + (f.swap + 1023) / 1024;
    let mut parts = Vec::new();
    for (rc, amount) in [
        ("VCPU", f.vcpus),
        ("MEMORY_MB", f.memory_mb),
        ("DISK_GB", disk),
    ] {
        if amount > 0 {
            parts.push(format!("{rc}:{amount}"));
        }
    }
    parts.join(",")
}

/// Filters and weighs the candidates of `body` (a placement `allocation_candidates`
/// answer): hosts known as compute nodes whose service is up and enabled, not tried before,
/// single-provider requests only; most free RAM first (the RAM weigher, spreading), host
/// name breaking ties.
pub fn filter_and_weigh(
    body: &Value,
    nodes: &[ComputeNode],
    up_hosts: &[String],
    tried: &[String],
) -> Vec<Candidate> {
    let summaries = &body["provider_summaries"];
    // Indexed once: a linear search per candidate is quadratic in the hosts (a million
    // string comparisons per decision at 1,000 hosts).
    let nodes: HashMap<&str, &ComputeNode> = nodes.iter().map(|n| (n.uuid.as_str(), n)).collect();
    let up_hosts: HashSet<&str> = up_hosts.iter().map(String::as_str).collect();
    let mut out: Vec<Candidate> = body["allocation_requests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|req| {
            let allocs = req["allocations"].as_object()?;
            if allocs.len() != 1 {
                return None;
            }
            let (provider, _) = allocs.iter().next()?;
            let node = nodes.get(provider.as_str())?;
            if !up_hosts.contains(node.host.as_str()) || tried.contains(&node.host) {
                return None;
            }
            let ram = &summaries[provider]["resources"]["MEMORY_MB"];
            let free = ram["capacity"].as_i64().unwrap_or(0) - ram["used"].as_i64().unwrap_or(0);
            Some(Candidate {
                host: node.host.clone(),
                provider: provider.clone(),
                allocations: req["allocations"].clone(),
                free_ram_mb: free,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.free_ram_mb
            .cmp(&a.free_ram_mb)
            .then_with(|| a.host.cmp(&b.host))
    });
    out
}

pub(crate) fn fault(code: i64, message: String, details: String) -> InstanceFault {
    InstanceFault {
        code,
        message,
        details,
        created_at: now_micros(),
    }
}

impl Compute {
    async fn instance_load(&self, uuid: &str) -> Result<Option<Instance>> {
        Ok(db::instance_get(&mut &self.db, uuid).await?)
    }

    /// Saves what the conductor changed in `i`, compare-and-swap on `expected`.
    async fn conductor_save(&self, i: &mut Instance, expected: (VmState, Option<String>)) -> bool {
        i.updated_at = now_micros();
        match db::instance_save(&mut &self.db, i, (expected.0, expected.1.as_deref())).await {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(uuid = %i.uuid, error = %e, "instance save failed");
                false
            }
        }
    }

    /// Handles one conductor request.
    pub async fn conduct(&self, req: ConductorRequest, request_id: &str) -> Result<()> {
        match req {
            ConductorRequest::BuildInstances { uuid, .. } => {
                if let Some(i) = self.instance_load(&uuid).await?
                    && i.vm_state == VmState::Building
                    && i.task_state.as_deref() == Some(task_state::SCHEDULING)
                {
                    self.schedule(i, request_id).await?;
                }
            }
            ConductorRequest::BuildSucceeded {
                uuid,
                host,
                power_state,
                ..
            } => {
                let Some(mut i) = self.instance_load(&uuid).await? else {
                    return Ok(());
                };
                if i.host.as_deref() != Some(host.as_str()) || i.vm_state != VmState::Building {
                    return Ok(());
                }
                if i.task_state.as_deref() == Some(task_state::DELETING) {
                    // The delete's terminate is on its way to the agent.
                    return Ok(());
                }
                let expected = (i.vm_state, i.task_state.clone());
                i.vm_state = VmState::Active;
                i.task_state = None;
                i.power_state = power_state;
                i.launched_at = Some(now_micros());
                if self.conductor_save(&mut i, expected).await {
                    self.record_event(&uuid, request_id, BUILD_EVENT, Some(&host), None)
                        .await;
                }
            }
            ConductorRequest::BuildFailed {
                uuid, host, reason, ..
            } => {
                let Some(mut i) = self.instance_load(&uuid).await? else {
                    return Ok(());
                };
                if i.host.as_deref() != Some(host.as_str()) || i.vm_state != VmState::Building {
                    return Ok(());
                }
                self.allocation_delete(&uuid).await;
                self.record_event(&uuid, request_id, BUILD_EVENT, Some(&host), Some(&reason))
                    .await;
                let expected = (i.vm_state, i.task_state.clone());
                if i.task_state.as_deref() == Some(task_state::DELETING) {
                    self.finish_delete(i, expected).await;
                    return Ok(());
                }
                i.tried_hosts.push(host.clone());
                i.host = None;
                i.node = None;
                if i.attempts >= self.config.max_attempts {
                    self.unbind_ports(&i).await;
                    i.network_info.clear();
                    i.vm_state = VmState::Error;
                    i.task_state = None;
                    i.fault = Some(fault(
                        500,
                        format!(
                            "Exceeded maximum number of retries. Exhausted all hosts available \
                             for retrying build failures for instance {uuid}."
                        ),
                        format!("Build of instance {uuid} on {host} failed: {reason}"),
                    ));
                    self.conductor_save(&mut i, expected).await;
                } else {
                    // Reschedule, without the hosts that failed (upstream's RetryFilter).
                    i.task_state = Some(task_state::SCHEDULING.into());
                    if self.conductor_save(&mut i, expected).await {
                        self.schedule(i, request_id).await?;
                    }
                }
            }
            ConductorRequest::InstanceDestroyed { uuid, host, .. } => {
                let Some(i) = self.instance_load(&uuid).await? else {
                    return Ok(());
                };
                if i.host.as_deref() == Some(host.as_str())
                    && i.task_state.as_deref() == Some(task_state::DELETING)
                {
                    self.allocation_delete(&uuid).await;
                    self.record_event(
                        &uuid,
                        request_id,
                        "compute_terminate_instance",
                        Some(&host),
                        None,
                    )
                    .await;
                    let expected = (i.vm_state, i.task_state.clone());
                    self.finish_delete(i, expected).await;
                }
            }
            ConductorRequest::PowerActionDone {
                uuid,
                host,
                action,
                error,
                power_state,
                ..
            } => {
                let Some(mut i) = self.instance_load(&uuid).await? else {
                    return Ok(());
                };
                if i.host.as_deref() != Some(host.as_str())
                    || i.task_state.as_deref() != Some(action_task(action))
                {
                    return Ok(());
                }
                self.record_event(
                    &uuid,
                    request_id,
                    action_event(action),
                    Some(&host),
                    error.as_deref(),
                )
                .await;
                let expected = (i.vm_state, i.task_state.clone());
                i.task_state = None;
                match error {
                    None => {
                        let (vm, power) = action.outcome();
                        i.vm_state = vm;
                        i.power_state = power;
                    }
                    Some(e) => {
                        // Upstream reverts the task state and records the fault in the
                        // instance action; the server keeps its vm_state.
                        tracing::warn!(%uuid, ?action, error = %e, "power action failed");
                        i.power_state = power_state;
                    }
                }
                self.conductor_save(&mut i, expected).await;
            }
            ConductorRequest::ResizeInstance { uuid, .. } => {
                self.conduct_resize(&uuid, request_id).await?;
            }
            ConductorRequest::ConfirmResize { uuid, .. } => {
                self.conduct_confirm(&uuid, request_id).await?;
            }
            ConductorRequest::RebuildInstance { uuid, .. } => {
                self.conduct_rebuild(&uuid, request_id).await?;
            }
            ConductorRequest::RevertResize { uuid, .. } => {
                self.conduct_revert(&uuid, request_id).await?;
            }
            ConductorRequest::SnapshotDone {
                uuid, host, error, ..
            } => {
                self.conduct_snapshot_done(&uuid, &host, error.as_deref(), request_id)
                    .await?;
            }
            ConductorRequest::ServiceHeartbeat {
                host, resources, ..
            } => {
                self.service_report(&host, COMPUTE_BINARY, "compute")
                    .await?;
                self.node_report(&host, &resources).await?;
            }
        }
        Ok(())
    }

    async fn node_report(&self, host: &str, r: &HostResources) -> Result<()> {
        let now = now_micros();
        let Some(uuid) = r.provider_uuid.clone() else {
            // Not in placement yet: the node cannot be scheduled to, so it is not listed.
            return Ok(());
        };
        db::node_report(
            &mut &self.db,
            &ComputeNode {
                host: host.to_string(),
                id: 0,
                uuid,
                vcpus: r.vcpus,
                memory_mb: r.memory_mb,
                local_gb: r.local_gb,
                hypervisor_type: r.hypervisor_type.clone(),
                hypervisor_version: r.hypervisor_version,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        Ok(())
    }

    async fn finish_delete(&self, mut i: Instance, expected: (VmState, Option<String>)) {
        self.unbind_ports(&i).await;
        let now = now_micros();
        i.vm_state = VmState::Deleted;
        i.task_state = None;
        i.power_state = PowerState::NoState;
        i.deleted = true;
        i.deleted_at = Some(now);
        i.terminated_at = Some(now);
        self.conductor_save(&mut i, expected).await;
    }

    /// Hosts whose compute service is up and enabled.
    async fn up_hosts(&self) -> Result<Vec<String>> {
        let now = now_micros();
        Ok(db::service_list(&mut &self.db)
            .await?
            .into_iter()
            .filter(|s| s.binary == COMPUTE_BINARY && !s.disabled && s.is_up(now))
            .map(|s| s.host)
            .collect())
    }

    /// Places `i` (in `building`/`scheduling`) on a host and casts its build there, or puts
    /// it in ERROR with upstream's NoValidHost fault.
    async fn schedule(&self, mut i: Instance, request_id: &str) -> Result<()> {
        let expected = (i.vm_state, i.task_state.clone());
        // A group's members are placed one at a time, until each has its host recorded.
        let group_lock = self
            .group_placement(&i.uuid)
            .await?
            .map(|g| self.group_locks.of(&g.group));
        let _placing = match &group_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let chosen = self.claim_host(&i).await?;
        let Some(cand) = chosen else {
            self.record_event(
                &i.uuid,
                request_id,
                "conductor_schedule_and_build_instances",
                None,
                Some("No valid host was found. There are not enough hosts available."),
            )
            .await;
            i.vm_state = VmState::Error;
            i.task_state = None;
            i.fault = Some(fault(
                500,
                "No valid host was found. There are not enough hosts available.".into(),
                String::new(),
            ));
            self.conductor_save(&mut i, expected).await;
            return Ok(());
        };
        i.host = Some(cand.host.clone());
        i.node = Some(cand.host.clone());
        i.availability_zone = Some(DEFAULT_ZONE.into());
        i.attempts += 1;
        i.task_state = Some(task_state::SPAWNING.into());
        if !self.conductor_save(&mut i, expected).await {
            // Deleted or changed meanwhile: give the claim back.
            self.allocation_delete(&i.uuid).await;
            return Ok(());
        }
        // The ports, bound to the host, before the build (upstream allocates them on the
        // host; the network API is one call away from here as well).
        if !i.requested_networks.is_empty() {
            let expected = (i.vm_state, i.task_state.clone());
            match self.bind_ports(&i, &cand.host).await {
                Ok(vifs) => {
                    i.network_info = vifs;
                    if !self.conductor_save(&mut i, expected).await {
                        self.unbind_ports(&i).await;
                        self.allocation_delete(&i.uuid).await;
                        return Ok(());
                    }
                }
                Err(reason) => {
                    self.allocation_delete(&i.uuid).await;
                    self.record_event(
                        &i.uuid,
                        request_id,
                        BUILD_EVENT,
                        Some(&cand.host),
                        Some(&reason),
                    )
                    .await;
                    i.vm_state = VmState::Error;
                    i.task_state = None;
                    i.host = None;
                    i.node = None;
                    i.fault = Some(fault(500, reason, String::new()));
                    self.conductor_save(&mut i, expected).await;
                    return Ok(());
                }
            }
        }
        let spec = instance_spec(&i);
        self.cast_agent(
            &cand.host,
            AgentRequest::BuildAndRunInstance {
                version: CONTRACT_VERSION.into(),
                instance: spec,
            },
            request_id,
        )
        .await
    }

    /// Finds a host for `i` as its flavor now is (placement candidates, then the filters,
    /// the group policy and the weighers) and claims its resources there for the instance's
    /// consumer: the claimed candidate, or `None` when no host can take it.
    ///
    /// Each successful decision is timed as a `debug` event of target `SCHEDULER_TRACE`
    /// (placement's answer, filtering and weighing, the claim), read by `bench/compute`.
    pub(crate) async fn claim_host(&self, i: &Instance) -> Result<Option<Candidate>> {
        let started = std::time::Instant::now();
        let zone_ok = i
            .availability_zone
            .as_deref()
            .is_none_or(|z| z == DEFAULT_ZONE);
        if zone_ok {
            let c = self.placement().await?;
            let path = format!(
                "/allocation_candidates?resources={}&limit=1000",
                resources_query(i)
            );
            let r = c
                .get(&path)
                .await
                .map_err(|e| Fault::internal(format!("placement: {e}")))?;
            if r.status == 401 {
                self.links()?.auth.invalidate();
            }
            if r.status != 200 {
                return Err(Fault::internal(format!(
                    "placement answered {} for candidates: {}",
                    r.status, r.body
                )));
            }
            let fetched = started.elapsed();
            let nodes = db::node_list(&mut &self.db).await?;
            let up = self.up_hosts().await?;
            let mut candidates = filter_and_weigh(&r.body, &nodes, &up, &i.tried_hosts);
            // Read under the lock: a member placed meanwhile counts.
            let group = self.group_placement(&i.uuid).await?;
            if let Some(g) = &group {
                // The group filters, then its weigher ahead of the RAM weigher (stable sort).
                candidates.retain(|c| g.allows(&c.host));
                candidates.sort_by_key(|c| g.preference(&c.host));
            }
            let weighed = started.elapsed();
            let considered = candidates.len();
            for cand in candidates {
                let claim = json!({
                    "allocations": cand.allocations,
                    "project_id": i.project_id,
                    "user_id": i.user_id,
                    "consumer_generation": null,
                });
                let r = c
                    .put(&format!("/allocations/{}", i.uuid), Some(&claim))
                    .await
                    .map_err(|e| Fault::internal(format!("placement: {e}")))?;
                match r.status {
                    204 => {
                        // Late check (upstream's validate_instance_group_policy): a member
                        // placed meanwhile may have taken the group's room on this host.
                        if let Some(now) = self.group_placement(&i.uuid).await?
                            && !now.allows(&cand.host)
                        {
                            self.allocation_delete(&i.uuid).await;
                            continue;
                        }
                        tracing::debug!(
                            target: SCHEDULER_TRACE,
                            uuid = %i.uuid,
                            host = %cand.host,
                            candidates = considered,
                            placement_us = fetched.as_micros() as u64,
                            weighed_us = weighed.as_micros() as u64,
                            total_us = started.elapsed().as_micros() as u64,
                            "scheduling decision"
                        );
                        return Ok(Some(cand));
                    }
                    // Another claim won the capacity, or the consumer exists from a
                    // redelivered message: try the next host.
                    409 => continue,
                    s => {
                        return Err(Fault::internal(format!(
                            "placement answered {s} claiming for {}: {}",
                            i.uuid, r.body
                        )));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Fails or retries instances stuck in a transitional task state longer than the
    /// configured timeout: builds go to ERROR (allocation removed), deletes are re-sent to
    /// the agent, other tasks are cleared. Returns how many instances it touched.
    pub async fn sweep(&self) -> Result<usize> {
        let cutoff = now_micros() - self.config.task_timeout.as_micros() as i64;
        let stuck: Vec<Instance> = db::instance_list(&mut &self.db, None)
            .await?
            .into_iter()
            .filter(|i| i.task_state.is_some() && i.updated_at < cutoff)
            .collect();
        let n = stuck.len();
        for mut i in stuck {
            let expected = (i.vm_state, i.task_state.clone());
            if i.task_state.as_deref() == Some(task_state::DELETING) {
                if let Some(host) = i.host.clone() {
                    let request_id = format!("req-{}", uuid::Uuid::new_v4());
                    if self.conductor_save(&mut i, expected).await {
                        let _ = self
                            .cast_agent(
                                &host,
                                AgentRequest::TerminateInstance {
                                    version: CONTRACT_VERSION.into(),
                                    uuid: i.uuid.clone(),
                                },
                                &request_id,
                            )
                            .await;
                    }
                }
                continue;
            }
            if i.vm_state == VmState::Building {
                self.allocation_delete(&i.uuid).await;
                i.vm_state = VmState::Error;
                i.fault = Some(fault(
                    500,
                    "Instance build timed out. Set to error state.".into(),
                    String::new(),
                ));
            }
            i.task_state = None;
            self.conductor_save(&mut i, expected).await;
        }
        Ok(n)
    }
}

/// What an agent needs to build (or rebuild) `i`, with its current flavor.
pub fn instance_spec(i: &Instance) -> InstanceSpec {
    InstanceSpec {
        uuid: i.uuid.clone(),
        name: i.instance_name(),
        vcpus: i.flavor.vcpus,
        memory_mb: i.flavor.memory_mb,
        root_gb: i.flavor.root_gb,
        ephemeral_gb: i.flavor.ephemeral_gb,
        swap_mb: i.flavor.swap,
        image_ref: i.image_ref.clone(),
        user_data: i.user_data.clone(),
        key_data: i.key_data.clone(),
        display_name: i.display_name.clone(),
        hostname: i.hostname.clone(),
        project_id: i.project_id.clone(),
        availability_zone: i.availability_zone.clone(),
        key_name: i.key_name.clone(),
        // The row keeps the key's text only; an x509 key pair's text is a PEM certificate.
        key_type: i.key_data.as_ref().map(|k| {
            if k.trim_start().starts_with("-----BEGIN CERTIFICATE-----") {
                "x509".to_string()
            } else {
                "ssh".to_string()
            }
        }),
        flavor_name: i.flavor.name.clone(),
        reservation_id: i.reservation_id.clone(),
        metadata: i.metadata.clone(),
        launch_index: i.launch_index,
        config_drive: i.config_drive == "True",
        nics: i
            .network_info
            .iter()
            .map(|v| ferro_api_types::compute::Nic {
                port_id: v.port_id.clone(),
                network_id: v.network_id.clone(),
                mac_address: v.mac_address.clone(),
                ips: v.ips.clone(),
                mtu: v.mtu,
                vif_type: v.vif_type.clone(),
                subnets: v.subnets.clone(),
            })
            .collect(),
        ..InstanceSpec::default()
    }
}

/// The event an agent's build is recorded as.
const BUILD_EVENT: &str = "compute__do_build_and_run_instance";

/// The event a power action is recorded as (the compute manager's method).
fn action_event(a: PowerAction) -> &'static str {
    match a {
        PowerAction::Stop => "compute_stop_instance",
        PowerAction::Start => "compute_start_instance",
        PowerAction::RebootSoft | PowerAction::RebootHard => "compute_reboot_instance",
        PowerAction::Pause => "compute_pause_instance",
        PowerAction::Unpause => "compute_unpause_instance",
        PowerAction::Suspend => "compute_suspend_instance",
        PowerAction::Resume => "compute_resume_instance",
    }
}

/// The task state the API set for a power action.
fn action_task(a: PowerAction) -> &'static str {
    match a {
        PowerAction::Stop => task_state::POWERING_OFF,
        PowerAction::Start => task_state::POWERING_ON,
        PowerAction::RebootSoft => task_state::REBOOTING,
        PowerAction::RebootHard => task_state::REBOOTING_HARD,
        PowerAction::Pause => task_state::PAUSING,
        PowerAction::Unpause => task_state::UNPAUSING,
        PowerAction::Suspend => task_state::SUSPENDING,
        PowerAction::Resume => task_state::RESUMING,
    }
}

/// The conductor's workers: the `conductor` queue consumer and the periodic sweep.
pub async fn workers(compute: Arc<Compute>) -> Result<Vec<JoinHandle<()>>> {
    let bus = compute.links()?.bus.clone();
    let mut sub = bus
        .subscribe(CONDUCTOR_TOPIC)
        .await
        .map_err(|e| Fault::internal(format!("subscribe to the conductor topic: {e}")))?;
    let c = compute.clone();
    let consumer = tokio::spawn(async move {
        while let Some(delivery) = sub.next().await {
            let env = delivery.envelope().clone();
            let c = c.clone();
            tokio::spawn(async move {
                let request_id = env
                    .request_id
                    .clone()
                    .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
                match ConductorRequest::parse(&env.method, &env.payload) {
                    Ok(req) => {
                        if let Err(e) = c.conduct(req, &request_id).await {
                            tracing::error!(method = %env.method, error = ?e, "conductor request failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "conductor dropped a message"),
                }
                if let Err(e) = delivery.ack().await {
                    tracing::warn!(error = %e, "ack failed");
                }
            });
        }
    });
    let c = compute;
    let sweeper = tokio::spawn(async move {
        let every = c.config.sweep_interval;
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = c.sweep().await {
                tracing::error!(error = ?e, "sweep failed");
            }
        }
    });
    Ok(vec![consumer, sweeper])
}

/// How often the sweep runs by default.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, uuid: &str) -> ComputeNode {
        ComputeNode {
            host: host.into(),
            id: 1,
            uuid: uuid.into(),
            vcpus: 4,
            memory_mb: 4096,
            local_gb: 10,
            hypervisor_type: "fake".into(),
            hypervisor_version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn candidates_are_filtered_and_spread_by_free_ram() {
        let body = json!({
            "allocation_requests": [
                {"allocations": {"p1": {"resources": {"VCPU": 1}}}},
                {"allocations": {"p2": {"resources": {"VCPU": 1}}}},
                {"allocations": {"p3": {"resources": {"VCPU": 1}}}},
                {"allocations": {"p4": {"resources": {"VCPU": 1}}}},
            ],
            "provider_summaries": {
                "p1": {"resources": {"MEMORY_MB": {"capacity": 1000, "used": 900}}},
                "p2": {"resources": {"MEMORY_MB": {"capacity": 1000, "used": 100}}},
                "p3": {"resources": {"MEMORY_MB": {"capacity": 9000, "used": 0}}},
                "p4": {"resources": {"MEMORY_MB": {"capacity": 9000, "used": 0}}},
            }
        });
        let nodes = [
            node("a", "p1"),
            node("b", "p2"),
            node("c", "p3"),
            node("d", "p4"),
        ];
        let up = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let got = filter_and_weigh(&body, &nodes, &up, &["c".to_string()]);
        let hosts: Vec<&str> = got.iter().map(|c| c.host.as_str()).collect();
        // d is down, c was tried; b has the most free RAM.
        assert_eq!(hosts, vec!["b", "a"]);
    }
}
