//! Neutron's v2.0 routes and their thin handlers: parse, authenticate, delegate to
//! [`Networking`], answer. Policy lives in the manager, where the resource is known.
//!
//! Route table (upstream api-ref operation names):
//! `GET /` list_api_versions, `GET /v2.0/` show_api_v2_details, `GET /v2.0/extensions`
//! list_extensions, `GET /v2.0/extensions/{alias}` show_extension, and for each of
//! networks, subnets, ports, security-groups (list, create (also bulk), show, update,
//! delete) and security-group-rules (list, create (also bulk), show, delete).

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use ferro_http::{Auth, Json};
use serde_json::{Value, json};

use crate::fault::{NetError, Result};
use crate::listing::Query;
use crate::manager::Networking;
use crate::model::{self, Body};

type S = State<Arc<Networking>>;

/// The API's router.
pub fn router(net: Arc<Networking>) -> Router {
    let mut r = Router::new();
    for (collection, _, _) in crate::tags::TAGGED {
        r = r
            .route(
                &format!("/v2.0/{collection}/{{id}}/tags"),
                get(tags_list).put(tags_replace).delete(tags_clear),
            )
            .route(
                &format!("/v2.0/{collection}/{{id}}/tags/{{tag}}"),
                get(tag_check).put(tag_add).delete(tag_remove),
            );
    }
    r.route("/", get(versions))
        .route("/v2.0", get(v2_details))
        .route("/v2.0/", get(v2_details))
        .route("/v2.0/extensions", get(extension_list))
        .route("/v2.0/extensions/{alias}", get(extension_show))
        .route("/v2.0/networks", get(network_list).post(network_create))
        .route(
            "/v2.0/networks/{id}",
            get(network_show).put(network_update).delete(network_delete),
        )
        .route("/v2.0/subnets", get(subnet_list).post(subnet_create))
        .route(
            "/v2.0/subnets/{id}",
            get(subnet_show).put(subnet_update).delete(subnet_delete),
        )
        .route("/v2.0/ports", get(port_list).post(port_create))
        .route(
            "/v2.0/ports/{id}",
            get(port_show).put(port_update).delete(port_delete),
        )
        .route("/v2.0/security-groups", get(group_list).post(group_create))
        .route(
            "/v2.0/security-groups/{id}",
            get(group_show).put(group_update).delete(group_delete),
        )
        .route(
            "/v2.0/security-group-rules",
            get(rule_list).post(rule_create),
        )
        .route(
            "/v2.0/security-group-rules/{id}",
            get(rule_show).delete(rule_delete),
        )
        .route("/v2.0/subnetpools", get(pool_list).post(pool_create))
        .route(
            "/v2.0/subnetpools/{id}",
            get(pool_show).put(pool_update).delete(pool_delete),
        )
        .route("/v2.0/routers", get(router_list).post(router_create))
        .route(
            "/v2.0/routers/{id}",
            get(router_show).put(router_update).delete(router_delete),
        )
        .route(
            "/v2.0/routers/{id}/add_router_interface",
            put(router_add_interface),
        )
        .route(
            "/v2.0/routers/{id}/remove_router_interface",
            put(router_remove_interface),
        )
        .route(
            "/v2.0/auto-allocated-topology/{project}",
            get(topology_show).delete(topology_delete),
        )
        .route("/v2.0/floatingips", get(fip_list).post(fip_create))
        .route(
            "/v2.0/floatingips/{id}",
            get(fip_show).put(fip_update).delete(fip_delete),
        )
        .route("/v2.0/network-ip-availabilities", get(ip_availability_list))
        .route(
            "/v2.0/network-ip-availabilities/{id}",
            get(ip_availability_show),
        )
        .route("/v2.0/quotas", get(quota_list))
        .route(
            "/v2.0/quotas/{project}",
            get(quota_show).put(quota_update).delete(quota_delete),
        )
        .route("/v2.0/quotas/{project}/default", get(quota_defaults))
        .route("/v2.0/quotas/{project}/details", get(quota_details))
        .route("/v2.0/agents", get(agent_list))
        .route("/v2.0/agents/{id}", get(agent_show))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            net.clone(),
            tell_agents,
        ))
        .with_state(net)
}

