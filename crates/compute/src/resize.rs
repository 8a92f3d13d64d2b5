//! Resize, confirm and revert (`resize`, `confirmResize`, `revertResize` actions), as
//! Nova's compute API and conductor do them: the API checks and records a migration, the
//! conductor moves the server's placement allocation to the migration, claims the new
//! flavor on a host (the same one may do), and has the agents power the guest off on the
//! source and finish it on the destination. The server then waits in `VERIFY_RESIZE`:
//! confirming drops the source's leftovers and the migration's allocation; reverting puts
//! the old flavor, host and allocation back. A step that fails undoes the steps before it
//! and leaves the server as it was, with the failure in its instance action.

use ferro_api_types::compute::{
    AgentRequest, CONTRACT_VERSION, ConductorRequest, InstanceSpec, MigrateStep,
};
use ferro_common::RequestContext;
use ferro_common::time::now_micros;
use serde_json::{Value, json};

use crate::Compute;
use crate::conductor::instance_spec;
use crate::db::{self, Migration};
use crate::fault::{Fault, Result};
use crate::model::{Instance, InstanceFlavor, PowerState, VmState, task_state};
use crate::quota::Resource;
use crate::servers::{check_idle, invalid_state};

const NO_HOST: &str = "No valid host was found. There are not enough hosts available.";

/// The instance-action event of the conductor's part and the agents' part of a resize.
const EV_MIGRATE: &str = "conductor_migrate_server";
const EV_RESIZE: &str = "compute_resize_instance";
const EV_FINISH: &str = "compute_finish_resize";
const EV_CONFIRM: &str = "compute_confirm_resize";
const EV_REVERT: &str = "compute_revert_resize";

