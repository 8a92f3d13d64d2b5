//! Placement's routes and their handlers: parse (by microversion), authorise, delegate to
//! [`Placement`], answer in the microversion's shape.
//!
//! One middleware does what upstream's WSGI stack does around the handlers, in its order:
//! authenticate (everything but `/`), negotiate `OpenStack-API-Version: placement X.Y`
//! (absent: 1.0; `latest`: 1.39; malformed: 400; unserved: 406 with the version range),
//! answer with `OpenStack-API-Version` and `Vary`, and render every fault as placement's
//! `{"errors": [{"status", "title", "detail", "code" (1.23+), "request_id"}]}`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LAST_MODIFIED, LOCATION, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferro_common::RequestContext;
use ferro_http::{Auth, RequestId};
use serde_json::{Map, Value, json};

use crate::candidates::{CandidateRequest, Candidates, GroupPolicy, RequestGroup};
use crate::manager::Placement;
use crate::model::{
    self, AggregateFilter, ConsumerAllocations, ConsumerGeneration, ConsumerInfo, Inventory,
    MAX_INT, MAX_VERSION, MIN_VERSION, PlacementError, Provider, ProviderFilter, Resources,
    SQL_SP_FLOAT_MAX, TraitFilter, Version, codes,
};
use crate::policy::authorize;

type S = State<Arc<Placement>>;
type Ctx = Extension<RequestContext>;
type V = Extension<Version>;
type ApiResult = Result<Response, Fault>;

const API_VERSION_HEADER: &str = "openstack-api-version";

/// A placement error on its way out. The middleware renders its body, because only it
/// knows the microversion (the `code` appears from 1.23) and the request id.
#[derive(Debug)]
pub struct Fault(pub PlacementError);

#[derive(Clone, Debug)]
struct PendingFault(PlacementError);

impl<E: Into<PlacementError>> From<E> for Fault {
    fn from(e: E) -> Self {
        Fault(e.into())
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = status.into_response();
        resp.extensions_mut().insert(PendingFault(self.0));
        resp
    }
}

fn bad(detail: impl Into<String>) -> Fault {
    Fault(PlacementError::bad_request(detail))
}

/// webob's explanation for each status, which leads every placement fault's detail.
fn explanation(status: u16) -> &'static str {
    match status {
        400 => {
            "The server could not comply with the request since it is either malformed or otherwise incorrect."
        }
        401 => {
            "This server could not verify that you are authorized to access the document you requested."
        }
        403 => "Access was denied to this resource.",
        404 => "The resource could not be found.",
        405 => "The method specified is not allowed for this resource.",
        406 => "The resource could not be generated that was acceptable to your browser.",
        409 => "There was a conflict when trying to complete your request.",
        415 => "The request media type is not supported by this server.",
        _ => "The server has either erred or is incapable of performing the requested operation.",
    }
}

/// Placement's fault body (util.json_error_formatter): webob's explanation and the
/// message, tags stripped, as `detail`.
fn fault_body(err: &PlacementError, version: Option<Version>, request_id: Option<&str>) -> Value {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut e = Map::new();
    e.insert("status".into(), json!(err.status));
    e.insert(
        "title".into(),
        json!(status.canonical_reason().unwrap_or("Error")),
    );
    e.insert(
        "detail".into(),
        json!(format!("{}\n\n {}  ", explanation(err.status), err.detail)),
    );
    if version.is_some_and(|v| v.at_least(23)) {
        e.insert("code".into(), json!(err.code));
    }
    if let Some(id) = request_id {
        e.insert("request_id".into(), json!(id));
    }
    if err.status == 406 && version.is_none() {
        e.insert("max_version".into(), json!(MAX_VERSION.to_string()));
        e.insert("min_version".into(), json!(MIN_VERSION.to_string()));
    }
    json!({"errors": [Value::Object(e)]})
}

fn render_fault(
    err: &PlacementError,
    version: Option<Version>,
    request_id: Option<&str>,
) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(fault_body(err, version, request_id))).into_response()
}

/// The microversion asked for in `headers`, as microversion_parse extracts it.
fn negotiate(headers: &HeaderMap) -> Result<Version, PlacementError> {
    let joined: Vec<&str> = headers
        .get_all(API_VERSION_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = joined.join(",");
    let mut found = None;
    for item in joined.split(',').rev() {
        let mut parts = item.trim().splitn(2, char::is_whitespace);
        let (Some(service), Some(version)) = (parts.next(), parts.next()) else {
            continue;
        };
        if service.eq_ignore_ascii_case("placement") {
            found = Some(version.trim().to_string());
            break;
        }
    }
    let Some(text) = found else {
        return Ok(MIN_VERSION);
    };
    if text == "latest" {
        return Ok(MAX_VERSION);
    }
    let v = Version::parse(&text).ok_or_else(|| {
        PlacementError::bad_request(format!(
            "Invalid microversion: invalid version string: {text}"
        ))
    })?;
    if !v.is_served() {
        return Err(PlacementError::new(
            406,
            format!("Invalid microversion: Unacceptable version header: {text}"),
        ));
    }
    Ok(v)
}

/// Authentication, microversion, headers and fault rendering around every route.
async fn placement_layer(req: Request, next: Next) -> Response {
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let (mut parts, body) = req.into_parts();
    if parts.uri.path() != "/" && !parts.uri.path().is_empty() {
        match Auth::from_request_parts(&mut parts, &()).await {
            Ok(Auth(ctx)) => {
                parts.extensions.insert(ctx);
            }
            Err(rejection) => return rejection.into_response(),
        }
    }
    let version = match negotiate(&parts.headers) {
        Ok(v) => v,
        Err(e) => return render_fault(&e, None, request_id.as_deref()),
    };
    parts.extensions.insert(version);
    // handler.py: a body needs a content type.
    let has_body = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>());
    let early = match has_body {
        Some(Err(_)) => Some(PlacementError::bad_request(
            "content-length header must be an integer",
        )),
        Some(Ok(n)) if n > 0 && !parts.headers.contains_key(CONTENT_TYPE) => Some(
            PlacementError::bad_request("content-type header required when content-length > 0"),
        ),
        _ => None,
    };
    let mut resp = match early {
        Some(e) => render_fault(&e, Some(version), request_id.as_deref()),
        None => {
            let resp = next.run(Request::from_parts(parts, body)).await;
            if let Some(PendingFault(e)) = resp.extensions().get::<PendingFault>().cloned() {
                render_fault(&e, Some(version), request_id.as_deref())
            } else if resp.status().is_client_error() || resp.status().is_server_error() {
                // The router's own refusals (no route, wrong method, body over the limit,
                // undecodable path) carry axum's text: answer them as placement faults.
                let status = resp.status().as_u16();
                let detail = match status {
                    413 => "Request is too large.",
                    _ => "",
                };
                let allow = resp.headers().get("allow").cloned();
                let mut r = render_fault(
                    &PlacementError::new(status, detail),
                    Some(version),
                    request_id.as_deref(),
                );
                if let Some(a) = allow {
                    r.headers_mut().insert("allow", a);
                }
                r
            } else {
                resp
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&format!("placement {version}")) {
        resp.headers_mut().insert(API_VERSION_HEADER, v);
    }
    resp.headers_mut()
        .insert(VARY, HeaderValue::from_static(API_VERSION_HEADER));
    resp
}

/// The placement API's router.
pub fn router(state: Arc<Placement>) -> Router {
    Router::new()
        .route("/", get(home))
        .route(
            "/resource_classes",
            get(resource_class_list).post(resource_class_create),
        )
        .route(
            "/resource_classes/{name}",
            get(resource_class_show)
                .put(resource_class_update)
                .delete(resource_class_delete),
        )
        .route(
            "/resource_providers",
            get(provider_list).post(provider_create),
        )
        .route(
            "/resource_providers/{uuid}",
            get(provider_show)
                .put(provider_update)
                .delete(provider_delete),
        )
        .route(
            "/resource_providers/{uuid}/inventories",
            get(inventory_list)
                .post(inventory_create)
                .put(inventories_set)
                .delete(inventories_delete),
        )
        .route(
            "/resource_providers/{uuid}/inventories/{rc}",
            get(inventory_show)
                .put(inventory_update)
                .delete(inventory_delete),
        )
        .route("/resource_providers/{uuid}/usages", get(provider_usages))
        .route(
            "/resource_providers/{uuid}/aggregates",
            get(aggregates_show).put(aggregates_set),
        )
        .route(
            "/resource_providers/{uuid}/allocations",
            get(provider_allocations),
        )
        .route(
            "/resource_providers/{uuid}/traits",
            get(provider_traits_show)
                .put(provider_traits_set)
                .delete(provider_traits_delete),
        )
        .route("/allocations", axum::routing::post(allocations_post))
        .route(
            "/allocations/{consumer}",
            get(allocations_show)
                .put(allocations_put)
                .delete(allocations_delete),
        )
        .route("/allocation_candidates", get(allocation_candidates))
        .route("/traits", get(trait_list))
        .route(
            "/traits/{name}",
            get(trait_show).put(trait_put).delete(trait_delete),
        )
        .route("/usages", get(usages))
        .layer(middleware::from_fn(placement_layer))
        .with_state(state)
}

// ---- request helpers ------------------------------------------------------------------

/// `context.can(rule)` with upstream's default target.
fn can(s: &Placement, ctx: &RequestContext, rule: &str) -> Result<(), Fault> {
    can_target(
        s,
        ctx,
        rule,
        &json!({"project_id": ctx.project_id, "user_id": ctx.user_id}),
    )
}

fn can_target(
    s: &Placement,
    ctx: &RequestContext,
    rule: &str,
    target: &Value,
) -> Result<(), Fault> {
    authorize(&s.enforcer, ctx, rule, target).map_err(|e| match e {
        ferro_common::Error::Forbidden(_) => Fault(PlacementError::new(
            403,
            format!("Policy does not allow {rule} to be performed."),
        )),
        other => Fault(other.into()),
    })
}

/// `microversion.version_handler`: routes added at 1.`minor` answer `status` before it.
fn need(v: Version, minor: u16, status: u16) -> Result<(), Fault> {
    if v.at_least(minor) {
        Ok(())
    } else {
        Err(Fault(PlacementError::new(status, "")))
    }
}

/// `util.check_accept('application/json')`.
fn check_accept(headers: &HeaderMap) -> Result<(), Fault> {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    if accept.trim().is_empty() {
        return Ok(());
    }
    let ok = accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f64>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !q_zero && matches!(media.as_str(), "application/json" | "application/*" | "*/*")
    });
    if ok {
        Ok(())
    } else {
        Err(Fault(PlacementError::new(
            406,
            "Only application/json is provided",
        )))
    }
}

