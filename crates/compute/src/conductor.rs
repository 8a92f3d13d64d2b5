//! The conductor and its scheduler: it consumes the `conductor` topic, places instances
//! (filters and weighers over its host view, [`crate::scheduler`], kept fresh from
//! placement's allocation candidates → claim in placement), casts builds to agents, and
//! records every outcome the agents report. It alone writes an instance after the API
//! created it (ARCHITECTURE.md §4); writes are compare-and-swap on the state read, so a
//! redelivered or late message changes nothing.
//!
//! A periodic sweep fails instances stuck in a transitional task state past
//! `task_timeout` (upstream's `instance_build_timeout` and `_cleanup_running_deleted`);
//! other workers refresh the host view and write the compute services' heartbeats in
//! batches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_api_types::compute::{
    AgentRequest, CONDUCTOR_TOPIC, CONTRACT_VERSION, ConductorRequest, HostResources, InstanceSpec,
    PowerAction,
};
use ferro_common::time::now_micros;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::Compute;
use crate::db::{self, ComputeNode};
use crate::fault::{Fault, Result};
use crate::model::{Instance, InstanceFault, PowerState, Vif, VmState, task_state};
use crate::scheduler::{Choice, HostRequest};

/// The binary name of compute agents in the service registry.
pub const COMPUTE_BINARY: &str = "nova-compute";

/// The tracing target of the scheduler's per-decision timings (`claim_host`); enable with
/// `FERROSTACK_LOG=info,ferro_compute::scheduler=debug`.
pub const SCHEDULER_TRACE: &str = "ferro_compute::scheduler";

/// The resources an instance asks placement for (upstream `resources_from_flavor`), by
/// class: zero amounts are left out, swap counts towards disk in whole GiB.
pub fn requested_resources(i: &Instance) -> Vec<(String, i64)> {
    let f = &i.flavor;
    let disk = f.root_gb + f.ephemeral_gb + (f.swap + 1023) / 1024;
    [
        ("VCPU", f.vcpus),
        ("MEMORY_MB", f.memory_mb),
        ("DISK_GB", disk),
    ]
    .into_iter()
    .filter(|(_, amount)| *amount > 0)
    .map(|(rc, amount)| (rc.to_string(), amount))
    .collect()
}

