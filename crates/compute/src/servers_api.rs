//! The servers and hypervisors routes: thin handlers that validate against the schema in
//! force, delegate to [`Compute`] ([`crate::servers`]) and shape the answer for the
//! microversion (views/servers.py, views/hypervisors.py).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferro_api_types::compute::PowerAction;
use ferro_common::RequestContext;
use ferro_http::Auth;
use serde_json::{Value, json};

use crate::Compute;
use crate::api::{Body, Params, S, action_name, empty, links, next_link, ok, param};
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, ServerView};
use crate::schemas;
use crate::servers::{ServerAction, ServerQuery};
use crate::validation::{validate_body, validate_query};

/// The servers and hypervisors routes, merged under `/v2.1`.
pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route("/servers", get(server_list).post(server_create))
        .route("/servers/detail", get(server_list_detail))
        .route(
            "/servers/{id}",
            get(server_show).put(server_update).delete(server_delete),
        )
        .route("/servers/{id}/action", post(server_action))
        .route("/os-hypervisors", get(hypervisor_list))
        .route("/os-hypervisors/detail", get(hypervisor_list_detail))
        .route("/os-hypervisors/statistics", get(hypervisor_statistics))
}

fn bookmark(base: &str, collection: &str, id: &str) -> Value {
    json!([{"rel": "bookmark", "href": format!("{base}/{collection}/{id}")}])
}

/// The full server body at `v` for `ctx`.
fn server_body(
    s: &Compute,
    ctx: &RequestContext,
    v: ApiVersion,
    i: &Instance,
    show: bool,
) -> Value {
    let base = &s.config.public_url;
    let view = ServerView {
        version: v,
        extended_attributes: s.may_see_extended_attributes(ctx, i),
        is_admin: s.is_admin(ctx),
        extra_specs: s.may_see_server_extra_specs(ctx),
        show,
    };
    i.detail(
        view,
        links(base, "servers", &i.uuid),
        bookmark(base, "flavors", &i.flavor.flavorid),
        bookmark(base, "images", &i.image_ref),
    )
}

async fn server_create(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::server_create(v), &b)?;
    let (created, admin_pass) = s.server_create(&ctx, v, &b).await?;
    let first = created
        .first()
        .ok_or_else(|| Fault::internal("create made no instance"))?;
    if b["server"]["return_reservation_id"]
        .as_bool()
        .unwrap_or(false)
        || crate::manager::parse_bool_strict(&b["server"]["return_reservation_id"]) == Some(true)
    {
        return ok(
            StatusCode::ACCEPTED,
            json!({"reservation_id": first.reservation_id}),
        );
    }
    let base = &s.config.public_url;
    let security_groups = b["server"]
        .get("security_groups")
        .cloned()
        .unwrap_or_else(|| json!([{"name": "default"}]));
    let body = json!({"server": {
        "id": first.uuid,
        "links": links(base, "servers", &first.uuid),
        "OS-DCF:diskConfig": if first.auto_disk_config { "AUTO" } else { "MANUAL" },
        "security_groups": security_groups,
        "adminPass": admin_pass,
    }});
    let location = format!("{base}/v2.1/servers/{}", first.uuid);
    Ok((
        StatusCode::ACCEPTED,
        [(LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}

fn server_query(s: &Compute, ctx: &RequestContext, p: &[(String, String)]) -> Result<ServerQuery> {
    validate_query(&schemas::server_list_query(), p)?;
    let changes_since = match param(p, "changes-since") {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|n| n.and_utc().fixed_offset())
                })
                .map_err(|_| {
                    Fault::bad_request(format!(
                        "Invalid input for query parameters changes-since. Value: {t}. \
                         '{t}' is not a 'date-time'"
                    ))
                })?
                .timestamp_micros(),
        ),
        None => None,
    };
    let all_tenants = match param(p, "all_tenants") {
        None => false,
        Some("") => true,
        Some(v) => crate::manager::parse_bool_strict(&json!(v)).ok_or_else(|| {
            Fault::bad_request(format!(
                "Invalid input for query parameters all_tenants. Value: {v}."
            ))
        })?,
    };
    let _ = (s, ctx);
    Ok(ServerQuery {
        name: param(p, "name").map(str::to_string),
        status: param(p, "status").map(str::to_string),
        flavor: param(p, "flavor").map(str::to_string),
        image: param(p, "image").map(str::to_string),
        host: param(p, "host").map(str::to_string),
        changes_since,
        all_tenants,
        project_id: param(p, "project_id")
            .or_else(|| param(p, "tenant_id"))
            .map(str::to_string),
        limit: param(p, "limit").and_then(|l| l.parse().ok()),
        marker: param(p, "marker").map(str::to_string),
    })
}