/// `util.require_content('application/json')`.
fn require_json(headers: &HeaderMap) -> Result<(), Fault> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if ct == "application/json" {
        return Ok(());
    }
    let shown = if ct.is_empty() {
        "None".to_string()
    } else {
        ct
    };
    Err(Fault(PlacementError::new(
        415,
        format!("The media type {shown} is not supported, use application/json"),
    )))
}

/// `util.extract_json` before schema checks: any JSON value.
fn parse_json(body: &Bytes) -> Result<Value, Fault> {
    serde_json::from_slice(body).map_err(|e| bad(format!("Malformed JSON: {e}")))
}

fn invalid(msg: impl std::fmt::Display) -> Fault {
    bad(format!("JSON does not validate: {msg}"))
}

fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, Fault> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| bad(format!("Invalid query string parameters: {e}")))
}

/// The last value of each query key, as `dict(req.GET)` keeps it.
fn last_values(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

fn all_values<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn unexpected_query(key: &str) -> Fault {
    bad(format!(
        "Invalid query string parameters: Additional properties are not allowed ('{key}' was \
         unexpected)"
    ))
}

/// An object body with only `allowed` keys and all of `required`.
fn object<'a>(
    v: &'a Value,
    allowed: &[&str],
    required: &[&str],
) -> Result<&'a Map<String, Value>, Fault> {
    let Value::Object(m) = v else {
        return Err(invalid(format!("{v} is not of type 'object'")));
    };
    for k in required {
        if !m.contains_key(*k) {
            return Err(invalid(format!("'{k}' is a required property")));
        }
    }
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(invalid(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    Ok(m)
}

fn int_field(m: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<Option<i64>, Fault> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => {
            let n = v
                .as_i64()
                .filter(|_| v.is_i64() || v.is_u64())
                .ok_or_else(|| invalid(format!("{v} is not of type 'integer'")))?;
            if n < min {
                return Err(invalid(format!("{n} is less than the minimum of {min}")));
            }
            if n > max {
                return Err(invalid(format!("{n} is greater than the maximum of {max}")));
            }
            Ok(Some(n))
        }
    }
}

fn string_field<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    min_len: usize,
    max_len: usize,
) -> Result<Option<&'a str>, Fault> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n < min_len {
                return Err(invalid(format!("'{s}' is too short")));
            }
            if n > max_len {
                return Err(invalid(format!("'{s}' is too long")));
            }
            Ok(Some(s))
        }
        Some(v) => Err(invalid(format!("{v} is not of type 'string'"))),
    }
}

fn uuid_value(v: &Value) -> Result<String, Fault> {
    match v.as_str() {
        Some(s) if model::is_uuid_like(s) => Ok(s.to_string()),
        Some(s) => Err(invalid(format!("'{s}' is not a 'uuid'"))),
        None => Err(invalid(format!("{v} is not of type 'string'"))),
    }
}

/// The HTTP date of `micros` (Last-Modified).
fn http_date(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A JSON answer; from 1.15 with `cache-control: no-cache` and `last-modified`
/// (`None`: now, for values with no stored time).
fn json_response(v: Version, status: StatusCode, body: Value, modified: Option<i64>) -> ApiResult {
    let mut resp = (status, axum::Json(body)).into_response();
    if v.at_least(15) {
        let when = modified
            .filter(|m| *m > 0)
            .unwrap_or_else(ferro_common::time::now_micros);
        if let Ok(h) = HeaderValue::from_str(&http_date(when)) {
            resp.headers_mut().insert(LAST_MODIFIED, h);
        }
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

fn status_only(status: StatusCode) -> ApiResult {
    Ok(status.into_response())
}

fn with_location(mut resp: Response, location: &str) -> Response {
    if let Ok(h) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, h);
    }
    resp
}

// ---- root -------------------------------------------------------------------------------

/// `GET /`: the one version, with its microversion range; no token needed.
async fn home(Extension(v): V) -> ApiResult {
    let body = json!({"versions": [{
        "id": format!("v{MIN_VERSION}"),
        "max_version": MAX_VERSION.to_string(),
        "min_version": MIN_VERSION.to_string(),
        "status": "CURRENT",
        "links": [{"rel": "self", "href": ""}],
    }]});
    json_response(v, StatusCode::OK, body, None)
}

// ---- resource classes -------------------------------------------------------------------

fn rc_json(name: &str) -> Value {
    json!({"name": name, "links": [{"rel": "self", "href": format!("/resource_classes/{name}")}]})
}

async fn resource_class_list(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
) -> ApiResult {
    need(v, 2, 404)?;
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_classes:list")?;
    let rcs = s.resource_classes().await?;
    let last = rcs.iter().map(|(_, t)| *t).max();
    let list: Vec<Value> = rcs.iter().map(|(n, _)| rc_json(n)).collect();
    json_response(v, StatusCode::OK, json!({"resource_classes": list}), last)
}

fn custom_rc_name(m: &Map<String, Value>) -> Result<String, Fault> {
    let name = string_field(m, "name", 0, 255)?.unwrap_or_default();
    if !model::is_custom_name(name) {
        return Err(invalid(format!(
            "'{name}' does not match '^CUSTOM_[A-Z0-9_]+$'"
        )));
    }
    Ok(name.to_string())
}

async fn resource_class_create(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    need(v, 2, 404)?;
    require_json(&headers)?;
    can(&s, &ctx, "placement:resource_classes:create")?;
    let data = parse_json(&body)?;
    let name = custom_rc_name(object(&data, &["name"], &["name"])?)?;
    s.resource_class_create(&name).await?;
    Ok(with_location(
        StatusCode::CREATED.into_response(),
        &format!("/resource_classes/{name}"),
    ))
}

async fn resource_class_show(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    need(v, 2, 404)?;
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_classes:show")?;
    if !s.resource_class_exists(&name).await? {
        return Err(Fault(PlacementError::not_found(format!(
            "No such resource class {name}."
        ))));
    }
    json_response(v, StatusCode::OK, rc_json(&name), None)
}

async fn resource_class_update(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    need(v, 2, 404)?;
    can(&s, &ctx, "placement:resource_classes:update")?;
    if v.at_least(7) {
        // 1.7: bodiless create-or-verify.
        if !model::is_custom_name(&name) {
            return Err(invalid(format!(
                "'{name}' does not match '^CUSTOM_[A-Z0-9_]+$'"
            )));
        }
        let created = s.resource_class_ensure(&name).await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::NO_CONTENT
        };
        return Ok(with_location(
            status.into_response(),
            &format!("/resource_classes/{name}"),
        ));
    }
    require_json(&headers)?;
    let data = parse_json(&body)?;
    let new = custom_rc_name(object(&data, &["name"], &["name"])?)?;
    s.resource_class_rename(&name, &new).await?;
    json_response(v, StatusCode::OK, rc_json(&new), None)
}