/// After a request that changed the model, the agents are told to sync.
async fn tell_agents(
    State(n): S,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let writes =
        req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD;
    let res = next.run(req).await;
    if writes && res.status().is_success() {
        n.changed();
    }
    res
}

async fn not_found() -> Response {
    NetError::not_found("HTTPNotFound", "The resource could not be found.").into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `If-Match: revision_number=N` (the `revision-if-match` extension); other forms are
/// left to intermediaries, as upstream ignores them.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(v) = headers.get("if-match") else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("");
    match v.trim().strip_prefix("revision_number=") {
        Some(n) => n
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| NetError::invalid(format!("'{n}' is not a valid revision number"))),
        None => Ok(None),
    }
}

async fn versions(State(n): S) -> Response {
    ok(json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"href": format!("{}/v2.0/", n.config.url), "rel": "self"}],
    }]}))
}

async fn v2_details(State(n): S, Auth(_): Auth) -> Response {
    let resources: Vec<Value> = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("port", "ports"),
        ("security_group", "security_groups"),
        ("security_group_rule", "security_group_rules"),
        ("subnetpool", "subnetpools"),
        ("router", "routers"),
        ("floatingip", "floatingips"),
        ("network_ip_availability", "network_ip_availabilities"),
        ("agent", "agents"),
        ("quota", "quotas"),
    ]
    .iter()
    .map(|(name, collection)| {
        let path = collection.replace('_', "-");
        json!({"name": name, "collection": collection,
               "links": [{"href": format!("{}/v2.0/{path}", n.config.url), "rel": "self"}]})
    })
    .collect();
    ok(json!({"resources": resources}))
}

async fn extension_list(Auth(_): Auth) -> Response {
    let list: Vec<Value> = model::EXTENSIONS
        .iter()
        .map(|(a, n, d)| model::extension(a, n, d))
        .collect();
    ok(json!({"extensions": list}))
}

async fn extension_show(Auth(_): Auth, Path(alias): Path<String>) -> Result<Response> {
    model::EXTENSIONS
        .iter()
        .find(|(a, _, _)| *a == alias)
        .map(|(a, n, d)| ok(json!({"extension": model::extension(a, n, d)})))
        .ok_or_else(|| {
            NetError::not_found(
                "HTTPNotFound",
                format!("Extension with alias {alias} does not exist"),
            )
        })
}

/// Creates from a single `{member: {...}}` body or each of a bulk `{collection: [...]}`;
/// a failed bulk create undoes the members already made.
macro_rules! create {
    ($n:ident, $ctx:ident, $body:ident, $member:literal, $collection:literal, $make:ident, $undo:ident) => {{
        if let Some(items) = $body.get($collection) {
            let Value::Array(items) = items else {
                return Err(NetError::invalid(format!("Invalid data format for {}", $collection)));
            };
            let mut made: Vec<Value> = Vec::new();
            for item in items {
                let wrapped = json!({$member: item});
                let result = match Body::from_request(&wrapped, $member) {
                    Ok(b) => $n.$make(&$ctx, &b).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(v) => made.push(v[$member].clone()),
                    Err(e) => {
                        for m in &made {
                            let _ = $n.$undo(&$ctx, m["id"].as_str().unwrap_or(""), None).await;
                        }
                        return Err(e);
                    }
                }
            }
            return Ok(created(json!({$collection: made})));
        }
        let b = Body::from_request(&$body, $member)?;
        Ok(created($n.$make(&$ctx, &b).await?))
    }};
}

// ---- networks

async fn network_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    Ok(ok(n
        .network_list(&ctx, &Query::parse(q.as_deref()))
        .await?))
}

async fn network_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .network_show(&ctx, &id, &Query::parse(q.as_deref()))
        .await?))
}