async fn server_list_common(
    s: &Compute,
    ctx: &RequestContext,
    v: ApiVersion,
    p: &[(String, String)],
    detail: bool,
) -> Result<Response> {
    let q = server_query(s, ctx, p)?;
    let list = s.server_list(ctx, detail, &q).await?;
    let base = &s.config.public_url;
    let items: Vec<Value> = list
        .iter()
        .map(|i| {
            if detail {
                server_body(s, ctx, v, i, false)
            } else {
                i.basic(links(base, "servers", &i.uuid))
            }
        })
        .collect();
    let mut body = json!({ "servers": items });
    let collection = if detail { "servers/detail" } else { "servers" };
    if let Some(l) = next_link(
        base,
        collection,
        p,
        list.len(),
        list.last().map(|i| i.uuid.as_str()),
    ) {
        body["servers_links"] = l;
    }
    ok(StatusCode::OK, body)
}

async fn server_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    server_list_common(&s, &ctx, v, &p, false).await
}

async fn server_list_detail(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    server_list_common(&s, &ctx, v, &p, true).await
}

async fn server_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    let i = s.server_get(&ctx, &id).await?;
    let mut body = server_body(&s, &ctx, v, &i, true);
    if v.at_least(2, 71) {
        body["server_groups"] = json!(s.groups_of_instance(&i.uuid).await?);
    }
    ok(StatusCode::OK, json!({ "server": body }))
}

async fn server_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::server_update(v), &b)?;
    let srv = &b["server"];
    let description = srv
        .as_object()
        .and_then(|m| m.get("description"))
        .map(Value::as_str);
    let i = s
        .server_update(
            &ctx,
            &id,
            srv["name"].as_str(),
            description,
            srv["hostname"].as_str(),
        )
        .await?;
    ok(
        StatusCode::OK,
        json!({"server": server_body(&s, &ctx, v, &i, true)}),
    )
}

