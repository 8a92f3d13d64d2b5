//! The compute API's routes and thin handlers: negotiate the microversion, validate the
//! request against the schema in force, delegate to [`Compute`], shape the answer for the
//! version. Upstream validates before it checks policy, so a bad body from anyone is a 400.
//!
//! Served at `/v2.1` (the catalog URL is `http://host:8774/v2.1`, as DevStack registers it);
//! `/` is the version list.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferro_http::Auth;
use serde_json::{Map, Value, json};

use crate::Compute;
use crate::fault::{Fault, Result};
use crate::manager::{FlavorQuery, ServiceChange, ServiceKey, percent_encode};
use crate::microversion::{self, ApiVersion};
use crate::model::{Flavor, python_isoformat};
use crate::quota::{Detail, Limits, Resource};
use crate::schemas;
use crate::validation::{validate_body, validate_query};

pub(crate) type S = State<Arc<Compute>>;
pub(crate) type Params = Query<Vec<(String, String)>>;

/// A request body as Nova reads it: JSON (or nothing, which validates as `None`), of a JSON
/// media type; anything else is upstream's 400 or 415.
pub struct Body(pub Value);

impl<St: Send + Sync> FromRequest<St> for Body {
    type Rejection = Fault;

    async fn from_request(req: Request, state: &St) -> Result<Self, Fault> {
        if let Some(ct) = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.is_empty()
                && media != "text/plain"
                && media != "application/json"
                && media != "application/vnd.openstack.compute+json"
            {
                return Err(Fault::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported Content-Type",
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Fault::new(StatusCode::PAYLOAD_TOO_LARGE, "Request is too large.")
            } else {
                Fault::bad_request("Malformed request body")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|_| Fault::bad_request("Malformed request body"))
    }
}

pub(crate) fn ok(status: StatusCode, body: Value) -> Result<Response> {
    Ok((status, axum::Json(body)).into_response())
}

pub(crate) fn empty(status: StatusCode) -> Result<Response> {
    Ok(status.into_response())
}

/// The last value of query parameter `key` (webob's `params[key]`).
pub(crate) fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The first value of `key` (upstream reads `user_id` with `parse_qs(...)[0]`).
fn first_param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `application/x-www-form-urlencoded`, as Python's `urlencode` writes it.
fn urlencode(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| percent_encode(s).replace("%20", "+");
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The compute API's router: the version list at `/`, the API under `/v2.1`.
pub fn router(state: Arc<Compute>) -> Router {
    let v21 = Router::new()
        .route("/", get(version_show))
        .route("/versions/{id}", get(version_show_by_id))
        .route("/flavors", get(flavor_list).post(flavor_create))
        .route("/flavors/detail", get(flavor_list_detail))
        .route(
            "/flavors/{id}",
            get(flavor_show).put(flavor_update).delete(flavor_delete),
        )
        .route("/flavors/{id}/action", axum::routing::post(flavor_action))
        .route(
            "/flavors/{id}/os-extra_specs",
            get(extra_specs_list).post(extra_specs_create),
        )
        .route(
            "/flavors/{id}/os-extra_specs/{key}",
            get(extra_spec_show)
                .put(extra_spec_update)
                .delete(extra_spec_delete),
        )
        .route("/flavors/{id}/os-flavor-access", get(flavor_access_list))
        .route("/os-keypairs", get(keypair_list).post(keypair_create))
        .route(
            "/os-keypairs/{name}",
            get(keypair_show).delete(keypair_delete),
        )
        .route(
            "/os-quota-sets/{id}",
            get(quota_show).put(quota_update).delete(quota_delete),
        )
        .route("/os-quota-sets/{id}/detail", get(quota_detail))
        .route("/os-quota-sets/{id}/defaults", get(quota_defaults))
        .route(
            "/os-quota-class-sets/{id}",
            get(quota_class_show).put(quota_class_update),
        )
        .route("/limits", get(limits))
        .route("/os-availability-zone", get(az_list))
        .route("/os-availability-zone/detail", get(az_detail))
        .route("/os-migrations", get(crate::migrations::list))
        .route("/os-services", get(service_list))
        .route(
            "/os-services/{id}",
            axum::routing::put(service_update).delete(service_delete),
        )
        .route("/extensions", get(extension_list))
        .route("/extensions/{alias}", get(extension_show))
        .route("/os-hosts", get(host_list))
        .route("/os-hosts/{host}", get(host_show).put(host_update))
        .route("/os-hosts/{host}/startup", get(host_startup))
        .route("/os-hosts/{host}/shutdown", get(host_shutdown))
        .route("/os-hosts/{host}/reboot", get(host_reboot))
        .route("/os-instance_usage_audit_log", get(audit_log_list))
        .route("/os-instance_usage_audit_log/{before}", get(audit_log_show))
        .merge(crate::aggregates::routes())
        .merge(crate::images_proxy::routes())
        .merge(crate::security_groups_proxy::routes())
        .merge(crate::servers_api::routes())
        .merge(crate::server_meta::routes())
        .merge(crate::server_groups::routes())
        .merge(crate::instance_actions::routes())
        .merge(crate::interfaces::routes())
        .merge(crate::usage::routes())
        .merge(crate::external_events::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(microversion::version_headers));
    Router::new()
        .route("/", get(versions_index))
        .route("/v2.1/", get(version_show))
        .route("/v2", get(version_show_v20))
        .route("/v2/", get(version_show_v20))
        .nest("/v2.1", v21)
        .fallback(versions_multi)
        .with_state(state)
}

async fn not_found() -> Fault {
    Fault::not_found("The resource could not be found.")
}

// ---- versions -------------------------------------------------------------------------------

/// One entry of upstream's `VERSIONS` (nova/api/openstack/compute/versions.py).
fn version_entry(id: &str) -> Value {
    let (status, version, min, updated, media) = if id == "v2.0" {
        (
            "DEPRECATED",
            String::new(),
            String::new(),
            "2025-07-04T12:00:00Z",
            "2",
        )
    } else {
        (
            "CURRENT",
            microversion::MAX.to_string(),
            microversion::MIN.to_string(),
            "2013-07-23T11:33:21Z",
            "2.1",
        )
    };
    json!({
        "id": id, "status": status, "version": version, "min_version": min, "updated": updated,
        "links": [{"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
        "media-types": [{"base": "application/json",
            "type": format!("application/vnd.openstack.compute+json;version={media}")}],
    })
}

fn version_href(base: &str, id: &str) -> String {
    let n = if id.starts_with("v2.1") { "v2.1" } else { "v2" };
    format!("{base}/{n}/")
}

/// `GET /`: every version, 200 (upstream answers the root with `index`, not 300).
async fn versions_index(State(s): S) -> Result<Response> {
    let base = &s.config.public_url;
    let versions: Vec<Value> = ["v2.0", "v2.1"]
        .iter()
        .map(|id| {
            let e = version_entry(id);
            json!({"id": e["id"], "status": e["status"], "version": e["version"],
                "min_version": e["min_version"], "updated": e["updated"],
                "links": [{"rel": "self", "href": version_href(base, id)}]})
        })
        .collect();
    ok(StatusCode::OK, json!({ "versions": versions }))
}

/// Any other unversioned path: 300 Multiple Choices with links into each version.
async fn versions_multi(State(s): S, OriginalUri(uri): OriginalUri) -> Result<Response> {
    let base = &s.config.public_url;
    let path = uri.path().trim_start_matches('/');
    let choices: Vec<Value> = ["v2.0", "v2.1"]
        .iter()
        .map(|id| {
            let e = version_entry(id);
            let href = format!("{}{path}", version_href(base, id));
            json!({"id": id, "status": e["status"],
                "links": [{"rel": "self", "href": href}], "media-types": e["media-types"]})
        })
        .collect();
    ok(StatusCode::MULTIPLE_CHOICES, json!({ "choices": choices }))
}

fn version_doc(base: &str) -> Value {
    version_doc_of(base, "v2.1")
}

fn version_doc_of(base: &str, id: &str) -> Value {
    let mut v = version_entry(id);
    if let Some(links) = v["links"].as_array_mut() {
        links.insert(0, json!({"rel": "self", "href": version_href(base, id)}));
    }
    json!({ "version": v })
}

/// `GET /v2/`: the legacy v2.0 endpoint's document, which the version list links to.
async fn version_show_v20(State(s): S) -> Result<Response> {
    ok(StatusCode::OK, version_doc_of(&s.config.public_url, "v2.0"))
}

/// `GET /v2.1/` (and `/v2.1`, which upstream redirects here): this version's document, no
/// token needed.
async fn version_show(State(s): S) -> Result<Response> {
    ok(StatusCode::OK, version_doc(&s.config.public_url))
}

/// `GET /v2.1/versions/{id}`.
async fn version_show_by_id(State(s): S, Path(id): Path<String>) -> Result<Response> {
    if id != "v2.1" {
        return Err(Fault::not_found("The resource could not be found."));
    }
    ok(StatusCode::OK, version_doc(&s.config.public_url))
}

// ---- flavors --------------------------------------------------------------------------------

pub(crate) fn links(base: &str, collection: &str, id: &str) -> Value {
    let id = percent_encode(id);
    json!([
        {"rel": "self", "href": format!("{base}/v2.1/{collection}/{id}")},
        {"rel": "bookmark", "href": format!("{base}/{collection}/{id}")},
    ])
}

/// `flavors_links` / `keypairs_links`: a `next` link when the page is full.
pub(crate) fn next_link(
    base: &str,
    collection: &str,
    params: &[(String, String)],
    page_len: usize,
    last_id: Option<&str>,
) -> Option<Value> {
    let limit = param(params, "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(crate::manager::MAX_LIMIT)
        .min(crate::manager::MAX_LIMIT);
    let last = last_id?;
    if limit == 0 || limit != page_len as i64 {
        return None;
    }
    // `OrderedDict(sorted(request.params.items()))`: one value per key, the last one.
    let mut map: BTreeMap<String, String> = params.iter().cloned().collect();
    map.insert("marker".into(), last.to_string());
    let pairs: Vec<(String, String)> = map.into_iter().collect();
    Some(json!([{"rel": "next",
        "href": format!("{base}/v2.1/{collection}?{}", urlencode(&pairs))}]))
}

fn flavor_query(v: ApiVersion, params: &[(String, String)]) -> Result<FlavorQuery> {
    validate_query(&schemas::flavor_list_query(v), params)?;
    Ok(FlavorQuery {
        is_public: param(params, "is_public").map(str::to_string),
        min_ram: param(params, "minRam").map(str::to_string),
        min_disk: param(params, "minDisk").map(str::to_string),
        name: if v.at_least(2, 102) {
            param(params, "name").map(str::to_string)
        } else {
            None
        },
        sort_key: param(params, "sort_key").map(str::to_string),
        sort_dir: param(params, "sort_dir").map(str::to_string),
        limit: param(params, "limit").and_then(|l| l.parse().ok()),
        marker: param(params, "marker").map(str::to_string),
    })
}

fn flavor_body(s: &Compute, v: ApiVersion, f: &Flavor, extra_specs: bool) -> Value {
    f.show(
        v,
        links(&s.config.public_url, "flavors", &f.id),
        extra_specs,
    )
}

async fn flavor_list_common(
    s: &Compute,
    ctx: &ferro_common::RequestContext,
    v: ApiVersion,
    params: &[(String, String)],
    detail: bool,
) -> Result<Response> {
    let q = flavor_query(v, params)?;
    let flavors = s.flavor_list(ctx, &q).await?;
    let specs = detail && v.at_least(2, 61) && s.may_see_extra_specs(ctx);
    let base = &s.config.public_url;
    let items: Vec<Value> = flavors
        .iter()
        .map(|f| {
            if detail {
                flavor_body(s, v, f, specs)
            } else {
                f.basic(v, links(base, "flavors", &f.id))
            }
        })
        .collect();
    let mut body = json!({ "flavors": items });
    let collection = if detail { "flavors/detail" } else { "flavors" };
    if let Some(l) = next_link(
        base,
        collection,
        params,
        flavors.len(),
        flavors.last().map(|f| f.id.as_str()),
    ) {
        body["flavors_links"] = l;
    }
    ok(StatusCode::OK, body)
}

async fn flavor_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    flavor_list_common(&s, &ctx, v, &p, false).await
}

async fn flavor_list_detail(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    flavor_list_common(&s, &ctx, v, &p, true).await
}

async fn flavor_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::empty_query(v, (2, 102)), &p)?;
    let f = s.flavor_get(&ctx, &id).await?;
    let specs = s.may_see_extra_specs(&ctx);
    ok(
        StatusCode::OK,
        json!({"flavor": flavor_body(&s, v, &f, specs)}),
    )
}

async fn flavor_create(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::flavor_create(v), &b)?;
    let f = s.flavor_create(&ctx, v, &b).await?;
    // A new flavor has no extra specs; 2.61+ shows the empty map to whoever may read them.
    let specs = s.may_see_extra_specs(&ctx);
    ok(
        StatusCode::OK,
        json!({"flavor": flavor_body(&s, v, &f, specs)}),
    )
}

async fn flavor_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    if !v.at_least(2, 55) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    validate_body(&schemas::flavor_update(), &b)?;
    let description = b["flavor"]["description"].as_str();
    let f = s.flavor_update(&ctx, &id, description).await?;
    let specs = s.may_see_extra_specs(&ctx);
    ok(
        StatusCode::OK,
        json!({"flavor": flavor_body(&s, v, &f, specs)}),
    )
}