/// [`requested_resources`] as placement's `resources` query parameter.
pub fn resources_query(i: &Instance) -> String {
    requested_resources(i)
        .iter()
        .map(|(rc, amount)| format!("{rc}:{amount}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How many claims one decision lets the view's choices lose before it refreshes the view
/// from placement (they were refused: the view is behind other conductors).
const REFUSALS_BEFORE_REFRESH: usize = 3;

/// The request the background refresh lists hosts for: every flavor asks at least one VCPU.
const BACKGROUND_REQUEST: &str = "VCPU:1";

/// How a claim in placement ended.
enum Claim {
    Made,
    /// The host had no room (for all the view knew, it had).
    Refused,
    /// The consumer already holds allocations (a redelivered build): every host would
    /// refuse, and none of them is to blame.
    ConsumerTaken,
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

    /// The build of `i` failed for good: the server is ERROR with fault `f`, and its ports
    /// are released as upstream's `_cleanup_allocated_networks` does (ports Nova made are
    /// deleted, those the user brought unbound).
    async fn fail_build(
        &self,
        mut i: Instance,
        expected: (VmState, Option<String>),
        f: InstanceFault,
    ) {
        if i.vm_state == VmState::ShelvedOffloaded {
            // An unshelve that cannot be placed leaves the server shelved on no host with
            // its ports (upstream records the failure in the instance action only).
            if let Err(e) = self.rebind_ports(&i, "").await {
                tracing::warn!(uuid = %i.uuid, error = %e.detail(), "ports not unbound");
            }
            i.task_state = None;
            i.host = None;
            i.node = None;
            self.conductor_save(&mut i, expected).await;
            return;
        }
        self.unbind_ports(&i).await;
        i.network_info.clear();
        i.vm_state = VmState::Error;
        i.task_state = None;
        i.fault = Some(f);
        self.conductor_save(&mut i, expected).await;
    }

    /// Handles one conductor request.
    pub async fn conduct(&self, req: ConductorRequest, request_id: &str) -> Result<()> {
        match req {
            ConductorRequest::BuildInstances { uuid, .. } => {
                if let Some(i) = self.instance_load(&uuid).await?
                    && i.vm_state == VmState::Building
                    && i.task_state.as_deref() == Some(task_state::SCHEDULING)
                {
                    self.schedule(i, request_id, None).await?;
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
                if i.host.as_deref() == Some(host.as_str()) && unshelving(&i) {
                    return self
                        .unshelve_built(i, &host, power_state, None, request_id)
                        .await;
                }
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
                if i.host.as_deref() == Some(host.as_str()) && unshelving(&i) {
                    return self
                        .unshelve_built(i, &host, PowerState::NoState, Some(&reason), request_id)
                        .await;
                }
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
                let details = format!("Build of instance {uuid} on {host} failed: {reason}");
                if self.config.max_attempts <= 1 || i.requested_host.is_some() {
                    // Upstream's compute has no retry information then (populate_retry:
                    // max_attempts 1 or a forced host) and records the build's reason as
                    // the fault's message.
                    self.fail_build(i, expected, fault(500, reason, details))
                        .await;
                } else if i.attempts >= self.config.max_attempts {
                    // populate_retry's MaxRetriesExceeded, which names the last failure.
                    let message = format!(
                        "Exceeded maximum number of retries. Exceeded max scheduling attempts \
                         {} for instance {uuid}. Last exception: {reason}",
                        self.config.max_attempts
                    );
                    self.fail_build(i, expected, fault(500, message, details))
                        .await;
                } else {
                    // Reschedule, without the hosts that failed (upstream's RetryFilter).
                    i.task_state = Some(task_state::SCHEDULING.into());
                    if self.conductor_save(&mut i, expected).await {
                        self.schedule(i, request_id, Some(details)).await?;
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
            ConductorRequest::ShelveInstance {
                uuid,
                image_id,
                token,
                ..
            } => {
                self.conduct_shelve(&uuid, &image_id, &token, request_id)
                    .await?;
            }
            ConductorRequest::ShelveOffloadInstance { uuid, .. } => {
                self.conduct_shelve_offload(&uuid, request_id).await?;
            }
            ConductorRequest::UnshelveInstance { uuid, host, .. } => {
                self.conduct_unshelve(&uuid, host, request_id).await?;
            }
            ConductorRequest::SnapshotDone {
                uuid, host, error, ..
            } => {
                self.conduct_snapshot_done(&uuid, &host, error.as_deref(), request_id)
                    .await?;
            }
            ConductorRequest::GuestsOnHost {
                host,
                guests,
                taken_at,
                ..
            } => {
                self.guests_on_host(&host, &guests, taken_at, request_id)
                    .await?;
            }
            ConductorRequest::ServiceHeartbeat {
                host, resources, ..
            } => {
                self.service_heartbeat(&host).await?;
                self.node_report(&host, &resources).await?;
            }
        }
        Ok(())
    }

    /// What `host`'s agent found its guests in: those whose server is deleted or unknown
    /// are destroyed (upstream's `running_deleted_instance_action = reap`: a server deleted
    /// while its host was down was deleted here only), the others' power state is synced.
    async fn guests_on_host(
        &self,
        host: &str,
        guests: &[(String, PowerState)],
        taken_at: i64,
        request_id: &str,
    ) -> Result<()> {
        for (uuid, state) in guests {
            match db::instance_get_any(&mut &self.db, uuid).await? {
                Some(i) if !i.deleted => {
                    // A server that changed since the states were read is left to the next
                    // report (upstream re-reads the state under the instance's lock).
                    if i.host.as_deref() == Some(host)
                        && i.task_state.is_none()
                        && i.updated_at < taken_at
                    {
                        self.sync_power_state(i, *state, request_id).await?;
                    }
                }
                _ => {
                    tracing::warn!(%uuid, %host, "a guest of a deleted server runs: destroying it");
                    self.cast_agent(
                        host,
                        AgentRequest::TerminateInstance {
                            version: CONTRACT_VERSION.into(),
                            uuid: uuid.clone(),
                        },
                        request_id,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Upstream's `_sync_instance_power_state` for an instance with no task under way: the
    /// recorded power state follows the hypervisor's; a server ACTIVE or PAUSED whose guest
    /// shut down or crashed is STOPPED; a STOPPED server whose guest runs is stopped again
    /// (upstream's force_stop). A guest found missing or paused unexpectedly is only noted.
    async fn sync_power_state(
        &self,
        mut i: Instance,
        state: PowerState,
        request_id: &str,
    ) -> Result<()> {
        let expected = (i.vm_state, i.task_state.clone());
        let off = matches!(state, PowerState::Shutdown | PowerState::Crashed);
        let mut stop = false;
        match i.vm_state {
            VmState::Active | VmState::Paused if off => {
                tracing::warn!(uuid = %i.uuid, ?state, "the guest stopped by itself: the server is stopped");
                i.vm_state = VmState::Stopped;
            }
            VmState::Active if state == PowerState::Suspended => stop = true,
            VmState::Stopped if !off && state != PowerState::NoState => stop = true,
            _ if i.power_state == state => return Ok(()),
            _ => {}
        }
        i.power_state = state;
        if stop {
            tracing::warn!(uuid = %i.uuid, ?state, vm_state = ?i.vm_state,
                "the guest runs against the server's state: stopping it");
            i.task_state = Some(task_state::POWERING_OFF.into());
        }
        if !self.conductor_save(&mut i, expected).await || !stop {
            return Ok(());
        }
        let Some(host) = i.host.clone() else {
            return Ok(());
        };
        self.cast_agent(
            &host,
            AgentRequest::PowerAction {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
                action: ferro_api_types::compute::PowerAction::Stop,
            },
            request_id,
        )
        .await
    }

    fn node_reports_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ComputeNode>> {
        self.node_reports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a compute service's heartbeat. The first of each host this conductor sees
    /// is written at once (registering the service if needed); later ones wait in memory
    /// for [`Compute::flush_heartbeats`], which writes them in one transaction: at 1,000
    /// hosts, a write each would be 100 commits a second on the compute database, each
    /// holding its write lock, while a heartbeat a second late changes nothing (a service
    /// is down after 60 s). The host view learns each at once.
    async fn service_heartbeat(&self, host: &str) -> Result<()> {
        let now = now_micros();
        let known = {
            let mut b = self.beats_lock();
            let known = b.registered.contains(host);
            if known {
                b.pending.insert(host.to_string(), now);
            }
            known
        };
        if !known {
            if !db::service_heartbeat_of(&mut &self.db, host, COMPUTE_BINARY, now).await? {
                self.service_report(host, COMPUTE_BINARY, "compute").await?;
            }
            self.beats_lock().registered.insert(host.to_string());
        }
        self.hosts.heartbeat(host, now);
        Ok(())
    }

    /// Forgets what this conductor holds of `host` once its service is deleted: its next
    /// heartbeat, if any, registers it anew.
    pub(crate) fn forget_host(&self, host: &str) {
        let mut b = self.beats_lock();
        b.registered.remove(host);
        b.pending.remove(host);
        drop(b);
        self.node_reports_lock().remove(host);
        self.hosts.forget(host);
    }

    fn beats_lock(&self) -> std::sync::MutexGuard<'_, Heartbeats> {
        self.beats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the heartbeats waiting in memory, in one transaction. A host whose service
    /// row is gone is written directly (re-registered) at its next heartbeat.
    pub async fn flush_heartbeats(&self) -> Result<usize> {
        let pending = std::mem::take(&mut self.beats_lock().pending);
        if pending.is_empty() {
            return Ok(0);
        }
        let mut gone = Vec::new();
        let written = async {
            let mut tx = self.db.begin().await?;
            for (host, at) in &pending {
                if !db::service_heartbeat_of(&mut tx, host, COMPUTE_BINARY, *at).await? {
                    gone.push(host);
                }
            }
            tx.commit().await?;
            Ok::<(), Fault>(())
        }
        .await;
        if let Err(e) = written {
            // Kept for the next flush, unless a newer heartbeat came meanwhile.
            let mut b = self.beats_lock();
            for (host, at) in pending {
                b.pending.entry(host).or_insert(at);
            }
            return Err(e);
        }
        let mut b = self.beats_lock();
        for host in gone {
            b.registered.remove(host);
        }
        Ok(pending.len())
    }

    /// Records a host's compute node when its report differs from what this conductor
    /// last wrote (upstream's resource tracker saves a node only when it changed): at
    /// 1,000 hosts, heartbeats would otherwise be 100 writes a second.
    async fn node_report(&self, host: &str, r: &HostResources) -> Result<()> {
        let now = now_micros();
        let Some(uuid) = r.provider_uuid.clone() else {
            // Not in placement yet: the node cannot be scheduled to, so it is not listed.
            return Ok(());
        };
        let node = ComputeNode {
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
            cpu_info: r.cpu_info.is_object().then(|| r.cpu_info.to_string()),
        };
        let same = |a: &ComputeNode| {
            (
                &a.uuid,
                a.vcpus,
                a.memory_mb,
                a.local_gb,
                &a.hypervisor_type,
                a.hypervisor_version,
                &a.cpu_info,
            ) == (
                &node.uuid,
                node.vcpus,
                node.memory_mb,
                node.local_gb,
                &node.hypervisor_type,
                node.hypervisor_version,
                &node.cpu_info,
            )
        };
        if self.node_reports_lock().get(host).is_some_and(same) {
            return Ok(());
        }
        db::node_report(&self.db, &node).await?;
        self.node_reports_lock().insert(host.to_string(), node);
        Ok(())
    }

    async fn finish_delete(&self, mut i: Instance, expected: (VmState, Option<String>)) {
        self.unbind_ports(&i).await;
        i.mark_deleted(now_micros());
        self.conductor_save(&mut i, expected).await;
    }

    /// Places `i` (in `building`/`scheduling`) on a host and casts its build there, or puts
    /// it in ERROR: upstream's NoValidHost fault, or for a reschedule (`last_failure`, the
    /// failed build's details) MaxRetriesExceeded.
    pub(crate) async fn schedule(
        &self,
        mut i: Instance,
        request_id: &str,
        last_failure: Option<String>,
    ) -> Result<()> {
        let expected = (i.vm_state, i.task_state.clone());
        // A group's members are placed one at a time, until each has its host recorded.
        let group_lock = db::group_of_instance(&mut &self.db, &i.uuid)
            .await?
            .map(|g| self.group_locks.of(&g));
        let _placing = match &group_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let chosen = self.claim_host(&i, Some(group_lock.is_some())).await?;
        let Some(cand) = chosen else {
            // A reschedule that finds no host left is upstream's MaxRetriesExceeded (its
            // alternates ran out), not NoValidHost; the last build's failure stays in the
            // details.
            let f = match last_failure {
                Some(details) => fault(
                    500,
                    format!(
                        "Exceeded maximum number of retries. Exhausted all hosts available \
                         for retrying build failures for instance {}.",
                        i.uuid
                    ),
                    details,
                ),
                None => fault(
                    500,
                    "No valid host was found. There are not enough hosts available.".into(),
                    String::new(),
                ),
            };
            self.record_event(
                &i.uuid,
                request_id,
                "conductor_schedule_and_build_instances",
                None,
                Some(&f.message),
            )
            .await;
            self.fail_build(i, expected, f).await;
            return Ok(());
        };
        i.host = Some(cand.host.clone());
        i.node = Some(cand.host.clone());
        // The instance is in its host's zone (upstream's conductor sets it from the
        // selection).
        i.availability_zone = Some(cand.zone.clone());
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
                    i.host = None;
                    i.node = None;
                    self.fail_build(i, expected, fault(500, reason, String::new()))
                        .await;
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

    /// Finds a host for `i` as its flavor now is and claims its resources there for the
    /// instance's consumer: the chosen host, or `None` when no host can take it.
    ///
    /// The choice is made in the conductor's host view ([`crate::scheduler`]): compute
    /// status, room for every class, availability zone, the flavor's aggregate extra specs,
    /// tried hosts, the group's policy, then the weighers. The claim in placement decides;
    /// a refused claim moves on to the next host. The view is refreshed from placement's allocation candidates when it is
    /// old, after [`REFUSALS_BEFORE_REFRESH`] refusals, and before answering that no host
    /// can take the instance.
    ///
    /// Each successful decision is timed as a `debug` event of target `SCHEDULER_TRACE`
    /// (time refreshing the view, until chosen, the whole decision with its claim), read by
    /// `bench/compute`.
    ///
    /// `in_group` says whether the instance is in a server group, when the caller knows
    /// (membership is fixed at create); the group's members are read here either way.
    pub(crate) async fn claim_host(
        &self,
        i: &Instance,
        in_group: Option<bool>,
    ) -> Result<Option<Choice>> {
        let started = Instant::now();
        let aggregate_specs = crate::scheduler::aggregate_requirements(&i.flavor.extra_specs);
        let resources = requested_resources(i);
        let query = resources_query(i);
        // Read under the group's lock (held by the caller): a member placed meanwhile counts.
        let group = match in_group {
            Some(false) => None,
            _ => self.group_placement(&i.uuid).await?,
        };
        let mut excluded = i.tried_hosts.clone();
        let mut refresh_time = Duration::ZERO;
        let mut refreshed = false;
        let mut refused = 0;
        if let Some(seen) = self.hosts.stale() {
            refresh_time += self.view_refresh(&query, Some(seen)).await?;
        }
        loop {
            let req = HostRequest {
                resources: &resources,
                excluded: &excluded,
                group: group.as_ref(),
                only: i.requested_host.as_deref(),
                zone: i.requested_zone.as_deref(),
                aggregate_specs: &aggregate_specs,
                now: now_micros(),
            };
            let Some(choice) = self.hosts.choose(&req, &i.uuid, random_index()) else {
                if refreshed {
                    return Ok(None);
                }
                // Placement, not the view, says when no host is left.
                refresh_time += self.view_refresh(&query, None).await?;
                refreshed = true;
                continue;
            };
            let chosen = started.elapsed();
            match self.claim(i, &choice).await {
                Ok(Claim::Made) => self.hosts.claimed(&i.uuid),
                Ok(Claim::Refused) => {
                    self.hosts.refused(&i.uuid);
                    refused += 1;
                    if refused == REFUSALS_BEFORE_REFRESH && !refreshed {
                        refresh_time += self.view_refresh(&query, None).await?;
                        refreshed = true;
                    }
                    continue;
                }
                Ok(Claim::ConsumerTaken) => {
                    self.hosts.abandoned(&i.uuid);
                    tracing::warn!(uuid = %i.uuid, "the instance already holds allocations");
                    return Ok(None);
                }
                Err(e) => {
                    self.hosts.abandoned(&i.uuid);
                    return Err(e);
                }
            }
            // Late check (upstream's validate_instance_group_policy): a member placed
            // meanwhile, by another conductor, may have taken the group's room on this host.
            if group.is_some()
                && let Some(now) = self.group_placement(&i.uuid).await?
                && !now.allows(&choice.host)
            {
                self.allocation_delete(&i.uuid).await;
                excluded.push(choice.host.clone());
                continue;
            }
            tracing::debug!(
                target: SCHEDULER_TRACE,
                uuid = %i.uuid,
                host = %choice.host,
                candidates = choice.considered,
                refused,
                refresh_us = refresh_time.as_micros() as u64,
                chosen_us = chosen.as_micros() as u64,
                total_us = started.elapsed().as_micros() as u64,
                "scheduling decision"
            );
            return Ok(Some(choice));
        }
    }

    /// Claims `choice`'s resources in placement for `i`'s consumer.
    async fn claim(&self, i: &Instance, choice: &Choice) -> Result<Claim> {
        let body = json!({
            "allocations": choice.allocations(),
            "project_id": i.project_id,
            "user_id": i.user_id,
            "consumer_generation": null,
        });
        let r = self
            .placement()
            .await?
            .put(&format!("/allocations/{}", i.uuid), Some(&body))
            .await
            .map_err(|e| Fault::internal(format!("placement: {e}")))?;
        match r.status {
            204 => Ok(Claim::Made),
            // placement's consumer_conflict: the consumer exists (consumer_generation null
            // promised a new one).
            409 if r.body["errors"][0]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("consumer generation conflict")) =>
            {
                Ok(Claim::ConsumerTaken)
            }
            // Another claim won the capacity, or a limit the view does not know refused it:
            // try the next host.
            409 => Ok(Claim::Refused),
            s => {
                if s == 401 {
                    self.links()?.auth.invalidate();
                }
                Err(Fault::internal(format!(
                    "placement answered {s} claiming for {}: {}",
                    i.uuid, r.body
                )))
            }
        }
    }

    /// Refreshes the host view from placement's allocation candidates for `resources` (a
    /// `resources` query parameter) and the compute-node and service tables. With `seen` (the generation found old), it
    /// is skipped when another decision refreshed the view since, and when one is
    /// refreshing it now and the view has hosts: this decision goes on with the old view
    /// (the claim decides) instead of queueing behind the refresh. Returns the time spent.
    async fn view_refresh(&self, resources: &str, seen: Option<u64>) -> Result<Duration> {
        let started = Instant::now();
        let _one = match seen {
            Some(_) if !self.hosts.is_empty() => match self.hosts.try_refresh_guard() {
                Some(g) => g,
                None => return Ok(Duration::ZERO),
            },
            _ => self.hosts.refresh_guard().await,
        };
        if seen.is_some_and(|g| g != self.hosts.generation()) {
            return Ok(started.elapsed());
        }
        let path = format!("/allocation_candidates?resources={resources}&limit=1000");
        let r = self
            .placement()
            .await?
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
        let nodes = db::node_list(&mut &self.db).await?;
        let services = db::service_list(&mut &self.db).await?;
        let metadata = db::host_aggregate_metadata(&mut &self.db).await?;
        self.hosts.ingest(&r.body, &nodes, services, &metadata);
        Ok(started.elapsed())
    }

    /// Refreshes the host view between decisions, so that they rarely find it old: with
    /// the smallest request any flavor makes (one VCPU), so every host with room for
    /// anything is listed. Skipped while a decision refreshes it.
    pub async fn view_refresh_background(&self) -> Result<()> {
        self.view_refresh(BACKGROUND_REQUEST, Some(self.hosts.generation()))
            .await
            .map(|_| ())
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
        self.offload_shelved().await?;
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

/// Whether `i` is an offloaded server being built again by an unshelve.
fn unshelving(i: &Instance) -> bool {
    i.vm_state == VmState::ShelvedOffloaded && i.task_state.as_deref() == Some(task_state::SPAWNING)
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
        // An unshelve builds from the shelve's snapshot.
        image_ref: i
            .shelved_image_id
            .clone()
            .unwrap_or_else(|| i.image_ref.clone()),
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
        nics: i.network_info.iter().map(Vif::nic).collect(),
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
    let sweeper_compute = compute.clone();
    let refresher_compute = compute.clone();
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
    let c = sweeper_compute;
    let beats = tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT_FLUSH_INTERVAL).await;
            if let Err(e) = c.flush_heartbeats().await {
                tracing::error!(error = ?e, "heartbeats not written");
            }
        }
    });
    let c = refresher_compute;
    let refresher = tokio::spawn(async move {
        let every = (c.hosts.ttl() / 2).max(Duration::from_millis(100));
        loop {
            if let Err(e) = c.view_refresh_background().await {
                tracing::warn!(error = ?e, "host view not refreshed");
            }
            tokio::time::sleep(every).await;
        }
    });
    Ok(vec![consumer, sweeper, beats, refresher])
}

/// How often heartbeats waiting in memory are written.
pub const HEARTBEAT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Compute services' heartbeats this conductor has yet to write.
#[derive(Default)]
pub struct Heartbeats {
    /// Hosts whose service row this conductor wrote once.
    registered: std::collections::HashSet<String>,
    /// The latest heartbeat time of each host, in host order (the order rows are locked).
    pending: std::collections::BTreeMap<String, i64>,
}

/// How often the sweep runs by default.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// A random index for the choice among the best hosts (`host_subset_size`).
fn random_index() -> usize {
    getrandom::u32().map_or(0, |n| n as usize)
}