async fn network_create(State(n): S, Auth(ctx): Auth, Json(body): Json<Value>) -> Result<Response> {
    create!(
        n,
        ctx,
        body,
        "network",
        "networks",
        network_create,
        network_delete
    )
}

async fn network_update(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response> {
    let b = Body::from_request(&body, "network")?;
    Ok(ok(n
        .network_update(&ctx, &id, &b, if_match(&headers)?)
        .await?))
}

async fn network_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    n.network_delete(&ctx, &id, if_match(&headers)?).await?;
    Ok(no_content())
}

// ---- subnets

async fn subnet_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    Ok(ok(n.subnet_list(&ctx, &Query::parse(q.as_deref())).await?))
}

async fn subnet_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .subnet_show(&ctx, &id, &Query::parse(q.as_deref()))
        .await?))
}

async fn subnet_create(State(n): S, Auth(ctx): Auth, Json(body): Json<Value>) -> Result<Response> {
    create!(
        n,
        ctx,
        body,
        "subnet",
        "subnets",
        subnet_create,
        subnet_delete
    )
}

async fn subnet_update(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response> {
    let b = Body::from_request(&body, "subnet")?;
    Ok(ok(n
        .subnet_update(&ctx, &id, &b, if_match(&headers)?)
        .await?))
}

async fn subnet_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    n.subnet_delete(&ctx, &id, if_match(&headers)?).await?;
    Ok(no_content())
}

// ---- ports

async fn port_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    Ok(ok(n.port_list(&ctx, &Query::parse(q.as_deref())).await?))
}

async fn port_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .port_show(&ctx, &id, &Query::parse(q.as_deref()))
        .await?))
}

async fn port_create(State(n): S, Auth(ctx): Auth, Json(body): Json<Value>) -> Result<Response> {
    create!(n, ctx, body, "port", "ports", port_create, port_delete)
}

async fn port_update(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response> {
    let b = Body::from_request(&body, "port")?;
    Ok(ok(n
        .port_update(&ctx, &id, &b, if_match(&headers)?)
        .await?))
}

async fn port_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    n.port_delete(&ctx, &id, if_match(&headers)?).await?;
    Ok(no_content())
}

// ---- security groups

async fn group_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    Ok(ok(n.group_list(&ctx, &Query::parse(q.as_deref())).await?))
}

async fn group_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .group_show(&ctx, &id, &Query::parse(q.as_deref()))
        .await?))
}

async fn group_create(State(n): S, Auth(ctx): Auth, Json(body): Json<Value>) -> Result<Response> {
    create!(
        n,
        ctx,
        body,
        "security_group",
        "security_groups",
        group_create,
        group_delete
    )
}

async fn group_update(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response> {
    let b = Body::from_request(&body, "security_group")?;
    Ok(ok(n
        .group_update(&ctx, &id, &b, if_match(&headers)?)
        .await?))
}

async fn group_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    n.group_delete(&ctx, &id, if_match(&headers)?).await?;
    Ok(no_content())
}

// ---- security group rules

async fn rule_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    Ok(ok(n.rule_list(&ctx, &Query::parse(q.as_deref())).await?))
}

async fn rule_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .rule_show(&ctx, &id, &Query::parse(q.as_deref()))
        .await?))
}

async fn rule_create(State(n): S, Auth(ctx): Auth, Json(body): Json<Value>) -> Result<Response> {
    create!(
        n,
        ctx,
        body,
        "security_group_rule",
        "security_group_rules",
        rule_create,
        rule_delete
    )
}

async fn rule_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    n.rule_delete(&ctx, &id, if_match(&headers)?).await?;
    Ok(no_content())
}

// ---- routers

async fn router_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    Ok(ok(n.router_list(&ctx, &Query::parse(q.as_deref())).await?))
}

async fn router_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .router_show(&ctx, &id, &Query::parse(q.as_deref()))
        .await?))
}