async fn flavor_delete(
    State(s): S,
    Auth(ctx): Auth,
    _v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    s.flavor_delete(&ctx, &id).await?;
    empty(StatusCode::ACCEPTED)
}

fn access_body(id: &str, projects: Vec<String>) -> Value {
    let items: Vec<Value> = projects
        .into_iter()
        .map(|p| json!({"flavor_id": id, "tenant_id": p}))
        .collect();
    json!({ "flavor_access": items })
}

/// The one action a `POST .../action` body names (`{"<action>": {...}}`).
pub(crate) fn action_name(body: &Value) -> Result<String> {
    match body {
        Value::Object(m) if m.len() == 1 => Ok(m.keys().next().cloned().unwrap_or_default()),
        _ => Err(Fault::bad_request("Malformed request body")),
    }
}

async fn flavor_action(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    let action = action_name(&b)?;
    match action.as_str() {
        "addTenantAccess" | "removeTenantAccess" => {
            validate_body(&schemas::flavor_access_action(&action), &b)?;
            let tenant = b[&action]["tenant"].as_str().unwrap_or_default();
            let projects = if action == "addTenantAccess" {
                s.flavor_access_add(&ctx, v, &id, tenant).await?
            } else {
                s.flavor_access_remove(&ctx, &id, tenant).await?
            };
            ok(StatusCode::OK, access_body(&id, projects))
        }
        other => Err(Fault::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

async fn flavor_access_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::empty_query(v, (2, 102)), &p)?;
    let projects = s.flavor_access(&ctx, &id).await?;
    ok(StatusCode::OK, access_body(&id, projects))
}

async fn extra_specs_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::empty_query(v, (2, 102)), &p)?;
    let specs = s.extra_specs(&ctx, &id).await?;
    ok(StatusCode::OK, json!({ "extra_specs": specs }))
}

