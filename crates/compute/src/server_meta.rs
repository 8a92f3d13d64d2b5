//! A server's metadata (`/servers/{id}/metadata`) and tags (`/servers/{id}/tags`, 2.26+),
//! as nova/api/openstack/compute/server_metadata.py and server_tags.py: both live on the
//! instance row and change only while the server is at rest (upstream's
//! `check_instance_state`), metadata also not while it is locked.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferro_common::RequestContext;
use ferro_http::Auth;
use serde_json::{Value, json};

use crate::Compute;
use crate::api::{Body, S, empty, ok};
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, VmState};
use crate::quota::Resource;
use crate::schemas;
use crate::validation::validate_body;

/// Upstream's `MAX_TAG_COUNT`.
pub const MAX_TAGS: usize = 50;

/// The states in which metadata and tags may change.
const AT_REST: &[VmState] = &[
    VmState::Active,
    VmState::Paused,
    VmState::Suspended,
    VmState::Stopped,
];

pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route(
            "/servers/{id}/metadata",
            get(metadata_index)
                .post(metadata_create)
                .put(metadata_update_all),
        )
        .route(
            "/servers/{id}/metadata/{key}",
            get(metadata_show)
                .put(metadata_update)
                .delete(metadata_delete),
        )
        .route(
            "/servers/{id}/tags",
            get(tags_index).put(tags_update_all).delete(tags_delete_all),
        )
        .route(
            "/servers/{id}/tags/{tag}",
            get(tag_show).put(tag_update).delete(tag_delete),
        )
}

/// How a metadata write combines with what the server has.
enum MetadataWrite {
    /// `POST .../metadata` and `PUT .../metadata/{key}`: add or replace these keys.
    Merge(BTreeMap<String, String>),
    /// `PUT .../metadata`: these keys and no others.
    Replace(BTreeMap<String, String>),
    /// `DELETE .../metadata/{key}`.
    Remove(String),
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

impl Compute {
    /// The server `id` the caller may see, after the policy `rule` on its project.
    async fn server_for(&self, ctx: &RequestContext, id: &str, rule: &str) -> Result<Instance> {
        let i = self.instance_visible(ctx, id).await?;
        self.authorize(ctx, rule, json!({"project_id": i.project_id}))?;
        Ok(i)
    }

    /// 409 unless `i` is at rest (and, when `lock` is asked, unlocked).
    fn check_at_rest(
        &self,
        ctx: &RequestContext,
        i: &Instance,
        action: &str,
        lock: bool,
    ) -> Result<()> {
        if lock {
            self.check_lock(ctx, i)?;
        }
        if !AT_REST.contains(&i.vm_state) {
            return Err(crate::servers::invalid_state(
                action,
                &i.uuid,
                "vm_state",
                i.vm_state.as_str(),
            ));
        }
        if lock && i.task_state.is_some() {
            return Err(crate::servers::invalid_state(
                action,
                &i.uuid,
                "task_state",
                i.task_state.as_deref().unwrap_or("None"),
            ));
        }
        Ok(())
    }

    /// 403 when `items` metadata keys exceed the project's `metadata_items` quota.
    pub(crate) async fn check_metadata_quota(&self, project: &str, items: usize) -> Result<()> {
        let allowed = self
            .quotas
            .project(&mut &self.db, project)
            .await?
            .get(&Resource::MetadataItems)
            .copied()
            .unwrap_or(-1);
        if allowed >= 0 && i64::try_from(items).unwrap_or(i64::MAX) > allowed {
            return Err(Fault::forbidden(format!(
                "Maximum number of metadata items exceeds {allowed}"
            )));
        }
        Ok(())
    }