async fn router_create(State(n): S, Auth(ctx): Auth, Json(body): Json<Value>) -> Result<Response> {
    create!(
        n,
        ctx,
        body,
        "router",
        "routers",
        router_create,
        router_delete
    )
}

async fn router_update(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response> {
    let b = Body::from_request(&body, "router")?;
    Ok(ok(n
        .router_update(&ctx, &id, &b, if_match(&headers)?)
        .await?))
}

async fn router_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    n.router_delete(&ctx, &id, if_match(&headers)?).await?;
    Ok(no_content())
}

async fn router_add_interface(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response> {
    Ok(ok(n.router_add_interface(&ctx, &id, &body).await?))
}

async fn router_remove_interface(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response> {
    Ok(ok(n.router_remove_interface(&ctx, &id, &body).await?))
}

// ---- floating IPs

async fn fip_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    Ok(ok(n.fip_list(&ctx, &Query::parse(q.as_deref())).await?))
}

async fn fip_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .fip_show(&ctx, &id, &Query::parse(q.as_deref()))
        .await?))
}

async fn fip_create(State(n): S, Auth(ctx): Auth, Json(body): Json<Value>) -> Result<Response> {
    create!(
        n,
        ctx,
        body,
        "floatingip",
        "floatingips",
        fip_create,
        fip_delete
    )
}

async fn fip_update(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response> {
    let b = Body::from_request(&body, "floatingip")?;
    Ok(ok(n.fip_update(&ctx, &id, &b, if_match(&headers)?).await?))
}

async fn fip_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    n.fip_delete(&ctx, &id, if_match(&headers)?).await?;
    Ok(no_content())
}

// ---- IP availability and agents

async fn ip_availability_list(
    State(n): S,
    Auth(ctx): Auth,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .ip_availability_list(&ctx, &Query::parse(q.as_deref()))
        .await?))
}

async fn topology_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let fields = Query::parse(q.as_deref()).fields();
    Ok(ok(n
        .auto_allocated_topology(&ctx, &project, &fields)
        .await?))
}

async fn topology_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(project): Path<String>,
) -> Result<Response> {
    n.delete_auto_allocated_topology(&ctx, &project).await?;
    Ok(no_content())
}

async fn ip_availability_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(ok(n.ip_availability_show(&ctx, &id).await?))
}

async fn agent_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    // Neutron filters a list by the read policy rather than refusing it: a non-admin
    // sees no agents (tempest test_list_agents_non_admin).
    let agents = if n.allowed(&ctx, "get_agent", &json!({})) {
        n.agent_docs()
    } else {
        Vec::new()
    };
    let q = Query::parse(q.as_deref());
    let url = format!("{}/v2.0/agents", n.config.url);
    Ok(ok(crate::listing::respond(
        "agents",
        &url,
        agents,
        &q,
        &["id", "host", "agent_type", "binary"],
    )?))
}

async fn agent_show(State(n): S, Auth(ctx): Auth, Path(id): Path<String>) -> Result<Response> {
    // One the caller may not read is one that does not exist for them, as upstream.
    let readable = n.allowed(&ctx, "get_agent", &json!({}));
    let agent = n
        .agent_docs()
        .into_iter()
        .filter(|_| readable)
        .find(|a| a.get("id").and_then(Value::as_str) == Some(id.as_str()))
        .ok_or_else(|| {
            NetError::not_found("AgentNotFound", format!("Agent {id} could not be found."))
        })?;
    Ok(ok(json!({"agent": agent})))
}

// ---- quotas

async fn quota_list(State(n): S, Auth(ctx): Auth) -> Result<Response> {
    Ok(ok(n.quota_list(&ctx).await?))
}

async fn quota_show(State(n): S, Auth(ctx): Auth, Path(project): Path<String>) -> Result<Response> {
    Ok(ok(n.quota_show(&ctx, &project).await?))
}

async fn quota_defaults(
    State(n): S,
    Auth(ctx): Auth,
    Path(project): Path<String>,
) -> Result<Response> {
    Ok(ok(n.quota_defaults(&ctx, &project).await?))
}