async fn extra_specs_create(
    State(s): S,
    Auth(ctx): Auth,
    _v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::EXTRA_SPECS_CREATE, &b)?;
    let specs = b["extra_specs"].as_object().cloned().unwrap_or_default();
    s.extra_specs_set(
        &ctx,
        "os_compute_api:os-flavor-extra-specs:create",
        &id,
        &specs,
    )
    .await?;
    // Upstream answers with the request body as sent (numbers stay numbers).
    ok(StatusCode::OK, b)
}

async fn extra_spec_update(
    State(s): S,
    Auth(ctx): Auth,
    _v: ApiVersion,
    Path((id, key)): Path<(String, String)>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::EXTRA_SPECS_UPDATE, &b)?;
    let specs: Map<String, Value> = b.as_object().cloned().unwrap_or_default();
    if !specs.contains_key(&key) {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    }
    s.extra_specs_set(
        &ctx,
        "os_compute_api:os-flavor-extra-specs:update",
        &id,
        &specs,
    )
    .await?;
    ok(StatusCode::OK, b)
}

async fn extra_spec_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, key)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::empty_query(v, (2, 102)), &p)?;
    let value = s.extra_spec(&ctx, &id, &key).await?;
    ok(StatusCode::OK, json!({ key: value }))
}

async fn extra_spec_delete(
    State(s): S,
    Auth(ctx): Auth,
    _v: ApiVersion,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    s.extra_spec_delete(&ctx, &id, &key).await?;
    empty(StatusCode::OK)
}

// ---- key pairs ------------------------------------------------------------------------------

async fn keypair_create(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::keypair_create(v), &b)?;
    let (k, private_key) = s.keypair_create(&ctx, v, &b).await?;
    let status = if v.at_least(2, 2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    ok(status, k.created(v, private_key.as_deref()))
}

async fn keypair_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::keypair_list_query(v), &p)?;
    let limit = param(&p, "limit").and_then(|l| l.parse().ok());
    let keypairs = s
        .keypair_list(
            &ctx,
            v,
            first_param(&p, "user_id"),
            limit,
            param(&p, "marker"),
        )
        .await?;
    let items: Vec<Value> = keypairs.iter().map(|k| k.index(v)).collect();
    let mut body = json!({ "keypairs": items });
    if v.at_least(2, 35)
        && let Some(l) = next_link(
            &s.config.public_url,
            "os-keypairs",
            &p,
            keypairs.len(),
            keypairs.last().map(|k| k.name.as_str()),
        )
    {
        body["keypairs_links"] = l;
    }
    ok(StatusCode::OK, body)
}

async fn keypair_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::keypair_item_query(v), &p)?;
    let k = s
        .keypair_get(&ctx, v, &name, first_param(&p, "user_id"))
        .await?;
    ok(StatusCode::OK, k.show(v))
}

async fn keypair_delete(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::keypair_item_query(v), &p)?;
    s.keypair_delete(&ctx, v, &name, first_param(&p, "user_id"))
        .await?;
    empty(if v.at_least(2, 2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    })
}

// ---- quotas ---------------------------------------------------------------------------------

/// A quota set at `v` (quota sets drop the network resources at 2.36).
fn quota_set_body<T: Copy>(
    v: ApiVersion,
    id: Option<&str>,
    values: &BTreeMap<Resource, T>,
    show: impl Fn(T) -> Value,
) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    for (r, val) in values {
        if r.visible(v, (2, 36)) {
            m.insert(r.name().into(), show(*val));
        }
    }
    json!({ "quota_set": m })
}

fn user_param(p: &[(String, String)]) -> Option<&str> {
    first_param(p, "user_id")
}

