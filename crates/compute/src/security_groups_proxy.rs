//! The security group proxy (upstream's deprecated `os-security-groups` and
//! `os-security-group-rules`, security_groups.py with nova/network/security_group_api.py):
//! the network API's security groups as Nova showed them before 2.36, read and changed
//! with the caller's token. Rules are ingress rules; later microversions get 404.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use ferro_client::Client;
use ferro_common::RequestContext;
use ferro_http::Auth;
use serde_json::{Value, json};

use crate::Compute;
use crate::api::{Body, Params, S, empty, ok, param};
use crate::fault::{Fault, Result};
use crate::manager::percent_encode;
use crate::microversion::ApiVersion;
use crate::ports::{network_api, nova_groups, nova_rule};
use crate::validation::validate_body;

pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route("/os-security-groups", get(group_list).post(group_create))
        .route(
            "/os-security-groups/{id}",
            get(group_show).put(group_update).delete(group_delete),
        )
        .route("/os-security-group-rules", post(rule_create))
        .route("/os-security-group-rules/{id}", delete(rule_delete))
}

fn proxy_gone(v: ApiVersion) -> Result<()> {
    if v.at_least(2, 36) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    Ok(())
}

/// `validate_id`: a group or rule id must look like a uuid.
fn uuid_like(id: &str) -> Result<()> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| Fault::bad_request("Security group id should be uuid"))
}

/// The network API's refusal as Nova passes it on: its message with the status class
/// upstream maps it to.
fn refused(r: &ferro_client::Response) -> Fault {
    let message = r.body["NeutronError"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("The network API answered {}", r.status));
    match r.status {
        404 => Fault::not_found(message),
        // Upstream: a quota refusal is SecurityGroupLimitExceeded, other conflicts (a
        // group in use, the default group) are Invalid.
        409 if message.to_ascii_lowercase().contains("quota") => Fault::forbidden(message),
        400 | 409 => Fault::bad_request(message),
        403 => Fault::forbidden(message),
        s => Fault::internal(format!("network API answered {s}: {message}")),
    }
}

/// The group body of a create or update: `name` and `description`, strings of at most
/// 255 characters.
fn group_schema() -> Value {
    let text = json!({"type": "string", "minLength": 0, "maxLength": 255});
    json!({"type": "object", "properties": {"security_group": {"type": "object",
        "properties": {"name": text, "description": text},
        "required": ["name", "description"]}},
        "required": ["security_group"]})
}

fn rule_schema() -> Value {
    json!({"type": "object", "properties": {"security_group_rule": {"type": "object",
        "properties": {
            "group_id": {"type": ["string", "null"], "format": "uuid"},
            "parent_group_id": {"type": "string", "format": "uuid"}},
        "required": ["parent_group_id"]}},
        "required": ["security_group_rule"]})
}

impl Compute {
    fn authorize_groups(&self, ctx: &RequestContext, action: &str) -> Result<()> {
        self.authorize(
            ctx,
            &format!("os_compute_api:os-security-groups:{action}"),
            json!({"project_id": ctx.project_id}),
        )
    }
}

/// Group `id` from the network API as Neutron shows it.
async fn group_get(c: &Client, id: &str) -> Result<Value> {
    let r = c
        .get(&format!("/v2.0/security-groups/{}", percent_encode(id)))
        .await
        .map_err(network_api)?;
    if r.status != 200 {
        return Err(refused(&r));
    }
    Ok(r.body["security_group"].clone())
}

/// What a call on group `id` checks first — the microversion, `action`'s policy, the id's
/// form, that the caller sees the group —: the group, and the client that read it.
async fn group_for(
    s: &Compute,
    ctx: &RequestContext,
    v: ApiVersion,
    action: &str,
    id: &str,
) -> Result<(Client, Value)> {
    proxy_gone(v)?;
    s.authorize_groups(ctx, action)?;
    uuid_like(id)?;
    let c = s.neutron_as(ctx)?;
    let g = group_get(&c, id).await?;
    Ok((c, g))
}

async fn one_group(c: &Client, group: Value) -> Result<Value> {
    Ok(nova_groups(c, &[group])
        .await?
        .pop()
        .unwrap_or_else(|| json!({})))
}