async fn resource_class_delete(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    Path(name): Path<String>,
) -> ApiResult {
    need(v, 2, 404)?;
    can(&s, &ctx, "placement:resource_classes:delete")?;
    s.resource_class_delete(&name).await?;
    status_only(StatusCode::NO_CONTENT)
}

// ---- resource providers ----------------------------------------------------------------

fn provider_json(p: &Provider, v: Version) -> Value {
    let url = format!("/resource_providers/{}", p.uuid);
    let mut rels = vec!["inventories", "usages"];
    if v.at_least(1) {
        rels.push("aggregates");
    }
    if v.at_least(6) {
        rels.push("traits");
    }
    if v.at_least(11) {
        rels.push("allocations");
    }
    let mut links = vec![json!({"rel": "self", "href": url})];
    links.extend(
        rels.iter()
            .map(|r| json!({"rel": r, "href": format!("{url}/{r}")})),
    );
    let mut out = json!({
        "uuid": p.uuid,
        "name": p.name,
        "generation": p.generation,
        "links": links,
    });
    if v.at_least(14) {
        out["parent_provider_uuid"] = json!(p.parent_uuid);
        out["root_provider_uuid"] = json!(p.root_uuid);
    }
    out
}

async fn provider_list(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_providers:list")?;
    let pairs = query_pairs(&uri)?;
    let q = last_values(&pairs);
    for key in q.keys() {
        let ok = match key.as_str() {
            "name" | "uuid" => true,
            "member_of" => v.at_least(3),
            "resources" => v.at_least(4),
            "in_tree" => v.at_least(14),
            "required" => v.at_least(18),
            _ => false,
        };
        if !ok {
            return Err(unexpected_query(key));
        }
    }
    for key in ["uuid", "in_tree"] {
        if let Some(u) = q.get(key)
            && !model::is_uuid_like(u)
        {
            return Err(bad(format!(
                "Invalid query string parameters: '{u}' is not a 'uuid'"
            )));
        }
    }
    let mut filter = ProviderFilter {
        name: q.get("name").cloned(),
        uuid: q.get("uuid").and_then(|u| model::canonical_uuid(u)),
        in_tree: q.get("in_tree").and_then(|u| model::canonical_uuid(u)),
        ..Default::default()
    };
    if q.contains_key("member_of") {
        filter.aggregates = member_of_params(v, &pairs, "")?;
    }
    if q.contains_key("required") {
        filter.traits = required_params(v, &pairs, "")?;
    }
    if let Some(r) = q.get("resources") {
        filter.resources = parse_resources(r)?;
    }
    let providers = s.providers(&filter).await?;
    let last = providers.iter().map(|p| p.updated_at).max();
    let list: Vec<Value> = providers.iter().map(|p| provider_json(p, v)).collect();
    json_response(v, StatusCode::OK, json!({"resource_providers": list}), last)
}

async fn provider_create(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    require_json(&headers)?;
    can(&s, &ctx, "placement:resource_providers:create")?;
    let data = parse_json(&body)?;
    let allowed: &[&str] = if v.at_least(14) {
        &["name", "uuid", "parent_provider_uuid"]
    } else {
        &["name", "uuid"]
    };
    let m = object(&data, allowed, &["name"])?;
    let name = string_field(m, "name", 0, 200)?
        .unwrap_or_default()
        .to_string();
    let uuid = match m.get("uuid") {
        Some(u) => Some(uuid_value(u)?),
        None => None,
    };
    let parent = match m.get("parent_provider_uuid") {
        None | Some(Value::Null) => None,
        Some(u) => Some(
            uuid_value(u)
                .map_err(|_| invalid(format!("{u} is not valid under any of the given schemas")))?,
        ),
    };
    // Normalise to the dashed form, as upstream does with uuid.UUID().
    let uuid = uuid.and_then(|u| model::canonical_uuid(&u));
    let parent = parent.and_then(|u| model::canonical_uuid(&u));
    let p = s
        .provider_create(&name, uuid.as_deref(), parent.as_deref())
        .await?;
    let location = format!("/resource_providers/{}", p.uuid);
    if v.at_least(20) {
        let resp = json_response(v, StatusCode::OK, provider_json(&p, v), Some(p.updated_at))?;
        Ok(with_location(resp, &location))
    } else {
        Ok(with_location(
            StatusCode::CREATED.into_response(),
            &location,
        ))
    }
}

async fn provider_show(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_providers:show")?;
    let p = s.provider(&uuid).await?;
    json_response(v, StatusCode::OK, provider_json(&p, v), Some(p.updated_at))
}

async fn provider_update(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_json(&headers)?;
    can(&s, &ctx, "placement:resource_providers:update")?;
    s.provider(&uuid).await?;
    let data = parse_json(&body)?;
    let allowed: &[&str] = if v.at_least(14) {
        &["name", "parent_provider_uuid"]
    } else {
        &["name"]
    };
    let m = object(&data, allowed, &["name"])?;
    let name = string_field(m, "name", 0, 200)?
        .unwrap_or_default()
        .to_string();
    let parent: Option<Option<String>> = match m.get("parent_provider_uuid") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(u) => Some(Some(
            uuid_value(u)
                .map_err(|_| invalid(format!("{u} is not valid under any of the given schemas")))
                .map(|u| model::canonical_uuid(&u).unwrap_or(u))?,
        )),
    };
    let p = s
        .provider_update(
            &uuid,
            &name,
            parent.as_ref().map(|p| p.as_deref()),
            v.at_least(37),
        )
        .await?;
    json_response(v, StatusCode::OK, provider_json(&p, v), Some(p.updated_at))
}

async fn provider_delete(State(s): S, Extension(ctx): Ctx, Path(uuid): Path<String>) -> ApiResult {
    can(&s, &ctx, "placement:resource_providers:delete")?;
    s.provider_delete(&uuid).await?;
    status_only(StatusCode::NO_CONTENT)
}

// ---- inventories -------------------------------------------------------------------------

fn inventory_json(inv: &Inventory) -> Value {
    json!({
        "total": inv.total,
        "reserved": inv.reserved,
        "min_unit": inv.min_unit,
        "max_unit": inv.max_unit,
        "step_size": inv.step_size,
        "allocation_ratio": inv.allocation_ratio,
    })
}

fn inventories_json(generation: i64, invs: &BTreeMap<String, Inventory>) -> Value {
    let map: Map<String, Value> = invs
        .iter()
        .map(|(rc, inv)| (rc.clone(), inventory_json(inv)))
        .collect();
    json!({"resource_provider_generation": generation, "inventories": map})
}

/// One inventory answer. Upstream adds the generation only when it is truthy.
fn inventory_answer(v: Version, status: StatusCode, p: &Provider, inv: &Inventory) -> ApiResult {
    let mut body = inventory_json(inv);
    if p.generation != 0 {
        body["resource_provider_generation"] = json!(p.generation);
    }
    json_response(v, status, body, Some(inv.updated_at))
}

const INVENTORY_FIELDS: &[&str] = &[
    "resource_provider_generation",
    "total",
    "reserved",
    "min_unit",
    "max_unit",
    "step_size",
    "allocation_ratio",
];

/// An inventory record body (schemas/inventory.py) with upstream's defaults filled in.
fn parse_inventory(rc: &str, m: &Map<String, Value>) -> Result<Inventory, Fault> {
    let mut inv = Inventory::new(rc, 0);
    inv.total = int_field(m, "total", 1, MAX_INT)?.unwrap_or(0);
    if let Some(n) = int_field(m, "reserved", 0, MAX_INT)? {
        inv.reserved = n;
    }
    if let Some(n) = int_field(m, "min_unit", 1, MAX_INT)? {
        inv.min_unit = n;
    }
    if let Some(n) = int_field(m, "max_unit", 1, MAX_INT)? {
        inv.max_unit = n;
    }
    if let Some(n) = int_field(m, "step_size", 1, MAX_INT)? {
        inv.step_size = n;
    }
    if let Some(r) = m.get("allocation_ratio") {
        let r = r
            .as_f64()
            .ok_or_else(|| invalid(format!("{r} is not of type 'number'")))?;
        if r > SQL_SP_FLOAT_MAX {
            return Err(invalid(format!(
                "{r} is greater than the maximum of {SQL_SP_FLOAT_MAX}"
            )));
        }
        inv.allocation_ratio = r;
    }
    Ok(inv)
}