async fn quota_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::quota_set_query(v), &p)?;
    let l = s.quota_show(&ctx, &id, user_param(&p)).await?;
    ok(
        StatusCode::OK,
        quota_set_body(v, Some(&id), &l, |x| json!(x)),
    )
}

async fn quota_detail(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::quota_set_query(v), &p)?;
    let d = s.quota_detail(&ctx, &id, user_param(&p)).await?;
    ok(
        StatusCode::OK,
        quota_set_body(
            v,
            Some(&id),
            &d,
            |d: Detail| json!({"in_use": d.in_use, "limit": d.limit, "reserved": 0}),
        ),
    )
}

async fn quota_defaults(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    let l = s.quota_defaults(&ctx, &id).await?;
    ok(
        StatusCode::OK,
        quota_set_body(v, Some(&id), &l, |x| json!(x)),
    )
}

async fn quota_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::quota_set_update(v), &b)?;
    validate_query(&schemas::quota_set_query(v), &p)?;
    let l = s.quota_update(&ctx, &id, user_param(&p), &b).await?;
    // The update answer has no `id`, as in v2.
    ok(StatusCode::OK, quota_set_body(v, None, &l, |x| json!(x)))
}

async fn quota_delete(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::quota_set_query(v), &p)?;
    s.quota_delete(&ctx, &id, user_param(&p)).await?;
    empty(StatusCode::ACCEPTED)
}

/// A quota class set at `v`: network resources go at 2.50, injected files at 2.57, and the
/// server group resources only appear from 2.50.
fn quota_class_body(v: ApiVersion, id: Option<&str>, l: &Limits) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    for (r, val) in l {
        let server_group = matches!(r, Resource::ServerGroups | Resource::ServerGroupMembers);
        if r.visible(v, (2, 50)) && (v.at_least(2, 50) || !server_group) {
            m.insert(r.name().into(), json!(val));
        }
    }
    json!({ "quota_class_set": m })
}

async fn quota_class_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::empty_query(v, (2, 102)), &p)?;
    let l = s.quota_class_show(&ctx, &id).await?;
    ok(StatusCode::OK, quota_class_body(v, Some(&id), &l))
}

async fn quota_class_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::quota_class_update(v), &b)?;
    let l = s.quota_class_update(&ctx, &id, &b).await?;
    ok(StatusCode::OK, quota_class_body(v, None, &l))
}

/// `GET /limits` (views/limits.py): absolute limits by their API names, then usage.
async fn limits(State(s): S, Auth(ctx): Auth, v: ApiVersion, Query(p): Params) -> Result<Response> {
    validate_query(&schemas::limits_query(v), &p)?;
    let d = s.limits(&ctx, param(&p, "tenant_id")).await?;
    let filtered = |r: Resource| -> bool {
        let v236 = matches!(
            r,
            Resource::FloatingIps | Resource::SecurityGroups | Resource::SecurityGroupRules
        );
        let v257 = matches!(
            r,
            Resource::InjectedFiles | Resource::InjectedFileContentBytes
        );
        (v.at_least(2, 36) && v236) || (v.at_least(2, 57) && (v236 || v257))
    };
    let mut absolute = Map::new();
    for (r, detail) in &d {
        if filtered(*r) {
            continue;
        }
        let names: &[&str] = match r {
            Resource::Ram => &["maxTotalRAMSize"],
            Resource::Instances => &["maxTotalInstances"],
            Resource::Cores => &["maxTotalCores"],
            Resource::KeyPairs => &["maxTotalKeypairs"],
            Resource::FloatingIps => &["maxTotalFloatingIps"],
            Resource::MetadataItems => &["maxServerMeta", "maxImageMeta"],
            Resource::InjectedFiles => &["maxPersonality"],
            Resource::InjectedFileContentBytes => &["maxPersonalitySize"],
            Resource::SecurityGroups => &["maxSecurityGroups"],
            Resource::SecurityGroupRules => &["maxSecurityGroupRules"],
            Resource::ServerGroups => &["maxServerGroups"],
            Resource::ServerGroupMembers => &["maxServerGroupMembers"],
            _ => &[],
        };
        for name in names {
            if *name == "maxImageMeta" && v.at_least(2, 39) {
                continue;
            }
            absolute.insert((*name).into(), json!(detail.limit));
        }
    }
    for (name, r) in [
        ("totalRAMUsed", Resource::Ram),
        ("totalCoresUsed", Resource::Cores),
        ("totalInstancesUsed", Resource::Instances),
        ("totalFloatingIpsUsed", Resource::FloatingIps),
        ("totalSecurityGroupsUsed", Resource::SecurityGroups),
        ("totalServerGroupsUsed", Resource::ServerGroups),
    ] {
        if !filtered(r)
            && let Some(detail) = d.get(&r)
        {
            absolute.insert(name.into(), json!(detail.in_use));
        }
    }
    ok(
        StatusCode::OK,
        json!({"limits": {"rate": [], "absolute": absolute}}),
    )
}

// ---- availability zones and services --------------------------------------------------------

async fn az_common(
    s: &Compute,
    ctx: &ferro_common::RequestContext,
    v: ApiVersion,
    p: &[(String, String)],
    detail: bool,
) -> Result<Response> {
    validate_query(&schemas::empty_query(v, (2, 102)), p)?;
    let zones = s.availability_zones(ctx, detail).await?;
    let info: Vec<Value> = zones
        .into_iter()
        .map(|z| {
            let hosts = z.hosts.map(|hosts| {
                let mut out = Map::new();
                for (host, services) in hosts {
                    let mut sv = Map::new();
                    for (binary, h) in services {
                        sv.insert(
                            binary,
                            json!({"available": h.available, "active": h.active,
                            "updated_at": h.updated_at.map(python_isoformat)}),
                        );
                    }
                    out.insert(host, Value::Object(sv));
                }
                Value::Object(out)
            });
            json!({"zoneName": z.name, "zoneState": {"available": z.available}, "hosts": hosts})
        })
        .collect();
    ok(StatusCode::OK, json!({ "availabilityZoneInfo": info }))
}

async fn az_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    az_common(&s, &ctx, v, &p, false).await
}

async fn az_detail(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    az_common(&s, &ctx, v, &p, true).await
}