async fn server_delete(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> Result<Response> {
    s.server_delete(&ctx, &id).await?;
    empty(StatusCode::NO_CONTENT)
}

async fn server_action(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    let name = action_name(&b)?;
    if name == "os-getConsoleOutput" {
        validate_body(&schemas::console_output_action(), &b)?;
        let length = match &b[&name]["length"] {
            Value::Number(n) => n.as_i64(),
            Value::String(t) => t.parse().ok(),
            _ => None,
        };
        let output = s.console_output(&ctx, &id, length).await?;
        return ok(StatusCode::OK, json!({ "output": output }));
    }
    match name.as_str() {
        "resize" => {
            validate_body(&schemas::resize_action(), &b)?;
            let flavor = match &b["resize"]["flavorRef"] {
                Value::String(f) => crate::servers::id_from_href(f),
                other => other.to_string(),
            };
            s.server_resize(&ctx, &id, &flavor).await?;
            return empty(StatusCode::ACCEPTED);
        }
        "rebuild" => {
            validate_body(&schemas::rebuild_action(v), &b)?;
            let (i, password) = s.server_rebuild(&ctx, v, &id, &b).await?;
            let mut body = server_body(&s, &ctx, v, &i, true);
            body["adminPass"] = json!(password);
            return ok(StatusCode::ACCEPTED, json!({ "server": body }));
        }
        "createImage" => {
            validate_body(&schemas::create_image_action(), &b)?;
            let image = s.server_create_image(&ctx, &id, &b).await?;
            if v.at_least(2, 45) {
                return ok(StatusCode::ACCEPTED, json!({ "image_id": image }));
            }
            let location = format!("{}/images/{image}", s.config.public_url);
            return Ok((StatusCode::ACCEPTED, [(LOCATION, location)]).into_response());
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            let group = b[&name]["name"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_string();
            if group.is_empty() {
                return Err(Fault::bad_request("Security group name cannot be empty"));
            }
            s.server_security_group(&ctx, &id, &group, name == "addSecurityGroup")
                .await?;
            return empty(StatusCode::ACCEPTED);
        }
        "confirmResize" => {
            s.server_finish_resize(&ctx, &id, true).await?;
            return empty(StatusCode::NO_CONTENT);
        }
        "revertResize" => {
            s.server_finish_resize(&ctx, &id, false).await?;
            return empty(StatusCode::ACCEPTED);
        }
        _ => {}
    }
    let action = match name.as_str() {
        "os-stop" => ServerAction::Power(PowerAction::Stop),
        "os-start" => ServerAction::Power(PowerAction::Start),
        "pause" => ServerAction::Power(PowerAction::Pause),
        "unpause" => ServerAction::Power(PowerAction::Unpause),
        "suspend" => ServerAction::Power(PowerAction::Suspend),
        "resume" => ServerAction::Power(PowerAction::Resume),
        "reboot" => {
            validate_body(&schemas::reboot_action(), &b)?;
            let hard = b["reboot"]["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("hard"));
            ServerAction::Power(if hard {
                PowerAction::RebootHard
            } else {
                PowerAction::RebootSoft
            })
        }
        "lock" => {
            validate_body(&schemas::lock_action(v), &b)?;
            ServerAction::Lock {
                reason: if v.at_least(2, 73) {
                    b["lock"]["locked_reason"].as_str().map(str::to_string)
                } else {
                    None
                },
            }
        }
        "unlock" => ServerAction::Unlock,
        other => {
            // TODO-compat: resize, rebuild, createImage, console output and the other
            // actions arrive with later slices.
            return Err(Fault::bad_request(format!(
                "There is no such action: {other}"
            )));
        }
    };
    s.server_action(&ctx, &id, action).await?;
    empty(StatusCode::ACCEPTED)
}

// ---- hypervisors ----------------------------------------------------------------------------

async fn hypervisors(
    s: &Compute,
    ctx: &RequestContext,
    rule: &str,
) -> Result<Vec<(crate::db::ComputeNode, Value, [i64; 4])>> {
    s.authorize(ctx, rule, json!({}))?;
    let nodes = crate::db::node_list(&mut &s.db).await?;
    let services = crate::db::service_list(&mut &s.db).await?;
    let instances = crate::db::instance_list(&mut &s.db, None).await?;
    let now = ferro_common::time::now_micros();
    Ok(nodes
        .into_iter()
        .map(|n| {
            let svc = services
                .iter()
                .find(|x| x.host == n.host && x.binary == crate::conductor::COMPUTE_BINARY);
            let state = json!({
                "state": if svc.is_some_and(|x| x.is_up(now)) { "up" } else { "down" },
                "status": if svc.is_some_and(|x| x.disabled) { "disabled" } else { "enabled" },
                "service_id": svc.map(|x| x.id),
                "service_uuid": svc.map(|x| x.uuid.clone()),
                "disabled_reason": svc.and_then(|x| x.disabled_reason.clone()),
            });
            let mine: Vec<&Instance> = instances
                .iter()
                .filter(|i| i.node.as_deref() == Some(n.host.as_str()))
                .collect();
            let used = [
                mine.iter().map(|i| i.flavor.vcpus).sum(),
                mine.iter().map(|i| i.flavor.memory_mb).sum(),
                mine.iter()
                    .map(|i| i.flavor.root_gb + i.flavor.ephemeral_gb)
                    .sum(),
                i64::try_from(mine.len()).unwrap_or(i64::MAX),
            ];
            (n, state, used)
        })
        .collect())
}

fn hypervisor_body(
    v: ApiVersion,
    n: &crate::db::ComputeNode,
    st: &Value,
    used: [i64; 4],
    detail: bool,
) -> Value {
    let id = if v.at_least(2, 53) {
        json!(n.uuid)
    } else {
        json!(n.id)
    };
    let mut h = json!({"id": id, "hypervisor_hostname": n.host, "state": st["state"],
        "status": st["status"]});
    if detail {
        h["hypervisor_type"] = json!(n.hypervisor_type);
        h["hypervisor_version"] = json!(n.hypervisor_version);
        h["host_ip"] = json!("127.0.0.1");
        let service_id = if v.at_least(2, 53) {
            st["service_uuid"].clone()
        } else {
            st["service_id"].clone()
        };
        h["service"] = json!({"host": n.host, "id": service_id,
            "disabled_reason": st["disabled_reason"]});
        if !v.at_least(2, 88) {
            let [vcpus_used, ram_used, disk_used, running] = used;
            h["vcpus"] = json!(n.vcpus);
            h["memory_mb"] = json!(n.memory_mb);
            h["local_gb"] = json!(n.local_gb);
            h["vcpus_used"] = json!(vcpus_used);
            h["memory_mb_used"] = json!(ram_used);
            h["local_gb_used"] = json!(disk_used);
            h["free_ram_mb"] = json!(n.memory_mb - ram_used);
            h["free_disk_gb"] = json!(n.local_gb - disk_used);
            h["current_workload"] = json!(0);
            h["running_vms"] = json!(running);
            h["disk_available_least"] = json!(n.local_gb - disk_used);
            h["cpu_info"] = if v.at_least(2, 28) {
                json!({})
            } else {
                json!("{}")
            };
        } else {
            h["uptime"] = Value::Null;
        }
    }
    h
}

async fn hypervisor_list(State(s): S, Auth(ctx): Auth, v: ApiVersion) -> Result<Response> {
    let list = hypervisors(&s, &ctx, "os_compute_api:os-hypervisors:list").await?;
    let items: Vec<Value> = list
        .iter()
        .map(|(n, st, u)| hypervisor_body(v, n, st, *u, false))
        .collect();
    ok(StatusCode::OK, json!({ "hypervisors": items }))
}

async fn hypervisor_list_detail(State(s): S, Auth(ctx): Auth, v: ApiVersion) -> Result<Response> {
    let list = hypervisors(&s, &ctx, "os_compute_api:os-hypervisors:list-detail").await?;
    let items: Vec<Value> = list
        .iter()
        .map(|(n, st, u)| hypervisor_body(v, n, st, *u, true))
        .collect();
    ok(StatusCode::OK, json!({ "hypervisors": items }))
}

async fn hypervisor_statistics(State(s): S, Auth(ctx): Auth, v: ApiVersion) -> Result<Response> {
    if v.at_least(2, 88) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let list = hypervisors(&s, &ctx, "os_compute_api:os-hypervisors:statistics").await?;
    let mut t: BTreeMap<&str, i64> = BTreeMap::new();
    for (n, _, [vc, ram, disk, running]) in &list {
        *t.entry("count").or_default() += 1;
        *t.entry("vcpus").or_default() += n.vcpus;
        *t.entry("memory_mb").or_default() += n.memory_mb;
        *t.entry("local_gb").or_default() += n.local_gb;
        *t.entry("vcpus_used").or_default() += vc;
        *t.entry("memory_mb_used").or_default() += ram;
        *t.entry("local_gb_used").or_default() += disk;
        *t.entry("free_ram_mb").or_default() += n.memory_mb - ram;
        *t.entry("free_disk_gb").or_default() += n.local_gb - disk;
        *t.entry("running_vms").or_default() += running;
        *t.entry("disk_available_least").or_default() += n.local_gb - disk;
    }
    for k in [
        "count",
        "vcpus",
        "memory_mb",
        "local_gb",
        "vcpus_used",
        "memory_mb_used",
        "local_gb_used",
        "free_ram_mb",
        "free_disk_gb",
        "current_workload",
        "running_vms",
        "disk_available_least",
    ] {
        t.entry(k).or_default();
    }
    ok(StatusCode::OK, json!({ "hypervisor_statistics": t }))
}
