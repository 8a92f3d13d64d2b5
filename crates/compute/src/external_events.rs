//! `POST /os-server-external-events` (server_external_events.py): other services tell Nova
//! about its servers — Neutron that a port was plugged (`network-vif-plugged`, the port id
//! as `tag`), unplugged, deleted or changed. Each event is answered per item (200, or 404
//! for an unknown server, 422 for one no host runs, 400 for a missing required tag) and
//! the accepted ones go to the agent of the server's host.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use ferro_api_types::compute::{AgentRequest, CONTRACT_VERSION};
use ferro_http::Auth;
use serde_json::{Value, json};

use crate::Compute;
use crate::api::{Body, S, ok};
use crate::db;
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::validation::validate_body;

pub fn routes() -> Router<Arc<Compute>> {
    Router::new().route("/os-server-external-events", post(create))
}

/// The event names a microversion accepts (upstream's `EVENT_NAMES` by version).
fn names(v: ApiVersion) -> Vec<&'static str> {
    let mut n = vec![
        "network-changed",
        "network-vif-plugged",
        "network-vif-unplugged",
        "network-vif-deleted",
    ];
    for (name, (major, minor)) in [
        ("volume-extended", (2, 51)),
        ("power-update", (2, 76)),
        ("accelerator-request-bound", (2, 82)),
        ("volume-reimaged", (2, 93)),
    ] {
        if v.at_least(major, minor) {
            n.push(name);
        }
    }
    n
}

fn schema(v: ApiVersion) -> Value {
    json!({"type": "object",
        "properties": {"events": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "properties": {
                "server_uuid": {"type": "string", "format": "uuid"},
                "name": {"type": "string", "enum": names(v)},
                "status": {"type": "string", "enum": ["failed", "completed", "in-progress"]},
                "tag": {"type": "string", "maxLength": 255}},
            "required": ["server_uuid", "name"], "additionalProperties": false}}},
        "required": ["events"], "additionalProperties": false})
}

/// Events whose `tag` names what they are about and cannot be handled without it.
fn needs_tag(name: &str) -> bool {
    matches!(name, "volume-extended" | "volume-reimaged")
}

async fn create(State(s): S, Auth(ctx): Auth, v: ApiVersion, Body(b): Body) -> Result<Response> {
    s.authorize(
        &ctx,
        "os_compute_api:os-server-external-events:create",
        json!({}),
    )?;
    validate_body(&schema(v), &b)?;
    let mut out = Vec::new();
    let mut accepted = Vec::new();
    let mut status = StatusCode::OK;
    for e in b["events"].as_array().into_iter().flatten() {
        let mut item = e.clone();
        let uuid = e["server_uuid"].as_str().unwrap_or_default().to_string();
        let name = e["name"].as_str().unwrap_or_default().to_string();
        let tag = e["tag"].as_str().map(str::to_string);
        let host = db::instance_get(&mut &s.db, &uuid)
            .await?
            .map(|i| i.host.unwrap_or_default());
        let code = match host {
            None => 404,
            Some(_) if needs_tag(&name) && tag.is_none() => 400,
            Some(h) if h.is_empty() => 422,
            Some(h) => {
                let st = e["status"].as_str().unwrap_or("completed").to_string();
                accepted.push((h, uuid, name, tag, st));
                200
            }
        };
        item["code"] = json!(code);
        item["status"] = json!(if code == 200 {
            e["status"].as_str().unwrap_or("completed")
        } else {
            "failed"
        });
        if code != 200 {
            status = StatusCode::MULTI_STATUS;
        }
        out.push(item);
    }
    if accepted.is_empty() {
        return Err(Fault::not_found("No instances found for any event"));
    }
    for (host, uuid, name, tag, st) in accepted {
        tracing::info!(%uuid, %name, tag = ?tag, %host, "instance event");
        let req = AgentRequest::ExternalEvent {
            version: CONTRACT_VERSION.into(),
            uuid,
            name,
            tag,
            status: st,
        };
        s.cast_agent(&host, req, &ctx.request_id).await?;
    }
    ok(status, json!({ "events": out }))
}
