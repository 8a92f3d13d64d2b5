//! createImage (servers.py `_create_image`, compute API `snapshot`): the API makes a queued
//! image in the image API as the caller, with the server's snapshot properties, and asks
//! the server's agent to upload the guest's disk into it; the server shows
//! `image_snapshot` until the agent reports. A failed upload deletes the image.

use ferro_api_types::compute::{AgentRequest, CONTRACT_VERSION};
use ferro_common::RequestContext;
use ferro_common::time::now_micros;
use serde_json::{Value, json};

use crate::Compute;
use crate::db;
use crate::fault::{Fault, Result};
use crate::model::{Instance, VmState, task_state};
use crate::servers::check_idle;

const EV_SNAPSHOT: &str = "compute_snapshot_instance";

impl Compute {
    /// `createImage`: the new image's id.
    pub async fn server_create_image(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Value,
    ) -> Result<String> {
        let entity = &body["createImage"];
        let mut i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:servers:create_image",
            json!({"project_id": i.project_id}),
        )?;
        check_idle(
            "createImage",
            &i,
            &[
                VmState::Active,
                VmState::Stopped,
                VmState::Paused,
                VmState::Suspended,
            ],
        )?;
        let Some(host) = i.host.clone() else {
            return Err(Fault::conflict(format!("Instance {id} is not ready")));
        };
        let name = entity["name"].as_str().unwrap_or_default().trim();
        let image_id = self
            .queue_snapshot_image(ctx, &i, name, entity["metadata"].as_object())
            .await?;
        let images = self.image_client(&ctx.token)?;
        let expected = (i.vm_state, i.task_state.clone());
        i.task_state = Some(task_state::IMAGE_SNAPSHOT.into());
        i.updated_at = now_micros();
        if !db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await? {
            let _ = images.delete(&format!("/v2/images/{image_id}")).await;
            return Err(Fault::conflict(format!(
                "Cannot 'createImage' instance {id} while it is changing state"
            )));
        }
        self.record_action(ctx, &i, "createImage").await;
        self.cast_agent(
            &host,
            AgentRequest::SnapshotInstance {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
                image_id: image_id.clone(),
                token: ctx.token.clone(),
            },
            &ctx.request_id,
        )
        .await?;
        Ok(image_id)
    }

    /// Makes a queued snapshot image of `i` in the image API as the caller, named `name`,
    /// with the server's snapshot properties and `metadata`: its id. The image API's
    /// refusals keep their class (400, 403/413 as 403).
    pub(crate) async fn queue_snapshot_image(
        &self,
        ctx: &RequestContext,
        i: &Instance,
        name: &str,
        metadata: Option<&serde_json::Map<String, Value>>,
    ) -> Result<String> {
        let images = self.image_client(&ctx.token)?;
        // The base image's properties, when it is still there.
        let base = self.image_get(ctx, &i.image_ref).await.ok();
        // The driver's snapshot is one qcow2 file (as libvirt's, which sets the snapshot's
        // format to what it wrote); the base's other properties carry over, as upstream's
        // inherited image properties (a direct-boot image's kernel_id and ramdisk_id too).
        let mut image = json!({});
        if let (Some(map), Some(props)) = (
            image.as_object_mut(),
            base.as_ref().and_then(Value::as_object),
        ) {
            for (k, v) in props {
                if inherited(k) {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(map) = image.as_object_mut() {
            for (k, v) in [
                ("name", json!(name)),
                ("disk_format", json!("qcow2")),
                ("container_format", json!("bare")),
                ("visibility", json!("private")),
                ("min_disk", json!(i.flavor.root_gb)),
                (
                    "min_ram",
                    json!(
                        base.as_ref()
                            .and_then(|b| b["min_ram"].as_i64())
                            .unwrap_or(0)
                    ),
                ),
                ("instance_uuid", json!(i.uuid)),
                ("image_type", json!("snapshot")),
                ("base_image_ref", json!(i.image_ref)),
                ("user_id", json!(ctx.user_id)),
            ] {
                map.insert(k.into(), v);
            }
        }
        if let Some(map) = image.as_object_mut() {
            for (k, v) in metadata.into_iter().flatten() {
                map.insert(k.clone(), v.clone());
            }
        }
        let r = images
            .post("/v2/images", &image)
            .await
            .map_err(|e| Fault::internal(format!("image API: {e}")))?;
        match r.status {
            201 => {}
            400 => {
                return Err(Fault::bad_request(
                    r.body["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("The image could not be made: {}", r.body)),
                ));
            }
            413 | 403 => {
                return Err(Fault::forbidden(format!(
                    "The image could not be made: {}",
                    r.body
                )));
            }
            s => {
                return Err(Fault::internal(format!(
                    "image API answered {s} creating a snapshot: {}",
                    r.body
                )));
            }
        }
        Ok(r.body["id"].as_str().unwrap_or_default().to_string())
    }

    /// The agent's report on a snapshot: the server leaves `image_snapshot`.
    pub(crate) async fn conduct_snapshot_done(
        &self,
        uuid: &str,
        host: &str,
        error: Option<&str>,
        request_id: &str,
    ) -> Result<()> {
        let Some(mut i) = db::instance_get(&mut &self.db, uuid).await? else {
            return Ok(());
        };
        self.record_event(uuid, request_id, EV_SNAPSHOT, Some(host), error)
            .await;
        if i.task_state.as_deref() != Some(task_state::IMAGE_SNAPSHOT) {
            return Ok(());
        }
        let expected = (i.vm_state, i.task_state.clone());
        i.task_state = None;
        i.updated_at = now_micros();
        db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await?;
        Ok(())
    }
}

/// Whether a base image's attribute carries over to a snapshot of its server: not the
/// image API's own attributes, nor what upstream never inherits (signatures, caching and
/// the image API's reserved `os_glance` namespace).
fn inherited(key: &str) -> bool {
    const SNAPSHOT_OWN: &[&str] = &[
        "image_type",
        "instance_uuid",
        "base_image_ref",
        "user_id",
        "cache_in_nova",
        "bittorrent",
        "owner_specified.openstack.md5",
        "owner_specified.openstack.sha256",
        "owner_specified.openstack.object",
    ];
    !crate::images_proxy::OWN.contains(&key)
        && !SNAPSHOT_OWN.contains(&key)
        && !key.starts_with("img_signature")
        && !key.starts_with("os_glance")
        && key != "certificate_ref"
}