async fn service_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::services_query(v), &p)?;
    let services = s
        .services(&ctx, param(&p, "host"), param(&p, "binary"))
        .await?;
    let now = ferro_common::time::now_micros();
    let items: Vec<Value> = services.iter().map(|x| x.show(v, now)).collect();
    ok(StatusCode::OK, json!({ "services": items }))
}

/// `PUT /os-services/{action}` before 2.53 (`enable`, `disable`, `disable-log-reason`, from
/// 2.11 `force-down`; the service is `host` and `binary` in the body, the answer only what
/// changed) and `PUT /os-services/{uuid}` from 2.53 (`status`, `disabled_reason`,
/// `forced_down`; the answer is the whole service).
async fn service_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::service_update(v), &b)?;
    let text = |k: &str| b.get(k).and_then(Value::as_str);
    let forced_down = b
        .get("forced_down")
        .and_then(crate::manager::parse_bool_strict);
    if v.at_least(2, 53) {
        let uuid = uuid::Uuid::parse_str(&id)
            .map_err(|_| Fault::bad_request(format!("Invalid uuid {id}")))?
            .to_string();
        let mut change = ServiceChange {
            forced_down,
            ..ServiceChange::default()
        };
        match text("status") {
            Some("enabled") => {
                if text("disabled_reason").is_some() {
                    return Err(Fault::bad_request(
                        "Specifying 'disabled_reason' with status 'enabled' is invalid.",
                    ));
                }
                change.disabled = Some((false, None));
            }
            Some(_) => change.disabled = Some((true, text("disabled_reason").map(String::from))),
            None => {}
        }
        let svc = s
            .service_update(&ctx, ServiceKey::Uuid(&uuid), &change)
            .await?;
        let now = ferro_common::time::now_micros();
        return ok(StatusCode::OK, json!({ "service": svc.show(v, now) }));
    }
    s.authorize(&ctx, "os_compute_api:os-services:update", json!({}))?;
    let (host, binary) = (
        text("host").unwrap_or_default(),
        text("binary").unwrap_or_default(),
    );
    let mut answer = json!({"host": host, "binary": binary});
    let change = match id.as_str() {
        "enable" => {
            answer["status"] = json!("enabled");
            ServiceChange {
                disabled: Some((false, None)),
                ..ServiceChange::default()
            }
        }
        "disable" => {
            answer["status"] = json!("disabled");
            ServiceChange {
                disabled: Some((true, None)),
                ..ServiceChange::default()
            }
        }
        "disable-log-reason" => {
            let reason = text("disabled_reason")
                .ok_or_else(|| Fault::bad_request("Missing disabled reason field"))?;
            answer["status"] = json!("disabled");
            answer["disabled_reason"] = json!(reason);
            ServiceChange {
                disabled: Some((true, Some(reason.to_string()))),
                ..ServiceChange::default()
            }
        }
        "force-down" if v.at_least(2, 11) => {
            let down =
                forced_down.ok_or_else(|| Fault::bad_request("Missing forced_down field"))?;
            answer["forced_down"] = json!(down);
            ServiceChange {
                forced_down: Some(down),
                ..ServiceChange::default()
            }
        }
        _ => return Err(Fault::not_found("Unknown action")),
    };
    s.service_update(&ctx, ServiceKey::HostBinary(host, binary), &change)
        .await?;
    ok(StatusCode::OK, json!({ "service": answer }))
}