async fn inventory_list(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_providers:inventories:list")?;
    let (p, invs) = s.inventories(&uuid).await.map_err(|e| match e.status {
        404 => PlacementError::not_found(format!(
            "No resource provider with uuid {uuid} found : {}",
            e.detail
        )),
        _ => e,
    })?;
    let last = invs.values().map(|i| i.updated_at).max();
    json_response(
        v,
        StatusCode::OK,
        inventories_json(p.generation, &invs),
        last,
    )
}

async fn inventory_show(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path((uuid, rc)): Path<(String, String)>,
) -> ApiResult {
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_providers:inventories:show")?;
    let (p, invs) = s.inventories(&uuid).await.map_err(|e| match e.status {
        404 => PlacementError::not_found(format!(
            "No resource provider with uuid {uuid} found : {}",
            e.detail
        )),
        _ => e,
    })?;
    let inv = invs.get(&rc).ok_or_else(|| {
        Fault(PlacementError::not_found(format!(
            "No inventory of class {rc} for {uuid}"
        )))
    })?;
    inventory_answer(v, StatusCode::OK, &p, inv)
}

async fn inventory_create(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_json(&headers)?;
    can(&s, &ctx, "placement:resource_providers:inventories:create")?;
    s.provider(&uuid).await?;
    let data = parse_json(&body)?;
    let mut allowed = INVENTORY_FIELDS.to_vec();
    allowed.push("resource_class");
    let m = object(&data, &allowed, &["total", "resource_class"])?;
    let rc = string_field(m, "resource_class", 0, usize::MAX)?.unwrap_or_default();
    if !model::is_rc_name(rc) {
        return Err(invalid(format!("'{rc}' does not match '^[A-Z0-9_]+$'")));
    }
    int_field(m, "resource_provider_generation", i64::MIN, i64::MAX)?;
    let inv = parse_inventory(rc, m)?;
    let (p, inv) = s.inventory_create(&uuid, inv, v.at_least(26)).await?;
    let resp = inventory_answer(v, StatusCode::CREATED, &p, &inv)?;
    Ok(with_location(
        resp,
        &format!("/resource_providers/{uuid}/inventories/{rc}"),
    ))
}

async fn inventories_set(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_json(&headers)?;
    can(&s, &ctx, "placement:resource_providers:inventories:update")?;
    s.provider(&uuid).await?;
    let data = parse_json(&body)?;
    let m = object(
        &data,
        &["resource_provider_generation", "inventories"],
        &["resource_provider_generation", "inventories"],
    )?;
    let generation =
        int_field(m, "resource_provider_generation", i64::MIN, i64::MAX)?.unwrap_or_default();
    let Some(Value::Object(records)) = m.get("inventories") else {
        return Err(invalid(format!(
            "{} is not of type 'object'",
            m.get("inventories").cloned().unwrap_or_default()
        )));
    };
    let mut invs = Vec::new();
    for (rc, rec) in records {
        // Keys not matching the class pattern are not validated upstream
        // (patternProperties without additionalProperties) and then fail as unknown classes.
        let rec = object(
            rec,
            &INVENTORY_FIELDS[1..],
            if model::is_rc_name(rc) {
                &["total"]
            } else {
                &[]
            },
        )?;
        invs.push(parse_inventory(rc, rec)?);
    }
    let (p, invs) = s
        .inventories_set(&uuid, generation, invs, v.at_least(26))
        .await?;
    let last = invs.values().map(|i| i.updated_at).max();
    json_response(
        v,
        StatusCode::OK,
        inventories_json(p.generation, &invs),
        last,
    )
}

async fn inventories_delete(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(v, 5, 405)?;
    can(&s, &ctx, "placement:resource_providers:inventories:delete")?;
    s.provider(&uuid).await?;
    s.inventories_delete(&uuid).await?;
    status_only(StatusCode::NO_CONTENT)
}