    /// Applies a metadata write and returns the server's metadata after it.
    async fn metadata_write(
        &self,
        ctx: &RequestContext,
        id: &str,
        rule: &str,
        write: MetadataWrite,
    ) -> Result<BTreeMap<String, String>> {
        let mut i = self.server_for(ctx, id, rule).await?;
        let action = match write {
            MetadataWrite::Remove(ref key) => {
                if !i.metadata.contains_key(key) {
                    return Err(Fault::not_found("Metadata item was not found"));
                }
                "delete metadata"
            }
            _ => "update metadata",
        };
        self.check_at_rest(ctx, &i, action, true)?;
        match write {
            MetadataWrite::Merge(m) => i.metadata.extend(m),
            MetadataWrite::Replace(m) => i.metadata = m,
            MetadataWrite::Remove(key) => {
                i.metadata.remove(&key);
            }
        }
        self.check_metadata_quota(&i.project_id, i.metadata.len())
            .await?;
        self.save_unchanged_state(&mut i, action).await?;
        Ok(i.metadata)
    }

    /// Changes a server's tags with `change`, which may refuse with a fault.
    async fn tags_write(
        &self,
        ctx: &RequestContext,
        id: &str,
        rule: &str,
        action: &str,
        change: impl FnOnce(&mut Vec<String>) -> Result<()>,
    ) -> Result<Vec<String>> {
        let mut i = self.server_for(ctx, id, rule).await?;
        self.check_at_rest(ctx, &i, action, false)?;
        change(&mut i.tags)?;
        self.save_unchanged_state(&mut i, action).await?;
        Ok(i.tags)
    }

    /// Saves `i` keeping its vm and task state: 409 if another request changed them meanwhile.
    async fn save_unchanged_state(&self, i: &mut Instance, action: &str) -> Result<()> {
        let expected = (i.vm_state, i.task_state.clone());
        i.updated_at = ferro_common::time::now_micros();
        if crate::db::instance_save(&mut &self.db, i, (expected.0, expected.1.as_deref())).await? {
            Ok(())
        } else {
            Err(Fault::conflict(format!(
                "Cannot '{action}' instance {} while it is changing state",
                i.uuid
            )))
        }
    }
}

/// Validates a tag given in the URL, as upstream words the refusal.
fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.chars().count() > 60 || tag.contains(['/', ',']) {
        return Err(Fault::bad_request(format!(
            "Tag '{tag}' is invalid. It must be a non empty string without characters '/' and \
             ','. Validation error message: '{tag}' does not match '^[^,/]*$'"
        )));
    }
    Ok(())
}

fn tags_version(v: ApiVersion) -> Result<()> {
    if v.at_least(2, 26) {
        Ok(())
    } else {
        Err(Fault::not_found("The resource could not be found."))
    }
}

const MD_INDEX: &str = "os_compute_api:server-metadata:index";
const MD_SHOW: &str = "os_compute_api:server-metadata:show";
const MD_CREATE: &str = "os_compute_api:server-metadata:create";
const MD_UPDATE: &str = "os_compute_api:server-metadata:update";
const MD_UPDATE_ALL: &str = "os_compute_api:server-metadata:update_all";
const MD_DELETE: &str = "os_compute_api:server-metadata:delete";

async fn metadata_index(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> Result<Response> {
    let i = s.server_for(&ctx, &id, MD_INDEX).await?;
    ok(StatusCode::OK, json!({"metadata": i.metadata}))
}

async fn metadata_show(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    let i = s.server_for(&ctx, &id, MD_SHOW).await?;
    let value = i
        .metadata
        .get(&key)
        .ok_or_else(|| Fault::not_found("Metadata item was not found"))?;
    ok(StatusCode::OK, json!({"meta": {key: value}}))
}

async fn metadata_create(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::server_metadata("metadata", false), &b)?;
    let write = MetadataWrite::Merge(string_map(&b["metadata"]));
    let m = s.metadata_write(&ctx, &id, MD_CREATE, write).await?;
    ok(StatusCode::OK, json!({ "metadata": m }))
}

async fn metadata_update_all(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::server_metadata("metadata", false), &b)?;
    let write = MetadataWrite::Replace(string_map(&b["metadata"]));
    let m = s.metadata_write(&ctx, &id, MD_UPDATE_ALL, write).await?;
    ok(StatusCode::OK, json!({ "metadata": m }))
}

