//! Rebuild (`rebuild` action, servers.py `_rebuild` and compute API `rebuild`): the server
//! keeps its id, host, flavor and addresses and is made anew from an image (the same or
//! another), with a new name, metadata, key, user data or description if given. The API
//! records the changes and `rebuilding`; the conductor has the server's agent rebuild the
//! guest; a server stopped before is stopped after, a failure leaves it in ERROR.

use ferro_api_types::compute::{CONTRACT_VERSION, ConductorRequest, MigrateStep};
use ferro_common::RequestContext;
use ferro_common::time::now_micros;
use serde_json::{Value, json};

use crate::Compute;
use crate::conductor::{fault, instance_spec};
use crate::db;
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, VmState, task_state};
use crate::servers::{check_idle, id_from_href, random_token};

const EV_REBUILD: &str = "compute_rebuild_instance";

impl Compute {
    /// `rebuild`: validates the image and the changes, records them with `rebuilding` and
    /// casts the rebuild; the server as it is now and its new admin password.
    pub async fn server_rebuild(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        id: &str,
        body: &Value,
    ) -> Result<(Instance, String)> {
        let rb = &body["rebuild"];
        let mut i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:servers:rebuild",
            json!({"project_id": i.project_id, "user_id": i.user_id}),
        )?;
        self.check_lock(ctx, &i)?;
        check_idle(
            "rebuild",
            &i,
            &[VmState::Active, VmState::Stopped, VmState::Error],
        )?;
        if i.host.is_none() {
            return Err(Fault::conflict(format!("Instance {id} is not ready")));
        }
        self.links()?;
        let image_id = id_from_href(rb["imageRef"].as_str().unwrap_or_default());
        let image = match self.image_get(ctx, &image_id).await {
            Ok(image) => image,
            Err(e) if e.status() == axum::http::StatusCode::BAD_REQUEST => {
                return Err(Fault::bad_request("Cannot find image for rebuild"));
            }
            Err(e) => return Err(e),
        };
        if i.flavor.memory_mb < image["min_ram"].as_i64().unwrap_or(0) {
            return Err(Fault::bad_request(
                "Flavor's memory is too small for requested image.",
            ));
        }
        if i.flavor.root_gb > 0 {
            let size_gb = (image["size"].as_i64().unwrap_or(0) + (1 << 30) - 1) >> 30;
            if i.flavor.root_gb < image["min_disk"].as_i64().unwrap_or(0)
                || i.flavor.root_gb < size_gb
            {
                return Err(Fault::bad_request(
                    "Flavor's disk is too small for requested image.",
                ));
            }
        }
        if let Some(name) = rb["name"].as_str() {
            i.display_name = name.to_string();
        }
        if let Some(m) = rb["metadata"].as_object() {
            self.check_metadata_quota(&i.project_id, m.len()).await?;
            i.metadata = m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
        }
        if v.at_least(2, 19)
            && let Some(d) = rb.as_object().and_then(|o| o.get("description"))
        {
            i.display_description = d.as_str().map(str::to_string);
        }
        if v.at_least(2, 54)
            && let Some(k) = rb.as_object().and_then(|o| o.get("key_name"))
        {
            match k.as_str() {
                None => {
                    i.key_name = None;
                    i.key_data = None;
                }
                Some(name) => {
                    let key = db::keypair_get(&mut &self.db, &i.user_id, name)
                        .await?
                        .ok_or_else(|| Fault::bad_request("Invalid key_name provided."))?;
                    i.key_name = Some(key.name);
                    i.key_data = Some(key.public_key);
                }
            }
        }
        if v.at_least(2, 57)
            && let Some(u) = rb.as_object().and_then(|o| o.get("user_data"))
        {
            i.user_data = u.as_str().map(str::to_string);
        }
        if v.at_least(2, 90)
            && let Some(h) = rb["hostname"].as_str()
        {
            i.hostname = h.to_string();
        }
        for (key, field) in [
            ("accessIPv4", &mut i.access_ip_v4),
            ("accessIPv6", &mut i.access_ip_v6),
        ] {
            if let Some(a) = rb[key].as_str() {
                *field = Some(a.to_string());
            }
        }
        i.image_ref = image_id;
        let expected = (i.vm_state, i.task_state.clone());
        i.task_state = Some(task_state::REBUILDING.into());
        i.updated_at = now_micros();
        if !db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await? {
            return Err(Fault::conflict(format!(
                "Cannot 'rebuild' instance {id} while it is changing state"
            )));
        }
        self.record_action(ctx, &i, "rebuild").await;
        self.cast_conductor(
            ConductorRequest::RebuildInstance {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
            },
            &ctx.request_id,
        )
        .await?;
        let password = rb["adminPass"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| random_token(12));
        Ok((i, password))
    }

    /// The conductor's rebuild: the agent makes the guest anew on its host.
    pub(crate) async fn conduct_rebuild(&self, uuid: &str, request_id: &str) -> Result<()> {
        let Some(mut i) = db::instance_get(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        if i.task_state.as_deref() != Some(task_state::REBUILDING) {
            return Ok(());
        }
        let Some(host) = i.host.clone() else {
            return Ok(());
        };
        // As upstream: a stopped server is rebuilt and left stopped; others run after.
        let stopped = i.vm_state == VmState::Stopped;
        let req = ferro_api_types::compute::AgentRequest::Migrate {
            version: CONTRACT_VERSION.into(),
            step: MigrateStep::Rebuild,
            instance: instance_spec(&i),
            power_on: !stopped,
        };
        let outcome = self.call_agent(&host, req, request_id, uuid).await;
        let expected = (i.vm_state, i.task_state.clone());
        i.task_state = None;
        match outcome {
            Ok(answer) => {
                i.power_state = crate::shelve::power_of(&answer);
                i.vm_state = if stopped {
                    VmState::Stopped
                } else {
                    VmState::Active
                };
                i.launched_at = Some(now_micros());
                i.fault = None;
                self.record_event(uuid, request_id, EV_REBUILD, Some(&host), None)
                    .await;
            }
            Err(e) => {
                let reason = e.detail();
                i.vm_state = VmState::Error;
                i.fault = Some(fault(500, reason.clone(), String::new()));
                self.record_event(uuid, request_id, EV_REBUILD, Some(&host), Some(&reason))
                    .await;
            }
        }
        i.updated_at = now_micros();
        if let Err(e) =
            db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await
        {
            tracing::error!(%uuid, error = %e, "rebuild outcome not saved");
        }
        Ok(())
    }
}