/// `DELETE /os-services/{id}`: the integer id before 2.53, the uuid from 2.53.
async fn service_delete(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    s.authorize(&ctx, "os_compute_api:os-services:delete", json!({}))?;
    let by_uuid = v.at_least(2, 53);
    let key = if by_uuid {
        uuid::Uuid::parse_str(&id)
            .map_err(|_| Fault::bad_request(format!("Invalid uuid {id}")))?
            .to_string()
    } else {
        id.trim()
            .parse::<i64>()
            .map_err(|_| Fault::bad_request("Invalid input received: id must be an integer"))?
            .to_string()
    };
    s.service_delete(&ctx, &key, by_uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- extensions -----------------------------------------------------------------------------

/// The extensions upstream still lists (nova/api/openstack/compute/extension_info.py): alias,
/// name, description. All were "updated" 2014-12-03 and share one namespace.
pub(crate) const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("NMN", "Multinic", "Multiple network support."),
    ("OS-DCF", "DiskConfig", "Disk Management Extension."),
    (
        "OS-EXT-AZ",
        "ExtendedAvailabilityZone",
        "Extended Availability Zone support.",
    ),
    (
        "OS-EXT-IMG-SIZE",
        "ImageSize",
        "Adds image size to image listings.",
    ),
    (
        "OS-EXT-IPS",
        "ExtendedIps",
        "Adds type parameter to the ip list.",
    ),
    (
        "OS-EXT-IPS-MAC",
        "ExtendedIpsMac",
        "Adds mac address parameter to the ip list.",
    ),
    (
        "OS-EXT-SRV-ATTR",
        "ExtendedServerAttributes",
        "Extended Server Attributes support.",
    ),
    ("OS-EXT-STS", "ExtendedStatus", "Extended Status support."),
    (
        "OS-FLV-DISABLED",
        "FlavorDisabled",
        "Support to show the disabled status of a flavor.",
    ),
    (
        "OS-FLV-EXT-DATA",
        "FlavorExtraData",
        "Provide additional data for flavors.",
    ),
    (
        "OS-SCH-HNT",
        "SchedulerHints",
        "Pass arbitrary key/value pairs to the scheduler.",
    ),
    (
        "OS-SRV-USG",
        "ServerUsage",
        "Adds launched_at and terminated_at on Servers.",
    ),
    ("os-access-ips", "AccessIPs", "Access IPs support."),
    (
        "os-admin-actions",
        "AdminActions",
        "Enable admin-only server actions

    Actions include: resetNetwork, injectNetworkInfo, os-resetState
    ",
    ),
    (
        "os-admin-password",
        "AdminPassword",
        "Admin password management support.",
    ),
    ("os-agents", "Agents", "Agents support."),
    (
        "os-aggregates",
        "Aggregates",
        "Admin-only aggregate administration.",
    ),
    (
        "os-assisted-volume-snapshots",
        "AssistedVolumeSnapshots",
        "Assisted volume snapshots.",
    ),
    (
        "os-attach-interfaces",
        "AttachInterfaces",
        "Attach interface support.",
    ),
    (
        "os-availability-zone",
        "AvailabilityZone",
        "1. Add availability_zone to the Create Server API.
       2. Add availability zones describing.
    ",
    ),
    (
        "os-baremetal-ext-status",
        "BareMetalExtStatus",
        "Add extended status in Baremetal Nodes v2 API.",
    ),
    (
        "os-baremetal-nodes",
        "BareMetalNodes",
        "Admin-only bare-metal node administration.",
    ),
    (
        "os-block-device-mapping",
        "BlockDeviceMapping",
        "Block device mapping boot support.",
    ),
    (
        "os-block-device-mapping-v2-boot",
        "BlockDeviceMappingV2Boot",
        "Allow boot with the new BDM data format.",
    ),
    (
        "os-cell-capacities",
        "CellCapacities",
        "Adding functionality to get cell capacities.",
    ),
    (
        "os-cells",
        "Cells",
        "Enables cells-related functionality such as adding neighbor cells,
    listing neighbor cells, and getting the capabilities of the local cell.
    ",
    ),
    ("os-certificates", "Certificates", "Certificates support."),
    (
        "os-cloudpipe",
        "Cloudpipe",
        "Adds actions to create cloudpipe instances.

    When running with the Vlan network mode, you need a mechanism to route
    from the public Internet to your vlans.  This mechanism is known as a
    cloudpipe.

    At the time of creating this class, only OpenVPN is supported.  Support for
    a SSH Bastion host is forthcoming.
    ",
    ),
    (
        "os-cloudpipe-update",
        "CloudpipeUpdate",
        "Adds the ability to set the vpn ip/port for cloudpipe instances.",
    ),
    ("os-config-drive", "ConfigDrive", "Config Drive Extension."),
    (
        "os-console-auth-tokens",
        "ConsoleAuthTokens",
        "Console token authentication support.",
    ),
    (
        "os-console-output",
        "ConsoleOutput",
        "Console log output support, with tailing ability.",
    ),
    ("os-consoles", "Consoles", "Interactive Console support."),
    (
        "os-create-backup",
        "CreateBackup",
        "Create a backup of a server.",
    ),
    (
        "os-create-server-ext",
        "Createserverext",
        "Extended support to the Create Server v1.1 API.",
    ),
    (
        "os-deferred-delete",
        "DeferredDelete",
        "Instance deferred delete.",
    ),
    ("os-evacuate", "Evacuate", "Enables server evacuation."),
    (
        "os-extended-evacuate-find-host",
        "ExtendedEvacuateFindHost",
        "Enables server evacuation without target host. Scheduler will select one to target.",
    ),
    (
        "os-extended-floating-ips",
        "ExtendedFloatingIps",
        "Adds optional fixed_address to the add floating IP command.",
    ),
    (
        "os-extended-hypervisors",
        "ExtendedHypervisors",
        "Extended hypervisors support.",
    ),
    (
        "os-extended-networks",
        "ExtendedNetworks",
        "Adds additional fields to networks.",
    ),
    (
        "os-extended-quotas",
        "ExtendedQuotas",
        "Adds ability for admins to delete quota and optionally force the update Quota command.",
    ),
    (
        "os-extended-rescue-with-image",
        "ExtendedRescueWithImage",
        "Allow the user to specify the image to use for rescue.",
    ),
    (
        "os-extended-services",
        "ExtendedServices",
        "Extended services support.",
    ),
    (
        "os-extended-services-delete",
        "ExtendedServicesDelete",
        "Extended services deletion support.",
    ),
    (
        "os-extended-status",
        "ExtendedStatus",
        "Extended Status support.",
    ),
    (
        "os-extended-volumes",
        "ExtendedVolumes",
        "Extended Volumes support.",
    ),
    ("os-fixed-ips", "FixedIPs", "Fixed IPs support."),
    ("os-flavor-access", "FlavorAccess", "Flavor access support."),
    (
        "os-flavor-extra-specs",
        "FlavorExtraSpecs",
        "Flavors extra specs support.",
    ),
    (
        "os-flavor-manage",
        "FlavorManage",
        "Flavor create/delete API support.",
    ),
    (
        "os-flavor-rxtx",
        "FlavorRxtx",
        "Support to show the rxtx status of a flavor.",
    ),
    (
        "os-flavor-swap",
        "FlavorSwap",
        "Support to show the swap status of a flavor.",
    ),
    (
        "os-floating-ip-dns",
        "FloatingIpDns",
        "Floating IP DNS support.",
    ),
    (
        "os-floating-ip-pools",
        "FloatingIpPools",
        "Floating IPs support.",
    ),
    ("os-floating-ips", "FloatingIps", "Floating IPs support."),
    (
        "os-floating-ips-bulk",
        "FloatingIpsBulk",
        "Bulk handling of Floating IPs.",
    ),
    ("os-fping", "Fping", "Fping Management Extension."),
    (
        "os-hide-server-addresses",
        "HideServerAddresses",
        "Support hiding server addresses in certain states.",
    ),
    ("os-hosts", "Hosts", "Admin-only host administration."),
    (
        "os-hypervisor-status",
        "HypervisorStatus",
        "Show hypervisor status.",
    ),
    (
        "os-hypervisors",
        "Hypervisors",
        "Admin-only hypervisor administration.",
    ),
    (
        "os-instance-actions",
        "InstanceActions",
        "View a log of actions and events taken on an instance.",
    ),
    (
        "os-instance_usage_audit_log",
        "OSInstanceUsageAuditLog",
        "Admin-only Task Log Monitoring.",
    ),
    ("os-keypairs", "Keypairs", "Keypair Support."),
    (
        "os-lock-server",
        "LockServer",
        "Enable lock/unlock server actions.",
    ),
    (
        "os-migrate-server",
        "MigrateServer",
        "Enable migrate and live-migrate server actions.",
    ),
    ("os-migrations", "Migrations", "Provide data on migrations."),
    (
        "os-multiple-create",
        "MultipleCreate",
        "Allow multiple create in the Create Server v2.1 API.",
    ),
    (
        "os-networks",
        "Networks",
        "Admin-only Network Management Extension.",
    ),
    (
        "os-networks-associate",
        "NetworkAssociationSupport",
        "Network association support.",
    ),
    (
        "os-pause-server",
        "PauseServer",
        "Enable pause/unpause server actions.",
    ),
    ("os-personality", "Personality", "Personality support."),
    (
        "os-preserve-ephemeral-rebuild",
        "PreserveEphemeralOnRebuild",
        "Allow preservation of the ephemeral partition on rebuild.",
    ),
    (
        "os-quota-class-sets",
        "QuotaClasses",
        "Quota classes management support.",
    ),
    ("os-quota-sets", "Quotas", "Quotas management support."),
    ("os-rescue", "Rescue", "Instance rescue mode."),
    (
        "os-security-group-default-rules",
        "SecurityGroupDefaultRules",
        "Default rules for security group support.",
    ),
    (
        "os-security-groups",
        "SecurityGroups",
        "Security group support.",
    ),
    (
        "os-server-diagnostics",
        "ServerDiagnostics",
        "Allow Admins to view server diagnostics through server action.",
    ),
    (
        "os-server-external-events",
        "ServerExternalEvents",
        "Server External Event Triggers.",
    ),
    (
        "os-server-group-quotas",
        "ServerGroupQuotas",
        "Adds quota support to server groups.",
    ),
    ("os-server-groups", "ServerGroups", "Server group support."),
    (
        "os-server-list-multi-status",
        "ServerListMultiStatus",
        "Allow to filter the servers by a set of status values.",
    ),
    (
        "os-server-password",
        "ServerPassword",
        "Server password support.",
    ),
    (
        "os-server-sort-keys",
        "ServerSortKeys",
        "Add sorting support in get Server v2 API.",
    ),
    (
        "os-server-start-stop",
        "ServerStartStop",
        "Start/Stop instance compute API support.",
    ),
    ("os-services", "Services", "Services support."),
    ("os-shelve", "Shelve", "Instance shelve mode."),
    (
        "os-simple-tenant-usage",
        "SimpleTenantUsage",
        "Simple tenant usage extension.",
    ),
    (
        "os-suspend-server",
        "SuspendServer",
        "Enable suspend/resume server actions.",
    ),
    (
        "os-tenant-networks",
        "OSTenantNetworks",
        "Tenant-based Network Management Extension.",
    ),
    (
        "os-used-limits",
        "UsedLimits",
        "Provide data on limited resources that are being used.",
    ),
    (
        "os-used-limits-for-admin",
        "UsedLimitsForAdmin",
        "Provide data to admin on limited resources used by other tenants.",
    ),
    (
        "os-user-data",
        "UserData",
        "Add user_data to the Create Server API.",
    ),
    (
        "os-user-quotas",
        "UserQuotas",
        "Project user quota support.",
    ),
    (
        "os-virtual-interfaces",
        "VirtualInterfaces",
        "Virtual interface support.",
    ),
    (
        "os-volume-attachment-update",
        "VolumeAttachmentUpdate",
        "Support for updating a volume attachment.",
    ),
    ("os-volumes", "Volumes", "Volumes support."),
];

fn extension_body(e: &(&str, &str, &str)) -> Value {
    json!({"alias": e.0, "name": e.1, "description": e.2, "links": [],
        "namespace": "http://docs.openstack.org/compute/ext/fake_xml",
        "updated": "2014-12-03T00:00:00Z"})
}

/// `GET /extensions`: the fixed list upstream keeps for old clients.
async fn extension_list(State(s): S, Auth(ctx): Auth) -> Result<Response> {
    s.authorize(&ctx, "os_compute_api:extensions", json!({}))?;
    let list: Vec<Value> = EXTENSIONS.iter().map(extension_body).collect();
    ok(StatusCode::OK, json!({ "extensions": list }))
}

/// `GET /extensions/{alias}`.
async fn extension_show(
    State(s): S,
    Auth(ctx): Auth,
    Path(alias): Path<String>,
) -> Result<Response> {
    s.authorize(&ctx, "os_compute_api:extensions", json!({}))?;
    match EXTENSIONS.iter().find(|e| e.0 == alias) {
        Some(e) => ok(StatusCode::OK, json!({ "extension": extension_body(e) })),
        None => Err(Fault::not_found("The resource could not be found.")),
    }
}

// ---- os-hosts (until 2.42) -------------------------------------------------------------------

fn hosts_api_gone(v: ApiVersion) -> Result<()> {
    if v.at_least(2, 43) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    Ok(())
}

fn host_not_found(host: &str) -> Fault {
    Fault::not_found(format!("Compute host {host} could not be found."))
}

/// `GET /os-hosts`: one entry per enabled non-API service, optionally of one zone.
async fn host_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    hosts_api_gone(v)?;
    s.authorize(&ctx, "os_compute_api:os-hosts:list", json!({}))?;
    let zone = param(&p, "zone").filter(|z| !z.is_empty());
    let hosts: Vec<Value> = crate::db::service_list(&mut &s.db)
        .await?
        .iter()
        .filter(|x| !x.disabled)
        .filter(|x| !matches!(x.binary.as_str(), "nova-osapi_compute" | "nova-metadata"))
        .filter(|x| zone.is_none_or(|z| x.zone() == z))
        .map(|x| json!({"host_name": x.host, "service": x.topic, "zone": x.zone()}))
        .collect();
    ok(StatusCode::OK, json!({ "hosts": hosts }))
}