async fn quota_details(
    State(n): S,
    Auth(ctx): Auth,
    Path(project): Path<String>,
) -> Result<Response> {
    Ok(ok(n.quota_details(&ctx, &project).await?))
}

async fn quota_update(
    State(n): S,
    Auth(ctx): Auth,
    Path(project): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response> {
    Ok(ok(n.quota_update(&ctx, &project, &body).await?))
}

async fn quota_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(project): Path<String>,
) -> Result<Response> {
    n.quota_delete(&ctx, &project).await?;
    Ok(no_content())
}

// ---- tags

/// The collection a tag route was matched under (`/v2.0/<collection>/{id}/tags...`).
fn collection(path: &MatchedPath) -> String {
    path.as_str().split('/').nth(2).unwrap_or("").to_string()
}

async fn tags_list(
    State(n): S,
    Auth(ctx): Auth,
    mp: MatchedPath,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(ok(n.tags_list(&ctx, &collection(&mp), &id).await?))
}

async fn tags_replace(
    State(n): S,
    Auth(ctx): Auth,
    mp: MatchedPath,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response> {
    let Some(Value::Array(items)) = body.get("tags") else {
        return Err(NetError::invalid("Invalid tags body"));
    };
    let mut wanted = Vec::new();
    for t in items {
        match t.as_str() {
            Some(t) => wanted.push(t.to_string()),
            None => return Err(NetError::invalid(format!("'{t}' is not a valid tag"))),
        }
    }
    let tags = n
        .tags_change(&ctx, &collection(&mp), &id, |_| Ok(wanted.clone()))
        .await?;
    Ok(ok(json!({"tags": tags})))
}

async fn tags_clear(
    State(n): S,
    Auth(ctx): Auth,
    mp: MatchedPath,
    Path(id): Path<String>,
) -> Result<Response> {
    n.tags_change(&ctx, &collection(&mp), &id, |_| Ok(Vec::new()))
        .await?;
    Ok(no_content())
}

async fn tag_check(
    State(n): S,
    Auth(ctx): Auth,
    mp: MatchedPath,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response> {
    n.tag_check(&ctx, &collection(&mp), &id, &tag).await?;
    Ok(no_content())
}

async fn tag_add(
    State(n): S,
    Auth(ctx): Auth,
    mp: MatchedPath,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response> {
    n.tags_change(&ctx, &collection(&mp), &id, |mut t| {
        t.push(tag.clone());
        Ok(t)
    })
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn tag_remove(
    State(n): S,
    Auth(ctx): Auth,
    mp: MatchedPath,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response> {
    let c = collection(&mp);
    n.tags_change(&ctx, &c, &id, |mut t| {
        let before = t.len();
        t.retain(|x| *x != tag);
        if t.len() == before {
            return Err(crate::tags::tag_not_found(&c, &id, &tag));
        }
        Ok(t)
    })
    .await?;
    Ok(no_content())
}

// ---- subnet pools

async fn pool_list(State(n): S, Auth(ctx): Auth, RawQuery(q): RawQuery) -> Result<Response> {
    Ok(ok(n.pool_list(&ctx, &Query::parse(q.as_deref())).await?))
}

async fn pool_show(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    Ok(ok(n
        .pool_show(&ctx, &id, &Query::parse(q.as_deref()))
        .await?))
}

async fn pool_create(State(n): S, Auth(ctx): Auth, Json(body): Json<Value>) -> Result<Response> {
    create!(
        n,
        ctx,
        body,
        "subnetpool",
        "subnetpools",
        pool_create,
        pool_delete
    )
}

async fn pool_update(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response> {
    let b = Body::from_request(&body, "subnetpool")?;
    Ok(ok(n
        .pool_update(&ctx, &id, &b, if_match(&headers)?)
        .await?))
}

async fn pool_delete(
    State(n): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    n.pool_delete(&ctx, &id, if_match(&headers)?).await?;
    Ok(no_content())
}