async fn inventory_update(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path((uuid, rc)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    require_json(&headers)?;
    can(&s, &ctx, "placement:resource_providers:inventories:update")?;
    s.provider(&uuid).await?;
    let data = parse_json(&body)?;
    let m = object(
        &data,
        INVENTORY_FIELDS,
        &["total", "resource_provider_generation"],
    )?;
    let generation =
        int_field(m, "resource_provider_generation", i64::MIN, i64::MAX)?.unwrap_or_default();
    let inv = parse_inventory(&rc, m)?;
    let (p, inv) = s
        .inventory_update(&uuid, generation, inv, v.at_least(26))
        .await?;
    inventory_answer(v, StatusCode::OK, &p, &inv)
}

async fn inventory_delete(
    State(s): S,
    Extension(ctx): Ctx,
    Path((uuid, rc)): Path<(String, String)>,
) -> ApiResult {
    can(&s, &ctx, "placement:resource_providers:inventories:delete")?;
    s.provider(&uuid).await?;
    s.inventory_delete(&uuid, &rc).await?;
    status_only(StatusCode::NO_CONTENT)
}

// ---- usages ------------------------------------------------------------------------------

async fn provider_usages(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_providers:usages")?;
    let (p, used) = s.provider_usages(&uuid).await.map_err(|e| match e.status {
        404 => PlacementError::not_found(format!(
            "No resource provider with uuid {uuid} found: {}",
            e.detail
        )),
        _ => e,
    })?;
    json_response(
        v,
        StatusCode::OK,
        json!({"resource_provider_generation": p.generation, "usages": used}),
        None,
    )
}

async fn usages(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    need(v, 9, 404)?;
    check_accept(&headers)?;
    let pairs = query_pairs(&uri)?;
    let q = last_values(&pairs);
    let project = q.get("project_id").cloned();
    can_target(
        &s,
        &ctx,
        "placement:usages",
        &json!({"project_id": project}),
    )?;
    for key in q.keys() {
        let ok = matches!(key.as_str(), "project_id" | "user_id")
            || (key == "consumer_type" && v.at_least(38));
        if !ok {
            return Err(unexpected_query(key));
        }
    }
    let Some(project) = project else {
        return Err(bad(
            "Invalid query string parameters: 'project_id' is a required property",
        ));
    };
    for (key, value) in &q {
        if value.is_empty() || value.chars().count() > 255 {
            return Err(bad(format!(
                "Invalid query string parameters: '{value}' is not a valid {key}"
            )));
        }
    }
    let consumer_type = q.get("consumer_type").map(String::as_str);
    if let Some(ct) = consumer_type
        && !model::is_rc_name(ct)
        && ct != "all"
        && ct != "unknown"
    {
        return Err(bad(format!(
            "Invalid query string parameters: '{ct}' does not match the consumer type pattern"
        )));
    }
    let usages = s
        .project_usages(
            &project,
            q.get("user_id").map(String::as_str),
            consumer_type,
        )
        .await?;
    let body = if v.at_least(38) {
        let by_type: Map<String, Value> = usages
            .into_iter()
            .map(|(ct, (res, count))| {
                let mut m: Map<String, Value> =
                    res.into_iter().map(|(rc, n)| (rc, json!(n))).collect();
                m.insert("consumer_count".into(), json!(count));
                (ct, Value::Object(m))
            })
            .collect();
        json!({"usages": by_type})
    } else {
        let mut total = Resources::new();
        for (res, _) in usages.into_values() {
            for (rc, n) in res {
                *total.entry(rc).or_default() += n;
            }
        }
        json!({"usages": total})
    };
    json_response(v, StatusCode::OK, body, None)
}

// ---- aggregates ----------------------------------------------------------------------------

fn aggregates_answer(v: Version, p: &Provider, aggs: &BTreeSet<String>) -> ApiResult {
    let mut body = json!({"aggregates": aggs});
    if v.at_least(19) {
        body["resource_provider_generation"] = json!(p.generation);
    }
    json_response(v, StatusCode::OK, body, None)
}

async fn aggregates_show(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    check_accept(&headers)?;
    need(v, 1, 404)?;
    can(&s, &ctx, "placement:resource_providers:aggregates:list")?;
    let (p, aggs) = s.provider_aggregates(&uuid).await?;
    aggregates_answer(v, &p, &aggs)
}

fn aggregate_list(v: &Value) -> Result<BTreeSet<String>, Fault> {
    let Value::Array(items) = v else {
        return Err(invalid(format!("{v} is not of type 'array'")));
    };
    let mut out = BTreeSet::new();
    for item in items {
        if !out.insert(uuid_value(item)?) {
            return Err(invalid(format!("{v} has non-unique elements")));
        }
    }
    Ok(out)
}

async fn aggregates_set(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_json(&headers)?;
    need(v, 1, 404)?;
    can(&s, &ctx, "placement:resource_providers:aggregates:update")?;
    s.provider(&uuid).await?;
    let data = parse_json(&body)?;
    let (generation, aggs) = if v.at_least(19) {
        let m = object(
            &data,
            &["aggregates", "resource_provider_generation"],
            &["aggregates", "resource_provider_generation"],
        )?;
        let g = int_field(m, "resource_provider_generation", i64::MIN, i64::MAX)?;
        (g, aggregate_list(&m["aggregates"])?)
    } else {
        (None, aggregate_list(&data)?)
    };
    let p = s.provider_aggregates_set(&uuid, generation, &aggs).await?;
    aggregates_answer(v, &p, &aggs)
}

// ---- traits --------------------------------------------------------------------------------

async fn trait_list(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    need(v, 6, 404)?;
    check_accept(&headers)?;
    can(&s, &ctx, "placement:traits:list")?;
    let q = last_values(&query_pairs(&uri)?);
    for key in q.keys() {
        if key != "name" && key != "associated" {
            return Err(unexpected_query(key));
        }
    }
    let mut name_in = None;
    let mut prefix = None;
    if let Some(name) = q.get("name") {
        let Some((op, value)) = name.split_once(':') else {
            return Err(bad(format!(
                "Badly formatted name parameter. Expected name query string parameter in \
                 form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{name}\""
            )));
        };
        match op {
            "in" => {
                name_in = Some(
                    value
                        .split(',')
                        .map(str::to_string)
                        .collect::<BTreeSet<_>>(),
                )
            }
            "startswith" => prefix = Some(value.to_string()),
            _ => {}
        }
    }
    let associated = match q.get("associated").map(|a| a.to_ascii_lowercase()) {
        None => None,
        Some(a) if a == "true" => Some(true),
        Some(a) if a == "false" => Some(false),
        Some(_) => {
            return Err(bad(
                "The query parameter \"associated\" only accepts \"true\" or \"false\"",
            ));
        }
    };
    let traits = s
        .traits(name_in.as_ref(), prefix.as_deref(), associated)
        .await?;
    json_response(v, StatusCode::OK, json!({"traits": traits}), None)
}

async fn trait_show(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    Path(name): Path<String>,
) -> ApiResult {
    need(v, 6, 404)?;
    can(&s, &ctx, "placement:traits:show")?;
    if !s.trait_exists(&name).await? {
        return Err(Fault(PlacementError::not_found(format!(
            "No such trait(s): {name}."
        ))));
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if v.at_least(15) {
        resp = json_response(v, StatusCode::NO_CONTENT, Value::Null, None)?;
        *resp.body_mut() = axum::body::Body::empty();
        resp.headers_mut().remove(CONTENT_TYPE);
    }
    Ok(resp)
}

async fn trait_put(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    Path(name): Path<String>,
) -> ApiResult {
    need(v, 6, 404)?;
    can(&s, &ctx, "placement:traits:update")?;
    if !model::is_custom_name(&name) {
        return Err(bad(
            "The trait is invalid. A valid trait must be no longer than 255 characters, start \
             with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" \
             and \"_\"",
        ));
    }
    let created = s.trait_ensure(&name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    let mut resp = with_location(status.into_response(), &format!("/traits/{name}"));
    if v.at_least(15) {
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(h) = HeaderValue::from_str(&http_date(ferro_common::time::now_micros())) {
            resp.headers_mut().insert(LAST_MODIFIED, h);
        }
    }
    Ok(resp)
}

async fn trait_delete(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    Path(name): Path<String>,
) -> ApiResult {
    need(v, 6, 404)?;
    can(&s, &ctx, "placement:traits:delete")?;
    s.trait_delete(&name).await?;
    status_only(StatusCode::NO_CONTENT)
}

async fn provider_traits_show(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(v, 6, 404)?;
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_providers:traits:list")?;
    let (p, traits) = s.provider_traits(&uuid).await.map_err(|e| match e.status {
        404 => PlacementError::not_found(format!(
            "No resource provider with uuid {uuid} found: {}",
            e.detail
        )),
        _ => e,
    })?;
    json_response(
        v,
        StatusCode::OK,
        json!({"traits": traits, "resource_provider_generation": p.generation}),
        None,
    )
}

async fn provider_traits_set(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    need(v, 6, 404)?;
    require_json(&headers)?;
    can(&s, &ctx, "placement:resource_providers:traits:update")?;
    let data = parse_json(&body)?;
    let m = object(
        &data,
        &["traits", "resource_provider_generation"],
        &["traits", "resource_provider_generation"],
    )?;
    let generation = int_field(m, "resource_provider_generation", i64::MIN, i64::MAX)?;
    let Value::Array(items) = &m["traits"] else {
        return Err(invalid(format!("{} is not of type 'array'", m["traits"])));
    };
    let mut traits = BTreeSet::new();
    for t in items {
        match t.as_str() {
            Some(n) if !n.is_empty() && n.chars().count() <= 255 => {
                traits.insert(n.to_string());
            }
            _ => return Err(invalid(format!("{t} is not a valid trait"))),
        }
    }
    s.provider(&uuid).await?;
    let p = s.provider_traits_set(&uuid, generation, &traits).await?;
    json_response(
        v,
        StatusCode::OK,
        json!({"traits": traits, "resource_provider_generation": p.generation}),
        None,
    )
}

async fn provider_traits_delete(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(v, 6, 404)?;
    can(&s, &ctx, "placement:resource_providers:traits:delete")?;
    s.provider(&uuid).await?;
    s.provider_traits_set(&uuid, None, &BTreeSet::new()).await?;
    status_only(StatusCode::NO_CONTENT)
}

// ---- allocations ---------------------------------------------------------------------------

async fn allocations_show(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(consumer): Path<String>,
) -> ApiResult {
    check_accept(&headers)?;
    can(&s, &ctx, "placement:allocations:list")?;
    let view = s.consumer_allocations(&consumer).await?;
    let allocs: Map<String, Value> = view
        .allocations
        .iter()
        .map(|(rp, (g, res))| (rp.clone(), json!({"generation": g, "resources": res})))
        .collect();
    let mut body = json!({"allocations": allocs});
    if !view.allocations.is_empty()
        && v.at_least(12)
        && let Some(info) = &view.info
    {
        body["project_id"] = json!(info.project_id);
        body["user_id"] = json!(info.user_id);
        if v.at_least(28) {
            body["consumer_generation"] = json!(view.generation);
        }
        if v.at_least(38) {
            body["consumer_type"] = json!(
                info.consumer_type
                    .clone()
                    .unwrap_or_else(|| "unknown".into())
            );
        }
    }
    let modified = (view.last_modified > 0).then_some(view.last_modified);
    json_response(v, StatusCode::OK, body, modified)
}

async fn provider_allocations(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    check_accept(&headers)?;
    can(&s, &ctx, "placement:resource_providers:allocations:list")?;
    let (p, allocs, last) = s.provider_allocations(&uuid).await?;
    let map: Map<String, Value> = allocs
        .iter()
        .map(|a| {
            let mut e = json!({"resources": a.resources});
            if v.at_least(28) {
                e["consumer_generation"] = json!(a.consumer_generation);
            }
            (a.consumer_uuid.clone(), e)
        })
        .collect();
    json_response(
        v,
        StatusCode::OK,
        json!({"resource_provider_generation": p.generation, "allocations": map}),
        (last > 0).then_some(last),
    )
}

/// `{RC: amount >= 1}` with at least one entry.
fn parse_resources_body(v: &Value) -> Result<Resources, Fault> {
    let Value::Object(m) = v else {
        return Err(invalid(format!("{v} is not of type 'object'")));
    };
    if m.is_empty() {
        return Err(invalid("{} does not have enough properties"));
    }
    let mut out = Resources::new();
    for (rc, n) in m {
        if !model::is_rc_name(rc) {
            return Err(invalid(format!(
                "Additional properties are not allowed ('{rc}' was unexpected)"
            )));
        }
        let amount = n
            .as_i64()
            .filter(|_| n.is_i64() || n.is_u64())
            .ok_or_else(|| invalid(format!("{n} is not of type 'integer'")))?;
        if amount < 1 {
            return Err(invalid(format!("{amount} is less than the minimum of 1")));
        }
        out.insert(rc.clone(), amount);
    }
    Ok(out)
}

/// One consumer's allocation body in the microversion's schema (schemas/allocation.py).
/// `post` is the `POST /allocations` form (1.13+), where empty allocations delete.
fn parse_consumer_body(
    s: &Placement,
    v: Version,
    consumer: &str,
    data: &Value,
    post: bool,
) -> Result<ConsumerAllocations, Fault> {
    let mut allowed = vec!["allocations"];
    let mut required = vec!["allocations"];
    if v.at_least(8) {
        allowed.extend(["project_id", "user_id"]);
        required.extend(["project_id", "user_id"]);
    }
    if v.at_least(28) {
        allowed.push("consumer_generation");
        required.push("consumer_generation");
    }
    if v.at_least(34) {
        allowed.push("mappings");
    }
    if v.at_least(38) {
        allowed.push("consumer_type");
        required.push("consumer_type");
    }
    let m = object(data, &allowed, &required)?;
    let mut allocations: BTreeMap<String, Resources> = BTreeMap::new();
    if v.at_least(12) {
        let Value::Object(by_rp) = &m["allocations"] else {
            return Err(invalid(format!(
                "{} is not of type 'object'",
                m["allocations"]
            )));
        };
        if by_rp.is_empty() && !post && !v.at_least(28) {
            return Err(invalid("{} does not have enough properties"));
        }
        for (rp, entry) in by_rp {
            if rp.len() != 36 || !rp.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                return Err(invalid(format!(
                    "Additional properties are not allowed ('{rp}' was unexpected)"
                )));
            }
            let e = object(entry, &["generation", "resources"], &["resources"])?;
            int_field(e, "generation", i64::MIN, i64::MAX)?;
            allocations.insert(rp.clone(), parse_resources_body(&e["resources"])?);
        }
    } else {
        let Value::Array(items) = &m["allocations"] else {
            return Err(invalid(format!(
                "{} is not of type 'array'",
                m["allocations"]
            )));
        };
        if items.is_empty() {
            return Err(invalid("[] is too short"));
        }
        for item in items {
            let e = object(
                item,
                &["resource_provider", "resources"],
                &["resource_provider", "resources"],
            )?;
            let rp = object(&e["resource_provider"], &["uuid"], &["uuid"])?;
            let uuid = uuid_value(&rp["uuid"])?;
            allocations.insert(uuid, parse_resources_body(&e["resources"])?);
        }
    }
    if let Some(Value::Object(mappings)) = m.get("mappings") {
        // Accepted for convenience at 1.34+ and ignored, as upstream.
        for (_, rps) in mappings {
            if !rps.is_array() {
                return Err(invalid(format!("{rps} is not of type 'array'")));
            }
        }
    } else if let Some(other) = m.get("mappings") {
        return Err(invalid(format!("{other} is not of type 'object'")));
    }
    let project_id = string_field(m, "project_id", 1, 255)?;
    let user_id = string_field(m, "user_id", 1, 255)?;
    let (project_id, user_id) = match (project_id, user_id) {
        (Some(p), Some(u)) => (p.to_string(), u.to_string()),
        _ => (
            s.config.incomplete_consumer_project_id.clone(),
            s.config.incomplete_consumer_user_id.clone(),
        ),
    };
    let generation = if v.at_least(28) {
        match &m["consumer_generation"] {
            Value::Null => ConsumerGeneration::Expect(None),
            n => ConsumerGeneration::Expect(Some(
                n.as_i64()
                    .filter(|_| n.is_i64() || n.is_u64())
                    .ok_or_else(|| invalid(format!("{n} is not of type 'integer', 'null'")))?,
            )),
        }
    } else {
        ConsumerGeneration::Unchecked
    };
    let consumer_type = match string_field(m, "consumer_type", 1, 255)? {
        Some(ct) if model::is_rc_name(ct) => Some(ct.to_string()),
        Some(ct) => return Err(invalid(format!("'{ct}' does not match '^[A-Z0-9_]+$'"))),
        None => None,
    };
    Ok(ConsumerAllocations {
        consumer_uuid: consumer.to_string(),
        allocations,
        info: ConsumerInfo {
            project_id,
            user_id,
            consumer_type,
        },
        generation,
    })
}

async fn allocations_put(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    Path(consumer): Path<String>,
    body: Bytes,
) -> ApiResult {
    require_json(&headers)?;
    can(&s, &ctx, "placement:allocations:update")?;
    let Some(consumer) =
        model::canonical_uuid(&consumer).filter(|_| model::is_uuid_like(&consumer))
    else {
        return Err(bad(format!("Malformed consumer_uuid: {consumer}")));
    };
    let data = parse_json(&body)?;
    let write = parse_consumer_body(&s, v, &consumer, &data, false)?;
    s.allocations_set(&[write]).await.map_err(|e| {
        if e.status == 400 && e.detail.starts_with("No such resource class") {
            PlacementError::bad_request(format!(
                "Unable to allocate inventory for consumer {consumer}: {}",
                e.detail
            ))
        } else {
            e
        }
    })?;
    status_only(StatusCode::NO_CONTENT)
}

async fn allocations_post(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    need(v, 13, 404)?;
    require_json(&headers)?;
    can(&s, &ctx, "placement:allocations:manage")?;
    let data = parse_json(&body)?;
    let Value::Object(by_consumer) = &data else {
        return Err(invalid(format!("{data} is not of type 'object'")));
    };
    if by_consumer.is_empty() {
        return Err(invalid("{} does not have enough properties"));
    }
    let mut writes = Vec::new();
    for (consumer, entry) in by_consumer {
        if consumer.len() != 36 || !consumer.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(invalid(format!(
                "Additional properties are not allowed ('{consumer}' was unexpected)"
            )));
        }
        writes.push(parse_consumer_body(&s, v, consumer, entry, true)?);
    }
    s.allocations_set(&writes).await.map_err(|e| {
        if e.status == 400 && e.detail.starts_with("No such resource class") {
            PlacementError::bad_request(format!("Unable to allocate inventory {}", e.detail))
        } else {
            e
        }
    })?;
    status_only(StatusCode::NO_CONTENT)
}

async fn allocations_delete(
    State(s): S,
    Extension(ctx): Ctx,
    Path(consumer): Path<String>,
) -> ApiResult {
    can(&s, &ctx, "placement:allocations:delete")?;
    s.allocations_delete(&consumer).await?;
    status_only(StatusCode::NO_CONTENT)
}

// ---- query parameters shared by provider lists and candidates --------------------------------

/// `util.normalize_resources_qs_param`.
fn parse_resources(qs: &str) -> Result<Resources, Fault> {
    if qs.trim().is_empty() {
        return Err(bad(
            "Badly formed resources parameter. Expected resources query string parameter in \
             form: ?resources=VCPU:2,MEMORY_MB:1024. Got: empty string.",
        ));
    }
    let mut out = Resources::new();
    for rt in qs.split(',') {
        let parts: Vec<&str> = rt.split(':').collect();
        let [rc, amount] = parts.as_slice() else {
            return Err(bad(format!(
                "Badly formed resources parameter. Expected resources query string parameter \
                 in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {rt}."
            )));
        };
        let n: i64 = amount.trim().parse().map_err(|_| {
            bad(format!(
                "Requested resource {rc} expected positive integer amount. Got: {amount}."
            ))
        })?;
        if n < 1 {
            return Err(bad(format!(
                "Requested resource {rc} requires amount >= 1. Got: {n}."
            )));
        }
        out.insert(rc.to_string(), n);
    }
    Ok(out)
}

/// `util.normalize_traits_qs_param`: one `required` value.
fn parse_traits_value(
    val: &str,
    allow_forbidden: bool,
    allow_any: bool,
) -> Result<TraitFilter, Fault> {
    if let Some(rest) = val.strip_prefix("in:") {
        if !allow_any {
            return Err(bad(format!(
                "Invalid query string parameters: The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' \
                 only supported since microversion 1.39. Got: {val}"
            )));
        }
        let any: BTreeSet<String> = rest.split(',').map(|t| t.trim().to_string()).collect();
        if any.iter().any(String::is_empty) {
            return Err(bad(format!(
                "Invalid query string parameters: Expected 'required' parameter value of the \
                 form: in:HW_CPU_X86_VMX,CUSTOM_MAGIC. Got an empty trait in: {val}"
            )));
        }
        if any.iter().any(|t| t.starts_with('!')) {
            return Err(bad(format!(
                "Invalid query string parameters: The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' \
                 does not support forbidden traits. Got: {val}"
            )));
        }
        return Ok(TraitFilter {
            required: vec![any],
            forbidden: BTreeSet::new(),
        });
    }
    let all: Vec<String> = val.split(',').map(|t| t.trim().to_string()).collect();
    // As upstream, any number of leading '!' make a trait forbidden.
    let forbidden: BTreeSet<String> = all
        .iter()
        .filter(|t| t.starts_with('!'))
        .map(|t| t.trim_start_matches('!').to_string())
        .collect();
    if all.iter().any(String::is_empty) || forbidden.iter().any(String::is_empty) {
        let form = if allow_forbidden {
            "HW_CPU_X86_VMX,!CUSTOM_MAGIC"
        } else {
            "HW_CPU_X86_VMX,CUSTOM_MAGIC"
        };
        return Err(bad(format!(
            "Invalid query string parameters: Expected 'required' parameter value of the \
             form: {form}. Got an empty trait in: {val}"
        )));
    }
    if !forbidden.is_empty() && !allow_forbidden {
        return Err(bad(format!(
            "Invalid query string parameters: Expected 'required' parameter value of the form: \
             HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {val}"
        )));
    }
    Ok(TraitFilter {
        required: all
            .into_iter()
            .filter(|t| !t.starts_with('!'))
            .map(|t| BTreeSet::from([t]))
            .collect(),
        forbidden,
    })
}

/// `util.normalize_traits_qs_params`: every `required{suffix}` value (only the last one
/// before 1.39).
fn required_params(
    v: Version,
    pairs: &[(String, String)],
    suffix: &str,
) -> Result<TraitFilter, Fault> {
    let mut values = all_values(pairs, &format!("required{suffix}"));
    if !v.at_least(39) {
        values = values.split_off(values.len().saturating_sub(1));
    }
    let mut out = TraitFilter::default();
    for value in values {
        let f = parse_traits_value(value, v.at_least(22), v.at_least(39))?;
        out.required.extend(f.required);
        out.forbidden.extend(f.forbidden);
    }
    Ok(out)
}

/// `util.normalize_member_of_qs_params`.
fn member_of_params(
    v: Version,
    pairs: &[(String, String)],
    suffix: &str,
) -> Result<AggregateFilter, Fault> {
    let values = all_values(pairs, &format!("member_of{suffix}"));
    if !v.at_least(24) && values.len() > 1 {
        return Err(bad(format!(
            "Multiple member_of{suffix} parameters are not supported"
        )));
    }
    let mut out = AggregateFilter::default();
    for value in values {
        if value.contains(',') && !(value.starts_with("in:") || value.starts_with("!in:")) {
            return Err(bad(format!(
                "Multiple values for 'member_of' must be prefixed with the 'in:' or '!in:' \
                 keyword using the valid microversion. Got: {value}"
            )));
        }
        let (forbid, list): (bool, Vec<&str>) = if let Some(r) = value.strip_prefix("!in:") {
            (true, r.split(',').collect())
        } else if let Some(r) = value.strip_prefix('!') {
            (true, vec![r])
        } else if let Some(r) = value.strip_prefix("in:") {
            (false, r.split(',').collect())
        } else {
            (false, vec![value])
        };
        let mut set = BTreeSet::new();
        for agg in list {
            if !model::is_uuid_like(agg) {
                return Err(bad(format!(
                    "Invalid query string parameters: Expected 'member_of' parameter to contain \
                     valid UUID(s). Got: {agg}"
                )));
            }
            set.insert(model::canonical_uuid(agg).unwrap_or_else(|| agg.to_string()));
        }
        if forbid {
            if !v.at_least(32) {
                return Err(bad(format!(
                    "Forbidden member_of{suffix} parameters are not supported in the specified \
                     microversion"
                )));
            }
            out.forbidden.extend(set);
        } else {
            out.member_of.push(set);
        }
    }
    Ok(out)
}

fn parse_in_tree(value: &str) -> Result<String, Fault> {
    let t = value.trim();
    if !model::is_uuid_like(t) {
        return Err(bad(format!(
            "Invalid query string parameters: Expected 'in_tree' parameter to be a format of \
             uuid. Got: {value}"
        )));
    }
    Ok(model::canonical_uuid(t).unwrap_or_else(|| t.to_string()))
}

// ---- allocation candidates -------------------------------------------------------------------

/// Splits `resources42` into `("resources", "42")` if the suffix is allowed at `v`.
fn group_key(key: &str, v: Version) -> Option<(&'static str, String)> {
    for prefix in ["resources", "required", "member_of", "in_tree"] {
        if let Some(suffix) = key.strip_prefix(prefix) {
            if prefix == "in_tree" && !v.at_least(31) {
                return None;
            }
            let ok = suffix.is_empty()
                || if v.at_least(33) {
                    suffix.len() <= 64
                        && suffix
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                } else {
                    suffix.bytes().all(|b| b.is_ascii_digit()) && !suffix.starts_with('0')
                };
            if ok {
                return Some((prefix, suffix.to_string()));
            }
        }
    }
    None
}

/// The request groups and request-wide parameters of `GET /allocation_candidates`
/// (lib.RequestGroup.dict_from_request and RequestWideParams.from_request).
fn parse_candidate_request(
    v: Version,
    pairs: &[(String, String)],
) -> Result<CandidateRequest, Fault> {
    let q = last_values(pairs);
    // Query schema of the microversion.
    for key in q.keys() {
        let ok = if v.at_least(25) {
            group_key(key, v).is_some()
                || key == "group_policy"
                || key == "limit"
                || (key == "root_required" && v.at_least(35))
                || (key == "same_subtree" && v.at_least(36))
        } else {
            key == "resources"
                || (key == "limit" && v.at_least(16))
                || (key == "required" && v.at_least(17))
                || (key == "member_of" && v.at_least(21))
        };
        if !ok {
            return Err(unexpected_query(key));
        }
    }
    if !v.at_least(25) && !q.contains_key("resources") {
        return Err(bad(
            "Invalid query string parameters: 'resources' is a required property",
        ));
    }
    let limit = match q.get("limit") {
        None => None,
        Some(l) => {
            let valid =
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) && !l.starts_with('0');
            if !valid {
                return Err(bad(format!(
                    "Invalid query string parameters: '{l}' does not match '^[1-9][0-9]*$'"
                )));
            }
            Some(l.parse::<usize>().unwrap_or(usize::MAX))
        }
    };
    let group_policy = match q.get("group_policy").map(String::as_str) {
        None => None,
        Some("none") => Some(GroupPolicy::None),
        Some("isolate") => Some(GroupPolicy::Isolate),
        Some(other) => {
            return Err(bad(format!(
                "Invalid query string parameters: '{other}' is not one of ['none', 'isolate']"
            )));
        }
    };
    let mut groups: BTreeMap<String, RequestGroup> = BTreeMap::new();
    for key in q.keys() {
        let Some((prefix, suffix)) = group_key(key, v) else {
            continue;
        };
        if !v.at_least(25) && !suffix.is_empty() {
            continue;
        }
        let g = groups
            .entry(suffix.clone())
            .or_insert_with(|| RequestGroup {
                suffix: suffix.clone(),
                ..Default::default()
            });
        match prefix {
            "resources" => g.resources = parse_resources(&q[key])?,
            "required" => g.traits = required_params(v, pairs, &suffix)?,
            "member_of" => g.aggregates = member_of_params(v, pairs, &suffix)?,
            _ => g.in_tree = Some(parse_in_tree(&q[key])?),
        }
    }
    let mut root_traits = TraitFilter::default();
    if let Some(rr) = q.get("root_required") {
        // No any-trait `in:` form here (RequestWideParams uses the legacy parser).
        root_traits = parse_traits_value(rr, true, false)?;
    }
    let mut same_subtrees = Vec::new();
    for value in all_values(pairs, "same_subtree") {
        let suffixes: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
        if suffixes.iter().any(String::is_empty) {
            return Err(Fault(
                PlacementError::bad_request(format!(
                    "Empty string (unsuffixed group) can not be specified in `same_subtree` \
                     query param. Got: {value}"
                ))
                .with_code(codes::QUERYPARAM_BAD_VALUE),
            ));
        }
        same_subtrees.push(suffixes);
    }
    // Checks of lib.RequestGroup.dict_from_request.
    if v.at_least(36) {
        let resourceless: BTreeSet<&String> = groups
            .iter()
            .filter(|(_, g)| g.resources.is_empty())
            .map(|(s, _)| s)
            .collect();
        if resourceless.len() == groups.len() {
            return Err(Fault(
                PlacementError::bad_request(
                    "There must be at least one resources or resources[$S] parameter.",
                )
                .with_code(codes::QUERYPARAM_MISSING_VALUE),
            ));
        }
        let subtree: BTreeSet<&String> = same_subtrees.iter().flatten().collect();
        let bad_suffixes: Vec<&String> = resourceless
            .iter()
            .filter(|s| !subtree.contains(*s))
            .copied()
            .collect();
        if !bad_suffixes.is_empty() {
            return Err(Fault(
                PlacementError::bad_request(format!(
                    "Resourceless suffixed group request should be specified in `same_subtree` \
                     query param: bad group(s) - {bad_suffixes:?}."
                ))
                .with_code(codes::QUERYPARAM_BAD_VALUE),
            ));
        }
        let unknown: Vec<&String> = subtree
            .iter()
            .filter(|s| !groups.contains_key(**s))
            .copied()
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&String> = groups.keys().collect();
            return Err(Fault(
                PlacementError::bad_request(format!(
                    "Real suffixes should be specified in `same_subtree`: {unknown:?} not found \
                     in {known:?}."
                ))
                .with_code(codes::QUERYPARAM_BAD_VALUE),
            ));
        }
    } else {
        let orphans: Vec<String> = groups
            .iter()
            .filter(|(_, g)| !g.traits.is_empty() && g.resources.is_empty())
            .map(|(s, _)| format!("required{s}"))
            .collect();
        if !orphans.is_empty() {
            return Err(bad(format!(
                "All traits parameters must be associated with resources.  Found the \
                 following orphaned traits keys: {}",
                orphans.join(", ")
            )));
        }
        let orphans: Vec<String> = groups
            .iter()
            .filter(|(_, g)| !g.aggregates.is_empty() && g.resources.is_empty())
            .map(|(s, _)| format!("member_of{s}"))
            .collect();
        if !orphans.is_empty() {
            return Err(bad(format!(
                "All member_of parameters must be associated with resources. Found the \
                 following orphaned member_of keys: {}",
                orphans.join(", ")
            )));
        }
        if groups.values().any(|g| g.resources.is_empty()) {
            return Err(bad("All request groups must specify resources."));
        }
        if groups.is_empty() {
            return Err(bad(
                "At least one request group (`resources` or `resources{$S}`) is required.",
            ));
        }
    }
    if v.at_least(22) {
        let mut conflicts = Vec::new();
        for (s, g) in &groups {
            for any in &g.traits.required {
                if any.iter().all(|t| g.traits.forbidden.contains(t)) {
                    conflicts.push(format!(
                        "required{s}: ({})",
                        any.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        if !conflicts.is_empty() {
            conflicts.sort();
            return Err(bad(format!(
                "Conflicting required and forbidden traits found in the following traits \
                 keys: {}",
                conflicts.join(", ")
            )));
        }
    }
    let granular = groups.keys().filter(|s| !s.is_empty()).count();
    if group_policy.is_none() && granular > 1 {
        return Err(bad(
            "The \"group_policy\" parameter is required when specifying more than one \
             \"resources{N}\" parameter.",
        ));
    }
    Ok(CandidateRequest {
        groups: groups.into_values().collect(),
        limit,
        group_policy,
        root_traits,
        same_subtrees,
        nested_aware: v.at_least(29),
    })
}

fn candidates_json(c: &Candidates, req: &CandidateRequest, v: Version) -> Value {
    let areqs: Vec<Value> = c
        .allocation_requests
        .iter()
        .map(|a| {
            if v.at_least(12) {
                let allocs: Map<String, Value> = a
                    .allocations
                    .iter()
                    .map(|(rp, res)| (rp.clone(), json!({"resources": res})))
                    .collect();
                let mut out = json!({"allocations": allocs});
                if v.at_least(34) {
                    out["mappings"] = json!(a.mappings);
                }
                out
            } else {
                let allocs: Vec<Value> = a
                    .allocations
                    .iter()
                    .map(|(rp, res)| json!({"resource_provider": {"uuid": rp}, "resources": res}))
                    .collect();
                json!({"allocations": allocs})
            }
        })
        .collect();
    let requested: BTreeSet<&String> = req.groups.iter().flat_map(|g| g.resources.keys()).collect();
    let sums: Map<String, Value> = c
        .provider_summaries
        .iter()
        .map(|ps| {
            let res: Map<String, Value> = ps
                .resources
                .iter()
                .filter(|(rc, _)| v.at_least(27) || requested.contains(rc))
                .map(|(rc, (cap, used))| (rc.clone(), json!({"capacity": cap, "used": used})))
                .collect();
            let mut out = json!({"resources": res});
            if v.at_least(17) {
                out["traits"] = json!(ps.traits);
            }
            if v.at_least(29) {
                out["parent_provider_uuid"] = json!(ps.parent);
                out["root_provider_uuid"] = json!(ps.root);
            }
            (ps.uuid.clone(), out)
        })
        .collect();
    json!({"allocation_requests": areqs, "provider_summaries": sums})
}

async fn allocation_candidates(
    State(s): S,
    Extension(ctx): Ctx,
    Extension(v): V,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    need(v, 10, 404)?;
    check_accept(&headers)?;
    can(&s, &ctx, "placement:allocation_candidates:list")?;
    let pairs = query_pairs(&uri)?;
    let req = parse_candidate_request(v, &pairs)?;
    let c = s.allocation_candidates(&req).await?;
    json_response(v, StatusCode::OK, candidates_json(&c, &req, v), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for x in v {
            h.append(API_VERSION_HEADER, HeaderValue::from_str(x).unwrap());
        }
        h
    }

    #[test]
    fn negotiation_follows_microversion_parse() {
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), MIN_VERSION);
        assert_eq!(
            negotiate(&headers(&["placement latest"])).unwrap(),
            MAX_VERSION
        );
        assert_eq!(
            negotiate(&headers(&["compute 2.1, placement 1.20"])).unwrap(),
            Version(1, 20)
        );
        assert_eq!(negotiate(&headers(&["compute 2.1"])).unwrap(), MIN_VERSION);
        assert_eq!(
            negotiate(&headers(&["placement 1.a"])).unwrap_err().status,
            400
        );
        assert_eq!(
            negotiate(&headers(&["placement 1.40"])).unwrap_err().status,
            406
        );
        assert_eq!(
            negotiate(&headers(&["placement 2.0"])).unwrap_err().status,
            406
        );
    }

    #[test]
    fn fault_code_appears_from_1_23_and_406_names_the_range() {
        let e = PlacementError::conflict_code("x", codes::CONCURRENT_UPDATE);
        let old = fault_body(&e, Some(Version(1, 22)), Some("req-1"));
        assert!(old["errors"][0].get("code").is_none());
        assert_eq!(old["errors"][0]["request_id"], "req-1");
        let new = fault_body(&e, Some(Version(1, 23)), None);
        assert_eq!(new["errors"][0]["code"], codes::CONCURRENT_UPDATE);
        assert_eq!(new["errors"][0]["title"], "Conflict");
        let na = fault_body(&PlacementError::new(406, "no"), None, None);
        assert_eq!(na["errors"][0]["max_version"], "1.39");
        assert_eq!(na["errors"][0]["min_version"], "1.0");
    }

    #[test]
    fn resources_and_traits_parse_as_upstream() {
        let r = parse_resources("VCPU:2,MEMORY_MB:1024").unwrap();
        assert_eq!(r["VCPU"], 2);
        assert!(parse_resources("VCPU").is_err());
        assert!(parse_resources("VCPU:0").is_err());
        assert!(parse_resources("VCPU:x").is_err());
        let t = parse_traits_value("A,!B", true, false).unwrap();
        assert_eq!(t.required.len(), 1);
        assert!(t.forbidden.contains("B"));
        assert!(parse_traits_value("A,!B", false, false).is_err());
        assert!(parse_traits_value("in:A,B", true, false).is_err());
        assert_eq!(
            parse_traits_value("in:A,B", true, true).unwrap().required[0].len(),
            2
        );
        assert!(parse_traits_value("A,,B", true, true).is_err());
    }

    #[test]
    fn candidate_groups_need_group_policy_when_several_are_granular() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let p = pairs(&[("resources1", "VCPU:1"), ("resources2", "VCPU:1")]);
        assert!(parse_candidate_request(Version(1, 25), &p).is_err());
        let mut p2 = p.clone();
        p2.push(("group_policy".into(), "isolate".into()));
        let r = parse_candidate_request(Version(1, 25), &p2).unwrap();
        assert_eq!(r.groups.len(), 2);
        // Suffixed groups do not exist before 1.25.
        assert!(parse_candidate_request(Version(1, 24), &p2).is_err());
        // String suffixes from 1.33.
        let p3 = pairs(&[("resources_NET", "VCPU:1")]);
        assert!(parse_candidate_request(Version(1, 32), &p3).is_err());
        assert!(parse_candidate_request(Version(1, 33), &p3).is_ok());
        let orphan = pairs(&[("resources", "VCPU:1"), ("required1", "CUSTOM_X")]);
        assert!(parse_candidate_request(Version(1, 25), &orphan).is_err());
    }
}