async fn group_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    axum::extract::Query(p): Params,
) -> Result<Response> {
    proxy_gone(v)?;
    s.authorize_groups(&ctx, "get")?;
    let c = s.neutron_as(&ctx)?;
    // An admin sees every project's groups only with all_tenants, as upstream.
    let mut path = "/v2.0/security-groups".to_string();
    if param(&p, "all_tenants").is_none() || !s.is_admin(&ctx) {
        path.push_str(&format!(
            "?project_id={}",
            percent_encode(ctx.project_id.as_deref().unwrap_or_default())
        ));
    }
    let r = c.get(&path).await.map_err(network_api)?;
    if r.status != 200 {
        return Err(refused(&r));
    }
    let groups = r.body["security_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = nova_groups(&c, &groups).await?;
    // `common.limited`: offset and limit over the list.
    let offset = param(&p, "offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    out = out.into_iter().skip(offset).collect();
    if let Some(limit) = param(&p, "limit").and_then(|l| l.parse::<usize>().ok()) {
        out.truncate(limit.min(crate::manager::MAX_LIMIT as usize));
    }
    ok(StatusCode::OK, json!({ "security_groups": out }))
}

async fn group_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    let (c, g) = group_for(&s, &ctx, v, "show", &id).await?;
    ok(
        StatusCode::OK,
        json!({ "security_group": one_group(&c, g).await? }),
    )
}

/// Writes a group's name and description (`id`: an update, else a create) and answers
/// the group in Nova's format.
async fn group_write(
    s: &Compute,
    ctx: &RequestContext,
    id: Option<&str>,
    body: &Value,
) -> Result<Response> {
    validate_body(&group_schema(), body)?;
    let g = &body["security_group"];
    let fields = json!({"security_group": {"name": g["name"], "description": g["description"]}});
    let c = s.neutron_as(ctx)?;
    let (r, want) = match id {
        Some(id) => {
            group_get(&c, id).await?;
            let path = format!("/v2.0/security-groups/{}", percent_encode(id));
            (c.put(&path, Some(&fields)).await, 200)
        }
        None => (c.post("/v2.0/security-groups", &fields).await, 201),
    };
    let r = r.map_err(network_api)?;
    if r.status != want {
        return Err(refused(&r));
    }
    let group = r.body["security_group"].clone();
    ok(
        StatusCode::OK,
        json!({ "security_group": one_group(&c, group).await? }),
    )
}

async fn group_create(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Body(b): Body,
) -> Result<Response> {
    proxy_gone(v)?;
    s.authorize_groups(&ctx, "create")?;
    group_write(&s, &ctx, None, &b).await
}

async fn group_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    proxy_gone(v)?;
    s.authorize_groups(&ctx, "update")?;
    uuid_like(&id)?;
    group_write(&s, &ctx, Some(&id), &b).await
}

async fn group_delete(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    let (c, _) = group_for(&s, &ctx, v, "delete", &id).await?;
    let r = c
        .delete(&format!("/v2.0/security-groups/{}", percent_encode(&id)))
        .await
        .map_err(network_api)?;
    if r.status != 204 {
        return Err(refused(&r));
    }
    empty(StatusCode::ACCEPTED)
}