/// `GET /os-hosts/{host}`: the compute node's totals, what its servers use, and per project.
async fn host_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(host): Path<String>,
) -> Result<Response> {
    hosts_api_gone(v)?;
    s.authorize(&ctx, "os_compute_api:os-hosts:show", json!({}))?;
    let node = crate::db::node_list(&mut &s.db)
        .await?
        .into_iter()
        .find(|n| n.host == host)
        .ok_or_else(|| host_not_found(&host))?;
    let instances: Vec<crate::model::Instance> = crate::db::instance_list(&mut &s.db, None)
        .await?
        .into_iter()
        .filter(|i| i.host.as_deref() == Some(host.as_str()))
        .collect();
    let res = |project: &str, cpu: i64, mem: i64, disk: i64| {
        json!({"resource": {"host": host, "project": project, "cpu": cpu,
            "memory_mb": mem, "disk_gb": disk}})
    };
    let sum = |list: &[&crate::model::Instance]| {
        list.iter().fold((0, 0, 0), |(c, m, d), i| {
            (
                c + i.flavor.vcpus,
                m + i.flavor.memory_mb,
                d + i.flavor.root_gb + i.flavor.ephemeral_gb,
            )
        })
    };
    let all: Vec<&crate::model::Instance> = instances.iter().collect();
    let (c, m, d) = sum(&all);
    let mut out = vec![
        res("(total)", node.vcpus, node.memory_mb, node.local_gb),
        res("(used_now)", c, m, d),
        res("(used_max)", c, m, d),
    ];
    let mut projects: BTreeMap<&str, Vec<&crate::model::Instance>> = BTreeMap::new();
    for i in &instances {
        projects.entry(i.project_id.as_str()).or_default().push(i);
    }
    for (project, list) in &projects {
        let (c, m, d) = sum(list);
        out.push(res(project, c, m, d));
    }
    ok(StatusCode::OK, json!({ "host": out }))
}

