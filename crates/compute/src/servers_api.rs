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
        .route("/os-hypervisors/{id}", get(hypervisor_show))
        .route("/os-hypervisors/{id}/uptime", get(hypervisor_uptime))
        .route("/os-hypervisors/{id}/search", get(hypervisor_search))
        .route("/os-hypervisors/{id}/servers", get(hypervisor_servers))
        .route("/servers/{id}/ips", get(server_ips))
        .route("/servers/{id}/ips/{network}", get(server_ips_show))
        .route(
            "/servers/{id}/os-server-password",
            get(server_password_show).delete(server_password_clear),
        )
        .route("/servers/{id}/diagnostics", get(server_diagnostics))
        .route(
            "/servers/{id}/os-security-groups",
            get(server_security_groups),
        )
}

/// Adds `security_groups` to the server bodies of `list` (show and detail views,
/// views/servers.py `_add_security_grps`): the names of its ports' groups, only on a server
/// that has any. The network API failing leaves them out rather than failing the read.
async fn add_security_groups(
    s: &Compute,
    ctx: &RequestContext,
    list: &[&Instance],
    bodies: &mut [Value],
) {
    match s.servers_security_groups(ctx, list, false).await {
        Ok(mut groups) => {
            for body in bodies {
                let id = body["id"].as_str().unwrap_or_default().to_string();
                if let Some(g) = groups.remove(&id) {
                    body["security_groups"] = json!(g);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e.detail(), "security groups of servers not read"),
    }
}

/// `GET /servers/{id}/os-security-groups` (ServerSecurityGroupController.index).
async fn server_security_groups(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let groups = s.server_security_groups(&ctx, &id).await?;
    ok(StatusCode::OK, json!({ "security_groups": groups }))
}

/// The body of `PUT /servers/{id}` and of `rebuild`: before 2.75 upstream leaves out what
/// only `GET` shows (zone, config drive, extended status and server attributes, usage
/// times, security groups, volumes, and the key name except on rebuild from 2.54) and the
/// address extensions; from 2.57 rebuild adds the top-level `user_data`.
fn trimmed_action_view(mut body: Value, v: ApiVersion, rebuild: bool, i: &Instance) -> Value {
    if !v.at_least(2, 75) {
        if let Some(m) = body.as_object_mut() {
            m.retain(|k, _| {
                !(k.starts_with("OS-EXT-AZ:")
                    || k.starts_with("OS-EXT-STS:")
                    || k.starts_with("OS-EXT-SRV-ATTR:")
                    || k.starts_with("OS-SRV-USG:")
                    || k.starts_with("os-extended-volumes:")
                    || k == "config_drive"
                    || k == "security_groups"
                    || k == "host_status")
            });
            if !(rebuild && v.at_least(2, 54)) {
                m.remove("key_name");
            }
        }
        if let Some(nets) = body["addresses"].as_object_mut() {
            for addrs in nets.values_mut() {
                for a in addrs.as_array_mut().into_iter().flatten() {
                    if let Some(a) = a.as_object_mut() {
                        a.remove("OS-EXT-IPS:type");
                        a.remove("OS-EXT-IPS-MAC:mac_addr");
                    }
                }
            }
        }
    } else if rebuild && let Some(m) = body.as_object_mut() {
        m.remove("OS-EXT-SRV-ATTR:user_data");
    }
    if rebuild && v.at_least(2, 57) {
        body["user_data"] = json!(i.user_data);
    }
    body
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
    let mut body = i.detail(
        view,
        links(base, "servers", &i.uuid),
        bookmark(base, "flavors", &i.flavor.flavorid),
        bookmark(base, "images", &i.image_ref),
    );
    // Upstream keeps access addresses as IP objects: they show in canonical form.
    if let Some(a) = body["accessIPv6"]
        .as_str()
        .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
    {
        body["accessIPv6"] = json!(a.to_string());
    }
    body
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

/// Query parameter `name` as a time (ISO 8601, with or without an offset; UTC without),
/// in microseconds; 400 in upstream's words when it is not one.
pub(crate) fn query_time(p: &[(String, String)], name: &str) -> Result<Option<i64>> {
    param(p, name)
        .map(|t| {
            ferro_common::time::parse_iso8601(t).ok_or_else(|| {
                Fault::bad_request(format!(
                    "Invalid input for query parameters {name}. Value: {t}. '{t}' is not a \
                     'date-time'"
                ))
            })
        })
        .transpose()
}

/// `changes-since` and, when `with_before` (2.66), `changes-before`: 400 when the window
/// ends before it starts.
pub(crate) fn changes_window(
    p: &[(String, String)],
    with_before: bool,
) -> Result<(Option<i64>, Option<i64>)> {
    let since = query_time(p, "changes-since")?;
    let before = if with_before {
        query_time(p, "changes-before")?
    } else {
        None
    };
    if let (Some(a), Some(b)) = (since, before)
        && b < a
    {
        return Err(Fault::bad_request(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    Ok((since, before))
}

fn server_query(s: &Compute, ctx: &RequestContext, p: &[(String, String)]) -> Result<ServerQuery> {
    validate_query(&schemas::server_list_query(), p)?;
    let changes_since = query_time(p, "changes-since")?;
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
    // Without all_tenants upstream drops tenant_id/project_id (bug 1185290): the caller's
    // own project is listed, admin or not.
    let project_id = if all_tenants {
        param(p, "project_id")
            .or_else(|| param(p, "tenant_id"))
            .map(str::to_string)
    } else {
        None
    };
    Ok(ServerQuery {
        name: param(p, "name").map(str::to_string),
        status: param(p, "status").map(str::to_string),
        flavor: param(p, "flavor").map(str::to_string),
        image: param(p, "image").map(str::to_string),
        host: param(p, "host").map(str::to_string),
        reservation_id: param(p, "reservation_id").map(str::to_string),
        changes_since,
        all_tenants,
        project_id,
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
    let mut items: Vec<Value> = list
        .iter()
        .map(|i| {
            if detail {
                server_body(s, ctx, v, i, false)
            } else {
                i.basic(links(base, "servers", &i.uuid))
            }
        })
        .collect();
    if detail {
        let refs: Vec<&Instance> = list.iter().collect();
        add_security_groups(s, ctx, &refs, &mut items).await;
    }
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
    add_security_groups(&s, &ctx, &[&i], std::slice::from_mut(&mut body)).await;
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
    let i = if srv.get("accessIPv4").is_some() || srv.get("accessIPv6").is_some() {
        s.server_set_access_ips(&ctx, &i.uuid, srv).await?
    } else {
        i
    };
    let body = trimmed_action_view(server_body(&s, &ctx, v, &i, true), v, false, &i);
    ok(StatusCode::OK, json!({ "server": body }))
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
        "migrate" => {
            let host = if v.at_least(2, 56) {
                validate_body(&schemas::migrate_action(), &b)?;
                b["migrate"]["host"].as_str()
            } else {
                None
            };
            s.server_migrate(&ctx, &id, host).await?;
            return empty(StatusCode::ACCEPTED);
        }
        "rebuild" => {
            validate_body(&schemas::rebuild_action(v), &b)?;
            let (i, password) = s.server_rebuild(&ctx, v, &id, &b).await?;
            let mut body = trimmed_action_view(server_body(&s, &ctx, v, &i, true), v, true, &i);
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
        "shelve" => {
            s.server_shelve(&ctx, &id).await?;
            return empty(StatusCode::ACCEPTED);
        }
        "shelveOffload" => {
            s.server_shelve_offload(&ctx, &id).await?;
            return empty(StatusCode::ACCEPTED);
        }
        "unshelve" => {
            validate_body(&schemas::unshelve_action(v), &b)?;
            let to = crate::shelve::UnshelveTo::parse(v, &b);
            s.server_unshelve(&ctx, &id, to).await?;
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
        "os-resetState" => {
            validate_body(&schemas::reset_state_action(), &b)?;
            let state = b["os-resetState"]["state"].as_str().unwrap_or_default();
            s.server_reset_state(&ctx, &id, state).await?;
            return empty(StatusCode::ACCEPTED);
        }
        "injectNetworkInfo" => {
            visible(
                &s,
                &ctx,
                &id,
                "os_compute_api:os-admin-actions:inject_network_info",
            )
            .await?;
            return empty(StatusCode::ACCEPTED);
        }
        "forceDelete" => {
            let i = s.instance_visible(&ctx, &id).await?;
            s.authorize(
                &ctx,
                "os_compute_api:os-deferred-delete:force",
                json!({"project_id": i.project_id, "user_id": i.user_id}),
            )?;
            s.server_delete(&ctx, &id).await?;
            return empty(StatusCode::ACCEPTED);
        }
        "restore" => {
            // Nothing is soft-deleted (reclaim_instance_interval is 0), so a server that
            // exists is never in the state restore needs.
            let i = visible(&s, &ctx, &id, "os_compute_api:os-deferred-delete:restore").await?;
            return Err(crate::servers::invalid_state(
                "restore",
                &id,
                "vm_state",
                i.vm_state.as_str(),
            ));
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
            // Nova's free-form host detail: an object from 2.28, its JSON text before.
            let cpu_info = n.cpu_info.as_deref().unwrap_or("{}");
            h["cpu_info"] = if v.at_least(2, 28) {
                serde_json::from_str(cpu_info).unwrap_or_else(|_| json!({}))
            } else {
                json!(cpu_info)
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

/// The hypervisor `id` names: the node's integer id before 2.53, its uuid from 2.53
/// (a malformed uuid is a 400 there, as upstream).
fn hypervisor_matches(v: ApiVersion, n: &crate::db::ComputeNode, id: &str) -> Result<bool> {
    if v.at_least(2, 53) {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Fault::bad_request(format!("Invalid uuid {id}")));
        }
        Ok(n.uuid == id)
    } else {
        Ok(n.id.to_string() == id)
    }
}

/// The hypervisor `id` names among `list`, 404 when none.
fn hypervisor_by_id<'a>(
    list: &'a [(crate::db::ComputeNode, Value, [i64; 4])],
    v: ApiVersion,
    id: &str,
) -> Result<(&'a crate::db::ComputeNode, &'a Value, [i64; 4])> {
    for (n, st, u) in list {
        if hypervisor_matches(v, n, id)? {
            return Ok((n, st, *u));
        }
    }
    Err(Fault::not_found(format!(
        "Hypervisor with ID '{id}' could not be found."
    )))
}

/// Server `id` as the caller sees it, after the policy `rule` on its project.
async fn visible(s: &Compute, ctx: &RequestContext, id: &str, rule: &str) -> Result<Instance> {
    s.instance_for(ctx, id, rule).await
}

/// The servers on node `n`: `name` (`instance-%08x`) and `uuid`.
async fn hypervisor_instances(s: &Compute, n: &crate::db::ComputeNode) -> Result<Vec<Value>> {
    Ok(crate::db::instance_list(&mut &s.db, None)
        .await?
        .iter()
        .filter(|i| i.node.as_deref() == Some(n.host.as_str()))
        .map(|i| json!({"name": i.instance_name(), "uuid": i.uuid}))
        .collect())
}

/// `GET /os-hypervisors/{id}`: the detail of one hypervisor; `with_servers` from 2.53.
async fn hypervisor_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    let list = hypervisors(&s, &ctx, "os_compute_api:os-hypervisors:show").await?;
    let (n, st, u) = hypervisor_by_id(&list, v, &id)?;
    let mut h = hypervisor_body(v, n, st, u, true);
    if v.at_least(2, 53) {
        let with_servers = match crate::api::param(&p, "with_servers") {
            None => false,
            Some(w) => crate::manager::parse_bool_strict(&json!(w)).ok_or_else(|| {
                Fault::bad_request(format!(
                    "Invalid input for query parameters with_servers. Value: {w}."
                ))
            })?,
        };
        if with_servers {
            h["servers"] = json!(hypervisor_instances(&s, n).await?);
        }
    }
    ok(StatusCode::OK, json!({ "hypervisor": h }))
}

/// `GET /os-hypervisors/{id}/uptime` (gone from 2.88, where the detail carries `uptime`).
async fn hypervisor_uptime(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    if v.at_least(2, 88) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let list = hypervisors(&s, &ctx, "os_compute_api:os-hypervisors:uptime").await?;
    let (n, st, u) = hypervisor_by_id(&list, v, &id)?;
    let mut h = hypervisor_body(v, n, st, u, false);
    // The fake hypervisor has no `uptime` output of its own; this is the fake driver's.
    h["uptime"] = json!(" 08:32:11 up 93 days, 18:25, 12 users,  load average: 0.20, 0.12, 0.14");
    ok(StatusCode::OK, json!({ "hypervisor": h }))
}

/// The hypervisors whose hostname contains `pattern` (upstream's SQL `LIKE %pattern%`);
/// 404 when none does.
async fn hypervisors_matching(
    s: &Compute,
    ctx: &RequestContext,
    v: ApiVersion,
    rule: &str,
    pattern: &str,
) -> Result<Vec<(crate::db::ComputeNode, Value, [i64; 4])>> {
    if v.at_least(2, 53) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let list: Vec<_> = hypervisors(s, ctx, rule)
        .await?
        .into_iter()
        .filter(|(n, _, _)| n.host.contains(pattern))
        .collect();
    if list.is_empty() {
        return Err(Fault::not_found(format!(
            "No hypervisor matching '{pattern}' could be found."
        )));
    }
    Ok(list)
}

/// `GET /os-hypervisors/{pattern}/search` (before 2.53).
async fn hypervisor_search(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(pattern): Path<String>,
) -> Result<Response> {
    let list = hypervisors_matching(
        &s,
        &ctx,
        v,
        "os_compute_api:os-hypervisors:search",
        &pattern,
    )
    .await?;
    let items: Vec<Value> = list
        .iter()
        .map(|(n, st, u)| hypervisor_body(v, n, st, *u, false))
        .collect();
    ok(StatusCode::OK, json!({ "hypervisors": items }))
}

/// `GET /os-hypervisors/{pattern}/servers` (before 2.53).
async fn hypervisor_servers(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(pattern): Path<String>,
) -> Result<Response> {
    let list = hypervisors_matching(
        &s,
        &ctx,
        v,
        "os_compute_api:os-hypervisors:servers",
        &pattern,
    )
    .await?;
    let mut items = Vec::new();
    for (n, st, u) in &list {
        let mut h = hypervisor_body(v, n, st, *u, false);
        let servers = hypervisor_instances(&s, n).await?;
        if !servers.is_empty() {
            h["servers"] = json!(servers);
        }
        items.push(h);
    }
    ok(StatusCode::OK, json!({ "hypervisors": items }))
}

// ---- server sub-resources ----------------------------------------------------------------

/// `GET /servers/{id}/ips`: the server's addresses by network label.
async fn server_ips(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    let i = visible(&s, &ctx, &id, "os_compute_api:ips:index").await?;
    let body = server_body(&s, &ctx, v, &i, true);
    ok(
        StatusCode::OK,
        json!({ "addresses": ips_of(&body["addresses"]) }),
    )
}

/// The address entries as the ips API shows them: `version` and `addr` only.
fn ips_of(addresses: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (net, addrs) in addresses.as_object().into_iter().flatten() {
        let list: Vec<Value> = addrs
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| json!({"version": a["version"], "addr": a["addr"]}))
            .collect();
        out.insert(net.clone(), json!(list));
    }
    Value::Object(out)
}

/// `GET /servers/{id}/ips/{network}`: the addresses on one network label, 404 otherwise.
async fn server_ips_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, network)): Path<(String, String)>,
) -> Result<Response> {
    let i = visible(&s, &ctx, &id, "os_compute_api:ips:show").await?;
    let body = server_body(&s, &ctx, v, &i, true);
    let ips = ips_of(&body["addresses"]);
    match ips.get(&network) {
        Some(list) => ok(StatusCode::OK, json!({ network: list })),
        None => Err(Fault::not_found(
            "Instance is not a member of specified network",
        )),
    }
}

/// `GET /servers/{id}/os-server-password`: the (encrypted) password the guest posted to
/// the metadata service, empty when none.
async fn server_password_show(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let i = visible(&s, &ctx, &id, "os_compute_api:os-server-password:show").await?;
    let password = crate::db::instance_password(&mut &s.db, &i.uuid).await?;
    ok(
        StatusCode::OK,
        json!({"password": password.unwrap_or_default()}),
    )
}

/// `DELETE /servers/{id}/os-server-password`: 204; the guest may post a new one.
async fn server_password_clear(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let i = visible(&s, &ctx, &id, "os_compute_api:os-server-password:clear").await?;
    crate::db::instance_clear_password(&mut &s.db, &i.uuid).await?;
    empty(StatusCode::NO_CONTENT)
}

/// `GET /servers/{id}/diagnostics`: what upstream's fake driver reports (the standard
/// format from 2.48, the driver's free-form map before); 409 while the server builds.
async fn server_diagnostics(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    let i = visible(&s, &ctx, &id, "os_compute_api:os-server-diagnostics").await?;
    if i.host.is_none() {
        return Err(Fault::conflict(format!(
            "Instance {id} is in an invalid state for 'get_diagnostics'"
        )));
    }
    if !v.at_least(2, 48) {
        return ok(
            StatusCode::OK,
            json!({"cpu0_time": 17_300_000_000_i64, "memory": 524_288,
                "vda_errors": -1, "vda_read": 262_144, "vda_read_req": 112,
                "vda_write": 5_778_432, "vda_write_req": 488,
                "vnet1_rx": 2070139, "vnet1_rx_drop": 0, "vnet1_rx_errors": 0,
                "vnet1_rx_packets": 26701, "vnet1_tx": 140208, "vnet1_tx_drop": 0,
                "vnet1_tx_errors": 0, "vnet1_tx_packets": 662}),
        );
    }
    let state = match i.power_state {
        ferro_api_types::compute::PowerState::Running => "running",
        ferro_api_types::compute::PowerState::Paused => "paused",
        ferro_api_types::compute::PowerState::Suspended => "suspended",
        ferro_api_types::compute::PowerState::Crashed => "crashed",
        ferro_api_types::compute::PowerState::Shutdown => "shutdown",
        ferro_api_types::compute::PowerState::NoState => "pending",
    };
    ok(
        StatusCode::OK,
        json!({"state": state, "driver": "libvirt", "hypervisor": "kvm",
            "hypervisor_os": "ubuntu", "uptime": 46664, "config_drive": !i.config_drive.is_empty(),
            "num_cpus": i.flavor.vcpus, "num_nics": 1, "num_disks": 1,
            "memory_details": {"maximum": i.flavor.memory_mb, "used": 0},
            "cpu_details": [{"id": 0, "time": 17_300_000_000_i64, "utilisation": 15}],
            "nic_details": [{"mac_address": "01:23:45:67:89:ab", "rx_octets": 2070139,
                "rx_errors": 100, "rx_drop": 200, "rx_packets": 26701, "rx_rate": 300,
                "tx_octets": 140208, "tx_errors": 400, "tx_drop": 500, "tx_packets": 662,
                "tx_rate": 600}],
            "disk_details": [{"read_bytes": 262_144, "read_requests": 112,
                "write_bytes": 5_778_432, "write_requests": 488, "errors_count": 1}]}),
    )
}

impl Compute {
    /// `PUT /servers/{id}` with `accessIPv4`/`accessIPv6` (validated by the schema; an empty
    /// string clears). Called after the update's own checks.
    pub async fn server_set_access_ips(
        &self,
        ctx: &RequestContext,
        id: &str,
        srv: &Value,
    ) -> Result<Instance> {
        for _ in 0..5 {
            let mut i = self.instance_visible(ctx, id).await?;
            let expected = (i.vm_state, i.task_state.clone());
            let ip = |k: &str| match &srv[k] {
                Value::String(a) if a.is_empty() => Some(None),
                Value::String(a) => Some(Some(a.clone())),
                _ => None,
            };
            if let Some(a) = ip("accessIPv4") {
                i.access_ip_v4 = a;
            }
            if let Some(a) = ip("accessIPv6") {
                i.access_ip_v6 = a;
            }
            i.updated_at = ferro_common::time::now_micros();
            if crate::db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref()))
                .await?
            {
                return Ok(i);
            }
        }
        Err(Fault::conflict(format!(
            "Cannot 'update' instance {id} while it is changing state"
        )))
    }

    /// `os-resetState` (admin_actions.py `_reset_state`): `active` or `error`, no task.
    pub async fn server_reset_state(
        &self,
        ctx: &RequestContext,
        id: &str,
        state: &str,
    ) -> Result<()> {
        let mut i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:os-admin-actions:reset_state",
            json!({"project_id": i.project_id}),
        )?;
        let expected = (i.vm_state, i.task_state.clone());
        i.vm_state = if state == "error" {
            crate::model::VmState::Error
        } else {
            crate::model::VmState::Active
        };
        i.task_state = None;
        i.updated_at = ferro_common::time::now_micros();
        if !crate::db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await?
        {
            return Err(Fault::conflict(format!(
                "Cannot 'os-resetState' instance {id} while it is changing state"
            )));
        }
        Ok(())
    }
}