/// Nova's rule arguments as a Neutron ingress rule (`_new_ingress_rule` and
/// `_make_neutron_security_group_rules_list`), or upstream's 400.
fn neutron_rule(rule: &Value, parent: &str, remote_group: Option<&str>) -> Result<Value> {
    let protocol = match &rule["ip_protocol"] {
        Value::Null => None,
        Value::String(p) if p.is_empty() => None,
        Value::String(p) => Some(p.clone()),
        other => Some(other.to_string()),
    };
    let port = |v: &Value| -> Option<std::result::Result<i64, ()>> {
        match v {
            Value::Null => None,
            Value::Number(n) => Some(n.as_i64().ok_or(())),
            Value::String(t) => Some(t.trim().parse::<i64>().map_err(|_| ())),
            _ => Some(Err(())),
        }
    };
    let (mut from, mut to) = (port(&rule["from_port"]), port(&rule["to_port"]));
    let upper = protocol.as_deref().map(str::to_ascii_uppercase);
    let cidr = match remote_group {
        Some(_) => {
            if from.is_none() && to.is_none() {
                match upper.as_deref() {
                    Some("ICMP") => (from, to) = (Some(Ok(-1)), Some(Ok(-1))),
                    Some("TCP" | "UDP") => (from, to) = (Some(Ok(1)), Some(Ok(65535))),
                    _ => {}
                }
            }
            None
        }
        None => {
            let cidr = match rule["cidr"].as_str().filter(|c| !c.is_empty()) {
                None => "0.0.0.0/0".to_string(),
                Some(c) => {
                    let decoded = percent_decode(c);
                    if !valid_cidr(&decoded) {
                        return Err(Fault::bad_request(format!(
                            "{decoded} is not a valid IP network."
                        )));
                    }
                    decoded
                }
            };
            Some(cidr)
        }
    };
    let mut out = json!({"direction": "ingress", "security_group_id": parent,
        "ethertype": if cidr.as_deref().is_some_and(|c| c.contains(':')) { "IPv6" } else { "IPv4" }});
    match (&protocol, from, to) {
        (Some(p), Some(f), Some(t)) => {
            let icmp = upper.as_deref() == Some("ICMP");
            let (Ok(f), Ok(t)) = (f, t) else {
                return Err(Fault::bad_request(if icmp {
                    "Invalid input received: Type and Code must be integers for ICMP protocol type"
                } else {
                    "Invalid input received: To and From ports must be integers"
                }));
            };
            let bad_range =
                |msg: String| Fault::bad_request(format!("Invalid port range {f}:{t}. {msg}"));
            match upper.as_deref() {
                Some("TCP" | "UDP") => {
                    if f > t {
                        return Err(bad_range(
                            "Former value cannot be greater than the later".into(),
                        ));
                    }
                    if f < 1 || t > 65535 {
                        return Err(bad_range(format!(
                            "Valid {} ports should be between 1-65535",
                            upper.as_deref().unwrap_or_default()
                        )));
                    }
                    out["port_range_min"] = json!(f);
                    out["port_range_max"] = json!(t);
                }
                Some("ICMP") => {
                    if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                        return Err(bad_range("For ICMP, the type:code must be valid".into()));
                    }
                    if f != -1 {
                        out["port_range_min"] = json!(f);
                    }
                    if t != -1 {
                        out["port_range_max"] = json!(t);
                    }
                }
                _ => return Err(Fault::bad_request(format!("Invalid IP protocol {p}."))),
            }
            out["protocol"] = json!(p.to_ascii_lowercase());
        }
        _ => {
            if remote_group.is_none() {
                return Err(Fault::bad_request(
                    "Not enough parameters to build a valid rule.",
                ));
            }
        }
    }
    if let Some(cidr) = cidr {
        if let Some((net, prefix)) = cidr.split_once('/')
            && prefix == "0"
            && net != "0.0.0.0"
            && net != "::"
        {
            return Err(Fault::bad_request(format!(
                "Bad prefix for network in cidr {cidr}"
            )));
        }
        out["remote_ip_prefix"] = json!(cidr);
    }
    if let Some(g) = remote_group {
        out["remote_group_id"] = json!(g);
    }
    Ok(out)
}

/// `netutils.is_valid_cidr`: an address, a slash and a prefix length that fits it.
fn valid_cidr(c: &str) -> bool {
    let Some((addr, prefix)) = c.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(prefix)) = (addr.parse::<std::net::IpAddr>(), prefix.parse::<u8>()) else {
        return false;
    };
    prefix <= if addr.is_ipv4() { 32 } else { 128 }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn rule_create(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Body(b): Body,
) -> Result<Response> {
    proxy_gone(v)?;
    s.authorize_groups(&ctx, "rule:create")?;
    validate_body(&rule_schema(), &b)?;
    let rule = &b["security_group_rule"];
    let parent = rule["parent_group_id"].as_str().unwrap_or_default();
    let remote = rule["group_id"].as_str();
    let c = s.neutron_as(&ctx)?;
    let group = group_get(&c, parent).await?;
    let source = match remote {
        Some(g) => Some(group_get(&c, g).await?),
        None => None,
    };
    let new = neutron_rule(rule, parent, remote)?;
    // `_rule_exists`: the same ingress rule is refused before the network API sees it.
    let same = |r: &Value| {
        r["direction"] == "ingress"
            && [
                "protocol",
                "port_range_min",
                "port_range_max",
                "remote_group_id",
            ]
            .iter()
            .all(|k| r[*k] == new[*k])
            && r["remote_ip_prefix"].as_str().unwrap_or("0.0.0.0/0")
                == new["remote_ip_prefix"].as_str().unwrap_or("0.0.0.0/0")
    };
    if group["security_group_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .any(same)
    {
        return Err(Fault::bad_request(format!(
            "This rule already exists in group {parent}"
        )));
    }
    let r = c
        .post(
            "/v2.0/security-group-rules",
            &json!({ "security_group_rule": new }),
        )
        .await
        .map_err(network_api)?;
    if r.status != 201 {
        return Err(refused(&r));
    }
    let data = source.map(|g| json!({"name": g["name"], "tenant_id": g["project_id"]}));
    ok(
        StatusCode::OK,
        json!({"security_group_rule": nova_rule(&r.body["security_group_rule"], data)}),
    )
}

async fn rule_delete(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_gone(v)?;
    s.authorize_groups(&ctx, "rule:delete")?;
    uuid_like(&id)?;
    let c = s.neutron_as(&ctx)?;
    let r = c
        .delete(&format!(
            "/v2.0/security-group-rules/{}",
            percent_encode(&id)
        ))
        .await
        .map_err(network_api)?;
    if r.status != 204 {
        return Err(refused(&r));
    }
    empty(StatusCode::ACCEPTED)
}
