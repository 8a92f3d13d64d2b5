//! Shelving (upstream's os-shelve: `shelve`, `shelveOffload`, `unshelve`).
//!
//! `shelve` snapshots a server into a `<name>-shelved` image and powers it off: SHELVED,
//! still on its host. With `shelved_offload_time` 0 (upstream's default) it is offloaded at
//! once: its guest destroyed, its allocation removed, its ports unbound from the host —
//! SHELVED_OFFLOADED on no host, counting against quota but holding no host's resources.
//! `unshelve` powers a SHELVED server on where it is, or schedules a SHELVED_OFFLOADED one
//! as a new build (2.77 into a zone, 2.91 onto a host an admin names) from its shelve
//! image; either way the image is deleted once the server runs. A failed unshelve leaves
//! the server SHELVED_OFFLOADED with the fault, as upstream.
//!
//! The API checks and marks the task; the conductor drives the host through the agent's
//! [`AgentRequest::Shelve`] calls and the build path.

use ferro_api_types::compute::{AgentRequest, CONTRACT_VERSION, ConductorRequest, ShelveStep};
use ferro_common::RequestContext;
use ferro_common::time::now_micros;
use serde_json::{Value, json};

use crate::conductor::fault;
use crate::db;
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, PowerState, VmState, task_state};
use crate::servers::check_idle;
use crate::{Compute, conductor::COMPUTE_BINARY};

const EV_SHELVE: &str = "compute_shelve_instance";
const EV_OFFLOAD: &str = "compute_shelve_offload_instance";
const EV_UNSHELVE: &str = "compute_unshelve_instance";
const EV_START: &str = "compute_start_instance";

/// What an `unshelve` asked for beyond the default (2.77 zone, 2.91 host).
#[derive(Debug, Default)]
pub struct UnshelveTo {
    /// `Some(None)`: unpin the server from its zone (2.91's `null`); `None`: keep it.
    pub zone: Option<Option<String>>,
    pub host: Option<String>,
}

impl UnshelveTo {
    /// Reads an `unshelve` body at microversion `v` (schema-checked already).
    pub fn parse(v: ApiVersion, body: &Value) -> UnshelveTo {
        let entity = &body["unshelve"];
        let mut to = UnshelveTo::default();
        if v.at_least(2, 77)
            && let Some(zone) = entity.get("availability_zone")
        {
            to.zone = Some(zone.as_str().map(str::to_string));
        }
        if v.at_least(2, 91) {
            to.host = entity["host"].as_str().map(str::to_string);
        }
        to
    }
}