/// A compute host by name: 404 when no service runs there.
async fn known_host(s: &Compute, host: &str) -> Result<()> {
    let services = crate::db::service_list(&mut &s.db).await?;
    if services.iter().any(|x| x.host == host) {
        Ok(())
    } else {
        Err(host_not_found(host))
    }
}

/// What upstream answers when the virt driver cannot do a host operation.
fn host_op_unsupported() -> Fault {
    Fault::new(
        StatusCode::NOT_IMPLEMENTED,
        "Action is not supported by this hypervisor.",
    )
}

/// `PUT /os-hosts/{host}`: validated, then 501 (no driver here enables or drains a host
/// through this API; `os-services` does that).
async fn host_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(host): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    hosts_api_gone(v)?;
    validate_body(&schemas::host_update(), &b)?;
    s.authorize(&ctx, "os_compute_api:os-hosts:update", json!({}))?;
    known_host(&s, &host).await?;
    Err(host_op_unsupported())
}

async fn host_power(
    s: &Compute,
    ctx: &ferro_common::RequestContext,
    v: ApiVersion,
    host: &str,
    rule: &str,
) -> Result<Response> {
    hosts_api_gone(v)?;
    s.authorize(ctx, rule, json!({}))?;
    known_host(s, host).await?;
    Err(host_op_unsupported())
}

/// `GET /os-hosts/{host}/startup`.
async fn host_startup(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(host): Path<String>,
) -> Result<Response> {
    host_power(&s, &ctx, v, &host, "os_compute_api:os-hosts:start").await
}

/// `GET /os-hosts/{host}/shutdown`.
async fn host_shutdown(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(host): Path<String>,
) -> Result<Response> {
    host_power(&s, &ctx, v, &host, "os_compute_api:os-hosts:shutdown").await
}

/// `GET /os-hosts/{host}/reboot`.
async fn host_reboot(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(host): Path<String>,
) -> Result<Response> {
    host_power(&s, &ctx, v, &host, "os_compute_api:os-hosts:reboot").await
}

// ---- os-instance_usage_audit_log --------------------------------------------------------------

/// The audit log of the last month completed before `before` (upstream's default
/// `instance_usage_audit_period`): no audit task runs here, so every compute host is
/// listed as not run.
async fn audit_log(s: &Compute, before: chrono::NaiveDateTime) -> Result<Value> {
    use chrono::Datelike;
    let end = chrono::NaiveDate::from_ymd_opt(before.year(), before.month(), 1)
        .unwrap_or_default()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let begin_day = end.date() - chrono::Days::new(1);
    let begin = chrono::NaiveDate::from_ymd_opt(begin_day.year(), begin_day.month(), 1)
        .unwrap_or_default()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let mut hosts: Vec<String> = crate::db::service_list(&mut &s.db)
        .await?
        .into_iter()
        .filter(|x| x.topic == "compute")
        .map(|x| x.host)
        .collect();
    hosts.sort();
    hosts.dedup();
    let n = hosts.len();
    Ok(json!({
        "period_beginning": begin.format("%Y-%m-%d %H:%M:%S").to_string(),
        "period_ending": end.format("%Y-%m-%d %H:%M:%S").to_string(),
        "num_hosts": n, "num_hosts_done": 0, "num_hosts_running": 0, "num_hosts_not_run": n,
        "hosts_not_run": hosts, "total_instances": 0, "total_errors": 0,
        "overall_status": if n == 0 { "ALL hosts done. 0 errors.".to_string() }
            else { format!("0 of {n} hosts done. 0 errors.") },
        "log": {},
    }))
}

/// `GET /os-instance_usage_audit_log`.
async fn audit_log_list(State(s): S, Auth(ctx): Auth) -> Result<Response> {
    s.authorize(
        &ctx,
        "os_compute_api:os-instance-usage-audit-log:list",
        json!({}),
    )?;
    let now = chrono::Utc::now().naive_utc();
    ok(
        StatusCode::OK,
        json!({ "instance_usage_audit_logs": audit_log(&s, now).await? }),
    )
}

/// `GET /os-instance_usage_audit_log/{before}`: `YYYY-mm-dd HH:MM:SS[.ffffff]`, 400 else.
async fn audit_log_show(
    State(s): S,
    Auth(ctx): Auth,
    Path(before): Path<String>,
) -> Result<Response> {
    s.authorize(
        &ctx,
        "os_compute_api:os-instance-usage-audit-log:show",
        json!({}),
    )?;
    let fmt = if before.contains('.') {
        "%Y-%m-%d %H:%M:%S%.f"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    let t = chrono::NaiveDateTime::parse_from_str(&before, fmt)
        .map_err(|_| Fault::bad_request(format!("Invalid timestamp for date {before}")))?;
    ok(
        StatusCode::OK,
        json!({ "instance_usage_audit_log": audit_log(&s, t).await? }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn next_links_only_for_full_pages() {
        let p = q(&[("limit", "2"), ("sort_key", "name")]);
        let l = next_link("http://h:8774", "flavors", &p, 2, Some("f 2")).unwrap();
        assert_eq!(
            l[0]["href"],
            "http://h:8774/v2.1/flavors?limit=2&marker=f+2&sort_key=name"
        );
        assert!(next_link("http://h:8774", "flavors", &p, 1, Some("x")).is_none());
        assert!(next_link("http://h:8774", "flavors", &q(&[("limit", "0")]), 0, None).is_none());
    }

    #[test]
    fn actions_name_one_key() {
        assert_eq!(
            action_name(&json!({"addTenantAccess": {}})).unwrap(),
            "addTenantAccess"
        );
        assert!(action_name(&json!({"a": 1, "b": 2})).is_err());
        assert!(action_name(&Value::Null).is_err());
    }
}