impl Compute {
    /// `resize`: checks the new flavor and the quota for the growth, records the migration
    /// and hands the server to the conductor in `resize_prep`.
    pub async fn server_resize(
        &self,
        ctx: &RequestContext,
        id: &str,
        flavor_ref: &str,
    ) -> Result<()> {
        let i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:servers:resize",
            json!({"project_id": i.project_id, "user_id": i.user_id}),
        )?;
        self.check_lock(ctx, &i)?;
        check_idle("resize", &i, &[VmState::Active, VmState::Stopped])?;
        if i.host.is_none() {
            return Err(Fault::conflict(format!("Instance {id} is not ready")));
        }
        let new = match self.flavor_get(ctx, flavor_ref).await {
            Ok(f) => InstanceFlavor::of(&f),
            Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => {
                return Err(Fault::bad_request(format!(
                    "Flavor {flavor_ref} could not be found."
                )));
            }
            Err(e) => return Err(e),
        };
        if new.flavorid == i.flavor.flavorid {
            return Err(Fault::bad_request(
                "When resizing, instances must change flavor!",
            ));
        }
        if new.root_gb == 0 && i.flavor.root_gb != 0 {
            return Err(Fault::bad_request(
                "Server disk was unable to be resized because: Resize to zero disk flavor is \
                 not allowed.",
            ));
        }
        self.start_move(ctx, i, new, None).await
    }

    /// `migrate` (os-migrateServer, admin): a cold migration — a resize to the server's own
    /// flavor on another host (`host`, from 2.56, or the scheduler's choice without the
    /// current host); it then waits in `VERIFY_RESIZE` as a resize does.
    pub async fn server_migrate(
        &self,
        ctx: &RequestContext,
        id: &str,
        host: Option<&str>,
    ) -> Result<()> {
        let i = self.instance_visible(ctx, id).await?;
        let rule = if host.is_some() {
            "os_compute_api:os-migrate-server:migrate:host"
        } else {
            "os_compute_api:os-migrate-server:migrate"
        };
        self.authorize(ctx, rule, json!({"project_id": i.project_id}))?;
        self.check_lock(ctx, &i)?;
        check_idle("migrate", &i, &[VmState::Active, VmState::Stopped])?;
        if i.host.is_none() {
            return Err(Fault::conflict(format!("Instance {id} is not ready")));
        }
        if let Some(h) = host {
            if i.host.as_deref() == Some(h) {
                return Err(Fault::bad_request(
                    "Cannot migrate to the host where the server exists.",
                ));
            }
            if db::service_get(&mut &self.db, h, crate::conductor::COMPUTE_BINARY)
                .await?
                .is_none()
            {
                return Err(Fault::bad_request(format!(
                    "Compute host {h} could not be found."
                )));
            }
        }
        let flavor = i.flavor.clone();
        self.start_move(ctx, i, flavor, host.map(String::from))
            .await
    }

    /// Records the migration of `i` to flavor `new` (its own: a cold migration) and hands
    /// the server to the conductor in `resize_prep`; `dest` is the host an admin asked for.
    async fn start_move(
        &self,
        ctx: &RequestContext,
        mut i: Instance,
        new: InstanceFlavor,
        dest: Option<String>,
    ) -> Result<()> {
        let migrate = new.flavorid == i.flavor.flavorid;
        let (id, source) = (i.uuid.clone(), i.host.clone().unwrap_or_default());
        self.links()?;
        let project = i.project_id.clone();
        self.quotas.prepare(&self.db, &project, &i.user_id).await?;
        let mut tx = self.db.begin().await?;
        let deltas = [
            (Resource::Cores, (new.vcpus - i.flavor.vcpus).max(0)),
            (Resource::Ram, (new.memory_mb - i.flavor.memory_mb).max(0)),
        ];
        if let Err(o) = self
            .quotas
            .check_deltas(&mut tx, &project, &i.user_id, &deltas)
            .await?
        {
            let message = self
                .quotas
                .over_message(&mut tx, &project, &i.user_id, &o, &deltas)
                .await?;
            return Err(Fault::forbidden(message));
        }
        let now = now_micros();
        let m = Migration {
            uuid: uuid::Uuid::new_v4().to_string(),
            internal_id: db::next_id(&mut tx, "migrations").await?,
            instance_uuid: i.uuid.clone(),
            source_host: source,
            // A cold migration's requested host, until the conductor records where it went.
            dest_host: dest,
            old_flavor: db::json_text(&i.flavor)?,
            new_flavor: db::json_text(&new)?,
            status: "pre-migrating".into(),
            created_at: now,
            updated_at: now,
        };
        db::migration_insert(&mut tx, &m).await?;
        let expected = (i.vm_state, i.task_state.clone());
        i.task_state = Some(task_state::RESIZE_PREP.into());
        i.updated_at = now;
        let action = if migrate { "migrate" } else { "resize" };
        if !db::instance_save(&mut tx, &i, (expected.0, expected.1.as_deref())).await? {
            return Err(Fault::conflict(format!(
                "Cannot '{action}' instance {id} while it is changing state"
            )));
        }
        tx.commit().await?;
        self.record_action(ctx, &i, action).await;
        self.cast_conductor(
            ConductorRequest::ResizeInstance {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
            },
            &ctx.request_id,
        )
        .await
    }

    /// `confirmResize` and `revertResize`: the server must wait in `VERIFY_RESIZE` with a
    /// finished migration, which this claims (`confirming` / `reverting`).
    pub async fn server_finish_resize(
        &self,
        ctx: &RequestContext,
        id: &str,
        confirm: bool,
    ) -> Result<()> {
        let (method, rule) = if confirm {
            ("confirmResize", "os_compute_api:servers:confirm_resize")
        } else {
            ("revertResize", "os_compute_api:servers:revert_resize")
        };
        let mut i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            rule,
            json!({"project_id": i.project_id, "user_id": i.user_id}),
        )?;
        self.check_lock(ctx, &i)?;
        if i.vm_state != VmState::Resized {
            return Err(invalid_state(method, id, "vm_state", i.vm_state.as_str()));
        }
        self.links()?;
        let m = db::migration_latest(&mut &self.db, &i.uuid)
            .await?
            .filter(|m| m.status == "finished")
            .ok_or_else(|| Fault::bad_request("Instance has not been resized."))?;
        let status = if confirm { "confirming" } else { "reverting" };
        if !db::migration_advance(&mut &self.db, &m.uuid, "finished", status, None).await? {
            return Err(Fault::bad_request("Instance has not been resized."));
        }
        let request = if confirm {
            ConductorRequest::ConfirmResize {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
            }
        } else {
            let expected = (i.vm_state, i.task_state.clone());
            i.task_state = Some(task_state::RESIZE_REVERTING.into());
            i.updated_at = now_micros();
            if !db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await? {
                db::migration_advance(&mut &self.db, &m.uuid, status, "finished", None).await?;
                return Err(Fault::conflict(format!(
                    "Cannot '{method}' instance {id} while it is changing state"
                )));
            }
            ConductorRequest::RevertResize {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
            }
        };
        self.record_action(ctx, &i, method).await;
        self.cast_conductor(request, &ctx.request_id).await
    }

    // ---- the conductor's side -----------------------------------------------------------

    /// Moves the allocations of consumer `from` to consumer `to` in one placement request;
    /// whether `from` had any.
    async fn move_allocations(&self, i: &Instance, from: &str, to: &str) -> Result<bool> {
        let c = self.placement().await?;
        let placement_err =
            |e: ferro_client::ClientError| Fault::internal(format!("placement: {e}"));
        let held = c
            .get(&format!("/allocations/{from}"))
            .await
            .map_err(placement_err)?;
        let allocations = held.body["allocations"].clone();
        if allocations.as_object().is_none_or(|a| a.is_empty()) {
            return Ok(false);
        }
        let target = c
            .get(&format!("/allocations/{to}"))
            .await
            .map_err(placement_err)?;
        let keep: serde_json::Map<String, Value> = allocations
            .as_object()
            .into_iter()
            .flatten()
            .map(|(rp, a)| (rp.clone(), json!({"resources": a["resources"]})))
            .collect();
        let body = json!({
            to: {"allocations": keep, "project_id": i.project_id, "user_id": i.user_id,
                 "consumer_generation": target.body.get("consumer_generation").cloned()
                     .unwrap_or(Value::Null)},
            from: {"allocations": {}, "project_id": i.project_id, "user_id": i.user_id,
                   "consumer_generation": held.body["consumer_generation"]},
        });
        let r = c.post("/allocations", &body).await.map_err(placement_err)?;
        if r.status != 204 {
            return Err(Fault::internal(format!(
                "placement answered {} moving allocations of {from} to {to}: {}",
                r.status, r.body
            )));
        }
        Ok(true)
    }

    /// Runs one resize step on `host`'s agent: the guest's power state after it.
    async fn migrate_step(
        &self,
        host: &str,
        step: MigrateStep,
        spec: InstanceSpec,
        power_on: bool,
        request_id: &str,
    ) -> std::result::Result<PowerState, String> {
        let uuid = spec.uuid.clone();
        let req = AgentRequest::Migrate {
            version: CONTRACT_VERSION.into(),
            step,
            instance: spec,
            power_on,
        };
        match self.call_agent(host, req, request_id, &uuid).await {
            Ok(v) => Ok(PowerState::from_code(
                v["power_state"].as_i64().unwrap_or(0),
            )),
            Err(e) => Err(format!("{step:?} on {host}: {}", e.detail())),
        }
    }

    /// Saves `i` (compare-and-swap on `expected`), logging a lost race.
    async fn resize_save(&self, i: &mut Instance, expected: (VmState, Option<String>)) -> bool {
        i.updated_at = now_micros();
        match db::instance_save(&mut &self.db, i, (expected.0, expected.1.as_deref())).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(uuid = %i.uuid, "instance changed during its resize");
                false
            }
            Err(e) => {
                tracing::error!(uuid = %i.uuid, error = %e, "instance save failed");
                false
            }
        }
    }

    /// Gives up a resize before the server moved: its allocation back, its task cleared,
    /// the migration failed and the reason in the instance action.
    async fn resize_abort(
        &self,
        mut i: Instance,
        m: &Migration,
        request_id: &str,
        event: &str,
        reason: &str,
    ) -> Result<()> {
        self.allocation_delete(&i.uuid).await;
        self.move_allocations(&i, &m.uuid, &i.uuid).await?;
        db::migration_advance(&mut &self.db, &m.uuid, &m.status, "error", None).await?;
        self.record_event(&i.uuid, request_id, event, None, Some(reason))
            .await;
        let expected = (i.vm_state, i.task_state.clone());
        i.task_state = None;
        self.resize_save(&mut i, expected).await;
        Ok(())
    }

    /// The conductor's resize: claim, power off on the source, finish on the destination.
    pub(crate) async fn conduct_resize(&self, uuid: &str, request_id: &str) -> Result<()> {
        let Some(mut i) = db::instance_get(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        let Some(mut m) = db::migration_latest(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        if i.task_state.as_deref() != Some(task_state::RESIZE_PREP) || m.status != "pre-migrating" {
            return Ok(()); // a redelivery of a resize already under way or done
        }
        let Some(source) = i.host.clone() else {
            return Ok(());
        };
        let new: InstanceFlavor = serde_json::from_str(&m.new_flavor)
            .map_err(|_| Fault::internal(format!("migration {}: bad flavor", m.uuid)))?;
        let power_on = i.vm_state == VmState::Active;
        self.move_allocations(&i, uuid, &m.uuid).await?;
        let mut sized = i.clone();
        sized.tried_hosts.clear();
        // A cold migration (the same flavor) goes elsewhere: to the host the admin named,
        // else anywhere but here (upstream ignores the source host unless the driver can
        // migrate to the same host, which libvirt's cannot).
        if new.flavorid == i.flavor.flavorid {
            match m.dest_host.clone() {
                Some(h) => sized.requested_host = Some(h),
                None => sized.tried_hosts.push(source.clone()),
            }
        }
        sized.flavor = new.clone();
        let Some(dest) = self.claim_host(&sized, None).await? else {
            return self
                .resize_abort(i, &m, request_id, EV_MIGRATE, NO_HOST)
                .await;
        };
        let dest = dest.host;
        db::migration_advance(
            &mut &self.db,
            &m.uuid,
            "pre-migrating",
            "migrating",
            Some(&dest),
        )
        .await?;
        m.status = "migrating".into();
        let expected = (i.vm_state, i.task_state.clone());
        i.task_state = Some(task_state::RESIZE_MIGRATING.into());
        if !self.resize_save(&mut i, expected).await {
            return self
                .resize_abort(i, &m, request_id, EV_MIGRATE, "changed meanwhile")
                .await;
        }
        let old_spec = instance_spec(&i);
        if let Err(e) = self
            .migrate_step(
                &source,
                MigrateStep::PowerOff,
                old_spec.clone(),
                false,
                request_id,
            )
            .await
        {
            // The guest may be off: bring it back as it was.
            let _ = self
                .migrate_step(
                    &source,
                    MigrateStep::FinishRevert,
                    old_spec,
                    power_on,
                    request_id,
                )
                .await;
            return self.resize_abort(i, &m, request_id, EV_RESIZE, &e).await;
        }
        self.record_event(uuid, request_id, EV_RESIZE, Some(&source), None)
            .await;
        let new_spec = instance_spec(&sized);
        let finished = self
            .migrate_step(&dest, MigrateStep::Finish, new_spec, power_on, request_id)
            .await;
        let power = match finished {
            Ok(p) => p,
            Err(e) => {
                if dest != source {
                    let _ = self
                        .migrate_step(
                            &dest,
                            MigrateStep::DropDestination,
                            old_spec.clone(),
                            false,
                            request_id,
                        )
                        .await;
                }
                let _ = self
                    .migrate_step(
                        &source,
                        MigrateStep::FinishRevert,
                        old_spec,
                        power_on,
                        request_id,
                    )
                    .await;
                return self.resize_abort(i, &m, request_id, EV_FINISH, &e).await;
            }
        };
        if dest != source
            && let Err(e) = self.rebind_ports(&i, &dest).await
        {
            tracing::error!(%uuid, error = ?e, "ports not bound to the resize's destination");
        }
        let expected = (i.vm_state, i.task_state.clone());
        i.flavor = new;
        i.host = Some(dest.clone());
        i.node = Some(dest.clone());
        // A move takes the server to its new host's zone (upstream's migrate task).
        i.availability_zone = Some(self.host_zone(&dest).await?);
        i.vm_state = VmState::Resized;
        i.task_state = None;
        i.power_state = power;
        // The migration is finished before the server shows VERIFY_RESIZE, so a confirm
        // or revert that sees the status finds the migration ready.
        db::migration_advance(&mut &self.db, &m.uuid, "migrating", "finished", None).await?;
        self.resize_save(&mut i, expected).await;
        self.record_event(uuid, request_id, EV_FINISH, Some(&dest), None)
            .await;
        Ok(())
    }

    /// The conductor's confirm: the source's guest and the migration's allocation go.
    pub(crate) async fn conduct_confirm(&self, uuid: &str, request_id: &str) -> Result<()> {
        let Some(mut i) = db::instance_get(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        let Some(m) = db::migration_latest(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        if m.status != "confirming" || i.vm_state != VmState::Resized {
            return Ok(());
        }
        let dest = m.dest_host.clone().unwrap_or_default();
        if m.source_host != dest {
            let old: InstanceFlavor = serde_json::from_str(&m.old_flavor)
                .map_err(|_| Fault::internal(format!("migration {}: bad flavor", m.uuid)))?;
            let mut was = i.clone();
            was.flavor = old;
            if let Err(e) = self
                .migrate_step(
                    &m.source_host,
                    MigrateStep::Confirm,
                    instance_spec(&was),
                    false,
                    request_id,
                )
                .await
            {
                // Back to `finished`: the user may confirm again.
                db::migration_advance(&mut &self.db, &m.uuid, "confirming", "finished", None)
                    .await?;
                self.record_event(uuid, request_id, EV_CONFIRM, Some(&m.source_host), Some(&e))
                    .await;
                return Ok(());
            }
        }
        self.allocation_delete(&m.uuid).await;
        let expected = (i.vm_state, i.task_state.clone());
        i.vm_state = if i.power_state == PowerState::Running {
            VmState::Active
        } else {
            VmState::Stopped
        };
        self.resize_save(&mut i, expected).await;
        db::migration_advance(&mut &self.db, &m.uuid, "confirming", "confirmed", None).await?;
        self.record_event(uuid, request_id, EV_CONFIRM, Some(&m.source_host), None)
            .await;
        Ok(())
    }

    /// The conductor's revert: the destination's guest goes, the source's comes back with
    /// the old flavor and allocation.
    pub(crate) async fn conduct_revert(&self, uuid: &str, request_id: &str) -> Result<()> {
        let Some(mut i) = db::instance_get(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        let Some(m) = db::migration_latest(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        if m.status != "reverting" || i.task_state.as_deref() != Some(task_state::RESIZE_REVERTING)
        {
            return Ok(());
        }
        let old: InstanceFlavor = serde_json::from_str(&m.old_flavor)
            .map_err(|_| Fault::internal(format!("migration {}: bad flavor", m.uuid)))?;
        let dest = m.dest_host.clone().unwrap_or_default();
        let power_on = i.power_state == PowerState::Running;
        let mut was = i.clone();
        was.flavor = old.clone();
        let step = async {
            if dest != m.source_host {
                self.migrate_step(
                    &dest,
                    MigrateStep::DropDestination,
                    instance_spec(&i),
                    false,
                    request_id,
                )
                .await?;
            }
            self.migrate_step(
                &m.source_host,
                MigrateStep::FinishRevert,
                instance_spec(&was),
                power_on,
                request_id,
            )
            .await
        };
        let power = match step.await {
            Ok(p) => p,
            Err(e) => {
                db::migration_advance(&mut &self.db, &m.uuid, "reverting", "finished", None)
                    .await?;
                self.record_event(uuid, request_id, EV_REVERT, Some(&dest), Some(&e))
                    .await;
                let expected = (i.vm_state, i.task_state.clone());
                i.task_state = None;
                self.resize_save(&mut i, expected).await;
                return Ok(());
            }
        };
        self.allocation_delete(&i.uuid).await;
        self.move_allocations(&i, &m.uuid, &i.uuid).await?;
        if dest != m.source_host
            && let Err(e) = self.rebind_ports(&i, &m.source_host).await
        {
            tracing::error!(%uuid, error = ?e, "ports not bound back to the resize's source");
        }
        let expected = (i.vm_state, i.task_state.clone());
        i.flavor = old;
        i.host = Some(m.source_host.clone());
        i.node = Some(m.source_host.clone());
        i.availability_zone = Some(self.host_zone(&m.source_host).await?);
        i.vm_state = if power == PowerState::Running {
            VmState::Active
        } else {
            VmState::Stopped
        };
        i.task_state = None;
        i.power_state = power;
        self.resize_save(&mut i, expected).await;
        db::migration_advance(&mut &self.db, &m.uuid, "reverting", "reverted", None).await?;
        self.record_event(uuid, request_id, EV_REVERT, Some(&m.source_host), None)
            .await;
        Ok(())
    }
}