impl Compute {
    /// `shelve`: 202 once the snapshot image is queued and the conductor asked.
    pub async fn server_shelve(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let mut i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:os-shelve:shelve",
            json!({"project_id": i.project_id, "user_id": i.user_id}),
        )?;
        self.check_lock(ctx, &i)?;
        check_idle(
            "shelve",
            &i,
            &[
                VmState::Active,
                VmState::Stopped,
                VmState::Paused,
                VmState::Suspended,
            ],
        )?;
        if i.host.is_none() {
            return Err(Fault::conflict(format!("Instance {id} is not ready")));
        }
        self.links()?;
        let name = format!("{}-shelved", i.display_name);
        let image_id = self.queue_snapshot_image(ctx, &i, &name, None).await?;
        let expected = (i.vm_state, None);
        i.task_state = Some(task_state::SHELVING.into());
        i.updated_at = now_micros();
        if !db::instance_save(&mut &self.db, &i, (expected.0, expected.1)).await? {
            self.image_delete_as_service(&image_id).await;
            return Err(Fault::conflict(format!(
                "Cannot 'shelve' instance {id} while it is changing state"
            )));
        }
        self.record_action(ctx, &i, "shelve").await;
        self.cast_conductor(
            ConductorRequest::ShelveInstance {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
                image_id,
                token: ctx.token.clone(),
            },
            &ctx.request_id,
        )
        .await
    }

    /// `shelveOffload` (admin): a SHELVED server leaves its host.
    pub async fn server_shelve_offload(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let mut i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:os-shelve:shelve_offload",
            json!({"project_id": i.project_id, "user_id": i.user_id}),
        )?;
        self.check_lock(ctx, &i)?;
        check_idle("shelveOffload", &i, &[VmState::Shelved])?;
        self.links()?;
        i.task_state = Some(task_state::SHELVING_OFFLOADING.into());
        i.updated_at = now_micros();
        if !db::instance_save(&mut &self.db, &i, (VmState::Shelved, None)).await? {
            return Err(Fault::conflict(format!(
                "Cannot 'shelveOffload' instance {id} while it is changing state"
            )));
        }
        self.record_action(ctx, &i, "shelveOffload").await;
        self.cast_conductor(
            ConductorRequest::ShelveOffloadInstance {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
            },
            &ctx.request_id,
        )
        .await
    }

    /// `unshelve`: a SHELVED or SHELVED_OFFLOADED server back to ACTIVE.
    pub async fn server_unshelve(
        &self,
        ctx: &RequestContext,
        id: &str,
        to: UnshelveTo,
    ) -> Result<()> {
        let mut i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:os-shelve:unshelve",
            json!({"project_id": i.project_id}),
        )?;
        self.check_lock(ctx, &i)?;
        check_idle(
            "unshelve",
            &i,
            &[VmState::Shelved, VmState::ShelvedOffloaded],
        )?;
        if (to.zone.is_some() || to.host.is_some()) && i.vm_state != VmState::ShelvedOffloaded {
            return Err(Fault::conflict(format!(
                "Specifying an availability zone or a host when unshelving server \"{}\" \
                 with status \"{}\" is not supported. The server status must be \
                 SHELVED_OFFLOADED.",
                i.uuid,
                i.vm_state.as_str()
            )));
        }
        if let Some(Some(zone)) = &to.zone
            && !self.zone_available(zone).await?
        {
            return Err(Fault::bad_request(
                "The requested availability zone is not available",
            ));
        }
        let zone_after = match &to.zone {
            Some(z) => z.clone(),
            None => i.requested_zone.clone(),
        };
        if let Some(host) = &to.host {
            self.authorize(
                ctx,
                "os_compute_api:os-shelve:unshelve_to_host",
                json!({"project_id": i.project_id, "user_id": i.user_id}),
            )?;
            if db::service_get(&mut &self.db, host, COMPUTE_BINARY)
                .await?
                .is_none()
            {
                return Err(Fault::bad_request(format!(
                    "Compute host {host} could not be found."
                )));
            }
            if let Some(zone) = &zone_after
                && self.host_zone(host).await? != *zone
            {
                return Err(Fault::conflict(format!(
                    "Host \"{host}\" is not in the availability zone \"{zone}\"."
                )));
            }
        }
        if i.vm_state == VmState::ShelvedOffloaded {
            // It holds no cores or RAM while offloaded (upstream checks them when counting
            // from placement; here usage counts every live server, so nothing to add).
            i.requested_zone = zone_after;
        }
        self.links()?;
        let expected = (i.vm_state, None);
        i.task_state = Some(task_state::UNSHELVING.into());
        i.updated_at = now_micros();
        if !db::instance_save(&mut &self.db, &i, (expected.0, expected.1)).await? {
            return Err(Fault::conflict(format!(
                "Cannot 'unshelve' instance {id} while it is changing state"
            )));
        }
        self.record_action(ctx, &i, "unshelve").await;
        self.cast_conductor(
            ConductorRequest::UnshelveInstance {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
                host: to.host,
            },
            &ctx.request_id,
        )
        .await
    }

    /// Deletes a shelve image as the compute service (an admin of its project): a missing
    /// image is not an error, a failure is logged (upstream logs it too).
    pub(crate) async fn image_delete_as_service(&self, image_id: &str) {
        let done = async {
            let r = self
                .image_client(&self.service_token().await?)?
                .delete(&format!("/v2/images/{image_id}"))
                .await
                .map_err(|e| Fault::internal(format!("image API: {e}")))?;
            match r.status {
                204 | 404 => Ok(()),
                s => Err(Fault::internal(format!("the image API answered {s}"))),
            }
        }
        .await;
        if let Err(e) = done {
            tracing::warn!(%image_id, error = %e.detail(), "shelve image not deleted");
        }
    }

    /// The conductor's shelve: the agent powers the guest off and uploads its disk, then
    /// the server is SHELVED (and offloaded when `shelved_offload_time` is 0). A failed
    /// snapshot deletes the image and leaves the server as it was, powered off.
    pub(crate) async fn conduct_shelve(
        &self,
        uuid: &str,
        image_id: &str,
        token: &str,
        request_id: &str,
    ) -> Result<()> {
        let Some(mut i) = db::instance_get(&mut &self.db, uuid).await? else {
            self.image_delete_as_service(image_id).await;
            return Ok(());
        };
        let Some(host) = i.host.clone() else {
            return Ok(());
        };
        if i.task_state.as_deref() != Some(task_state::SHELVING) {
            return Ok(());
        }
        let expected = (i.vm_state, i.task_state.clone());
        let req = AgentRequest::Shelve {
            version: CONTRACT_VERSION.into(),
            uuid: uuid.to_string(),
            step: ShelveStep::Snapshot,
            image_id: Some(image_id.to_string()),
            token: Some(token.to_string()),
        };
        let outcome = self.call_agent(&host, req, request_id, uuid).await;
        let error = outcome.as_ref().err().map(|e| e.detail());
        self.record_event(uuid, request_id, EV_SHELVE, Some(&host), error.as_deref())
            .await;
        let offload = self.config.shelved_offload_time == 0;
        match outcome {
            Ok(answer) => {
                i.power_state = power_of(&answer);
                i.vm_state = VmState::Shelved;
                i.shelved_image_id = Some(image_id.to_string());
                i.shelved_at = Some(now_micros());
                i.task_state = offload.then(|| task_state::SHELVING_OFFLOADING.to_string());
            }
            Err(e) => {
                tracing::warn!(%uuid, error = %e.detail(), "shelve failed");
                self.image_delete_as_service(image_id).await;
                i.task_state = None;
                i.fault = Some(fault(500, e.detail(), String::new()));
            }
        }
        i.updated_at = now_micros();
        if !db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await? {
            // Deleted meanwhile: the delete removes the guest; the image is nobody's.
            if i.shelved_image_id.is_some() {
                self.image_delete_as_service(image_id).await;
            }
            return Ok(());
        }
        if offload && i.vm_state == VmState::Shelved {
            self.offload(i, request_id).await?;
        }
        Ok(())
    }

    /// `shelveOffload` in the conductor: a server marked `shelving_offloading`.
    pub(crate) async fn conduct_shelve_offload(&self, uuid: &str, request_id: &str) -> Result<()> {
        if let Some(i) = db::instance_get(&mut &self.db, uuid).await?
            && i.vm_state == VmState::Shelved
            && i.task_state.as_deref() == Some(task_state::SHELVING_OFFLOADING)
        {
            self.offload(i, request_id).await?;
        }
        Ok(())
    }

    /// Offloads the SHELVED servers shelved more than `shelved_offload_time` seconds ago
    /// (upstream's `_poll_shelved_instances`); run by the conductor's sweep. Nothing when
    /// the setting is 0 (shelve offloads at once) or negative (never).
    pub(crate) async fn offload_shelved(&self) -> Result<()> {
        let after = self.config.shelved_offload_time;
        if after <= 0 {
            return Ok(());
        }
        let cutoff = now_micros() - after.saturating_mul(1_000_000);
        for mut i in db::instance_list(&mut &self.db, None).await? {
            if i.vm_state != VmState::Shelved
                || i.task_state.is_some()
                || i.shelved_at.is_none_or(|t| t > cutoff)
            {
                continue;
            }
            i.task_state = Some(task_state::SHELVING_OFFLOADING.into());
            i.updated_at = now_micros();
            if db::instance_save(&mut &self.db, &i, (VmState::Shelved, None)).await? {
                let request_id = format!("req-{}", uuid::Uuid::new_v4());
                self.offload(i, &request_id).await?;
            }
        }
        Ok(())
    }

    /// Removes a SHELVED server (in `shelving_offloading`) from its host: the guest
    /// destroyed, the ports unbound from the host, the allocation removed.
    async fn offload(&self, mut i: Instance, request_id: &str) -> Result<()> {
        let Some(host) = i.host.clone() else {
            return Ok(());
        };
        let expected = (i.vm_state, i.task_state.clone());
        let req = AgentRequest::Shelve {
            version: CONTRACT_VERSION.into(),
            uuid: i.uuid.clone(),
            step: ShelveStep::Offload,
            image_id: None,
            token: None,
        };
        let outcome = self.call_agent(&host, req, request_id, &i.uuid).await;
        let error = outcome.as_ref().err().map(|e| e.detail());
        self.record_event(
            &i.uuid,
            request_id,
            EV_OFFLOAD,
            Some(&host),
            error.as_deref(),
        )
        .await;
        i.task_state = None;
        match outcome {
            Ok(answer) => {
                if let Err(e) = self.rebind_ports(&i, "").await {
                    tracing::warn!(uuid = %i.uuid, error = %e.detail(), "ports not unbound");
                }
                self.allocation_delete(&i.uuid).await;
                i.power_state = power_of(&answer);
                i.vm_state = VmState::ShelvedOffloaded;
                i.host = None;
                i.node = None;
            }
            Err(e) => {
                tracing::warn!(uuid = %i.uuid, error = %e.detail(), "shelve offload failed");
                i.fault = Some(fault(500, e.detail(), String::new()));
            }
        }
        i.updated_at = now_micros();
        db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await?;
        Ok(())
    }

    /// The conductor's unshelve of a server marked `unshelving`.
    pub(crate) async fn conduct_unshelve(
        &self,
        uuid: &str,
        host: Option<String>,
        request_id: &str,
    ) -> Result<()> {
        let Some(mut i) = db::instance_get(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        if i.task_state.as_deref() != Some(task_state::UNSHELVING) {
            return Ok(());
        }
        let expected = (i.vm_state, i.task_state.clone());
        match (i.vm_state, i.host.clone()) {
            (VmState::Shelved, Some(on)) => {
                let req = AgentRequest::Shelve {
                    version: CONTRACT_VERSION.into(),
                    uuid: uuid.to_string(),
                    step: ShelveStep::PowerOn,
                    image_id: None,
                    token: None,
                };
                let outcome = self.call_agent(&on, req, request_id, uuid).await;
                let error = outcome.as_ref().err().map(|e| e.detail());
                self.record_event(uuid, request_id, EV_START, Some(&on), error.as_deref())
                    .await;
                i.task_state = None;
                match outcome {
                    Ok(answer) => {
                        i.power_state = power_of(&answer);
                        i.vm_state = VmState::Active;
                        self.forget_shelve_image(&mut i).await;
                    }
                    Err(e) => i.fault = Some(fault(500, e.detail(), String::new())),
                }
                i.updated_at = now_micros();
                db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await?;
            }
            (VmState::ShelvedOffloaded, _) => {
                if host.is_some() {
                    i.requested_host = host;
                }
                i.tried_hosts.clear();
                i.attempts = 0;
                self.schedule(i, request_id, None).await?;
            }
            _ => {
                i.task_state = None;
                i.updated_at = now_micros();
                db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await?;
            }
        }
        Ok(())
    }

    /// An offloaded server's build on its new host ended (`error` says why it failed):
    /// ACTIVE with its shelve image deleted, or back to SHELVED_OFFLOADED on no host with
    /// the fault and nothing held.
    pub(crate) async fn unshelve_built(
        &self,
        mut i: Instance,
        host: &str,
        power_state: PowerState,
        error: Option<&str>,
        request_id: &str,
    ) -> Result<()> {
        let expected = (i.vm_state, i.task_state.clone());
        self.record_event(&i.uuid, request_id, EV_UNSHELVE, Some(host), error)
            .await;
        i.task_state = None;
        match error {
            None => {
                i.vm_state = VmState::Active;
                i.power_state = power_state;
                i.launched_at = Some(now_micros());
                self.forget_shelve_image(&mut i).await;
            }
            Some(reason) => {
                self.allocation_delete(&i.uuid).await;
                if let Err(e) = self.rebind_ports(&i, "").await {
                    tracing::warn!(uuid = %i.uuid, error = %e.detail(), "ports not unbound");
                }
                i.host = None;
                i.node = None;
                i.fault = Some(fault(
                    500,
                    format!("Build of instance {} on {host} failed: {reason}", i.uuid),
                    String::new(),
                ));
            }
        }
        i.updated_at = now_micros();
        db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await?;
        Ok(())
    }

    /// Deletes `i`'s shelve image and forgets it.
    async fn forget_shelve_image(&self, i: &mut Instance) {
        if let Some(image) = i.shelved_image_id.take() {
            self.image_delete_as_service(&image).await;
        }
        i.shelved_at = None;
    }
}

/// The power state an agent's call answered (`{"power_state": <code>}`).
pub(crate) fn power_of(answer: &Value) -> PowerState {
    PowerState::from_code(answer["power_state"].as_i64().unwrap_or(0))
}