async fn metadata_update(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, key)): Path<(String, String)>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::server_metadata("meta", true), &b)?;
    let item = string_map(&b["meta"]);
    if !item.contains_key(&key) {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    }
    s.metadata_write(&ctx, &id, MD_UPDATE, MetadataWrite::Merge(item.clone()))
        .await?;
    ok(StatusCode::OK, json!({ "meta": item }))
}

async fn metadata_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    s.metadata_write(&ctx, &id, MD_DELETE, MetadataWrite::Remove(key))
        .await?;
    empty(StatusCode::NO_CONTENT)
}

const TAG_INDEX: &str = "os_compute_api:os-server-tags:index";
const TAG_SHOW: &str = "os_compute_api:os-server-tags:show";
const TAG_UPDATE: &str = "os_compute_api:os-server-tags:update";
const TAG_UPDATE_ALL: &str = "os_compute_api:os-server-tags:update_all";
const TAG_DELETE: &str = "os_compute_api:os-server-tags:delete";
const TAG_DELETE_ALL: &str = "os_compute_api:os-server-tags:delete_all";

async fn tags_index(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    tags_version(v)?;
    let i = s.server_for(&ctx, &id, TAG_INDEX).await?;
    ok(StatusCode::OK, json!({"tags": i.tags}))
}

async fn tag_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response> {
    tags_version(v)?;
    let i = s.server_for(&ctx, &id, TAG_SHOW).await?;
    if !i.tags.contains(&tag) {
        return Err(Fault::not_found(format!("Server {id} has no tag '{tag}'")));
    }
    empty(StatusCode::NO_CONTENT)
}

async fn tags_update_all(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    tags_version(v)?;
    validate_body(&schemas::server_tags(), &b)?;
    let mut wanted: Vec<String> = Vec::new();
    for t in b["tags"].as_array().into_iter().flatten() {
        let t = t.as_str().unwrap_or_default().to_string();
        if !wanted.contains(&t) {
            wanted.push(t);
        }
    }
    let tags = s
        .tags_write(&ctx, &id, TAG_UPDATE_ALL, "update tags", |tags| {
            *tags = wanted;
            Ok(())
        })
        .await?;
    ok(StatusCode::OK, json!({ "tags": tags }))
}

async fn tag_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response> {
    tags_version(v)?;
    let mut existed = false;
    s.tags_write(&ctx, &id, TAG_UPDATE, "update tag", |tags| {
        check_tag(&tag)?;
        if tags.len() >= MAX_TAGS {
            return Err(Fault::bad_request(format!(
                "The number of tags exceeded the per-server limit {MAX_TAGS}"
            )));
        }
        existed = tags.contains(&tag);
        if !existed {
            tags.push(tag.clone());
        }
        Ok(())
    })
    .await?;
    if existed {
        return empty(StatusCode::NO_CONTENT);
    }
    let location = format!(
        "{}/v2.1/servers/{id}/tags/{}",
        s.config.public_url,
        crate::manager::percent_encode(&tag)
    );
    Ok((StatusCode::CREATED, [(LOCATION, location)]).into_response())
}

async fn tag_delete(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response> {
    tags_version(v)?;
    s.tags_write(&ctx, &id, TAG_DELETE, "delete tag", |tags| {
        let before = tags.len();
        tags.retain(|t| t != &tag);
        if tags.len() == before {
            return Err(Fault::not_found(format!(
                "Instance {id} has no tag '{tag}'"
            )));
        }
        Ok(())
    })
    .await?;
    empty(StatusCode::NO_CONTENT)
}

async fn tags_delete_all(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    tags_version(v)?;
    s.tags_write(&ctx, &id, TAG_DELETE_ALL, "delete tags", |tags| {
        tags.clear();
        Ok(())
    })
    .await?;
    empty(StatusCode::NO_CONTENT)
}
