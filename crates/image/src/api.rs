//! Glance v2 routes and their handlers: parse, authorise (in the manager), delegate, answer.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ferro_common::Error;
use ferro_http::query::urlencode;
use ferro_http::{Auth, FaultStyle, Json};
use serde_json::{Value, json};

use crate::db::ListFilter;
use crate::manager::{Change, DEFAULT_LIMIT, Images, MAX_LIMIT, Page, SORT_KEYS};
use crate::model::{CONTAINER_FORMATS, DISK_FORMATS, VISIBILITIES};

type S = State<Arc<Images>>;
type ApiResult = Result<Response, Fault>;

/// The media types Glance accepts for `PATCH /v2/images/{id}`.
const PATCH_TYPES: &[&str] = &[
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
];

ferro_http::service_fault!(
    /// An error answered as a Glance fault.
    Fault,
    FaultStyle::Glance
);

fn json_response(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn unsupported_media_type(ct: &str) -> Response {
    ferro_http::fault::render_status(
        FaultStyle::Glance,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &format!("The request media type {ct} is not supported by this server."),
    )
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
}

/// The image API's router. The data route takes bodies of any size: it streams them.
pub fn router(state: Arc<Images>) -> Router {
    Router::new()
        .route("/", get(versions_multiple))
        .route("/versions", get(versions))
        .route("/v2/images", get(image_list).post(image_create))
        .route(
            "/v2/images/{id}",
            get(image_show).patch(image_update).delete(image_delete),
        )
        .route(
            "/v2/images/{id}/file",
            put(image_upload)
                .get(image_download)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v2/images/{id}/tags/{tag}",
            put(image_tag_add).delete(image_tag_delete),
        )
        .route(
            "/v2/images/{id}/members",
            get(member_list).post(member_create),
        )
        .route(
            "/v2/images/{id}/members/{member}",
            get(member_show).put(member_update).delete(member_delete),
        )
        .route(
            "/v2/images/{id}/stage",
            put(image_stage).layer(DefaultBodyLimit::disable()),
        )
        .route("/v2/images/{id}/import", post(image_import))
        .route("/v2/images/{id}/tasks", get(image_tasks))
        .route("/v2/info/import", get(info_import))
        .route("/v2/info/stores", get(info_stores))
        .route("/v2/tasks", get(task_list).post(task_create))
        .route("/v2/tasks/{id}", get(task_show).delete(task_delete))
        .route("/v2/schemas/task", get(schema_task))
        .route("/v2/schemas/tasks", get(schema_tasks))
        .route("/v2/images/{id}/actions/deactivate", post(image_deactivate))
        .route("/v2/images/{id}/actions/reactivate", post(image_reactivate))
        .route("/v2/schemas/image", get(schema_image))
        .route("/v2/schemas/images", get(schema_images))
        .route("/v2/schemas/member", get(schema_member))
        .route("/v2/schemas/members", get(schema_members))
        .merge(crate::metadefs::router(state.clone()))
        .with_state(state)
}

/// Glance's version list without a cache directory or multiple stores (glance/api/versions.py).
fn version_list(base: &str) -> Value {
    let href = format!("{base}/v2/");
    let ids = [
        ("2.15", "SUPPORTED"),
        ("2.9", "SUPPORTED"),
        ("2.17", "CURRENT"),
        ("2.7", "SUPPORTED"),
        ("2.6", "SUPPORTED"),
        ("2.5", "SUPPORTED"),
        ("2.4", "SUPPORTED"),
        ("2.3", "SUPPORTED"),
        ("2.2", "SUPPORTED"),
        ("2.1", "SUPPORTED"),
        ("2.0", "SUPPORTED"),
    ];
    let versions: Vec<Value> = ids
        .into_iter()
        .map(|(id, status)| {
            json!({"id": format!("v{id}"), "status": status,
                "links": [{"rel": "self", "href": href}]})
        })
        .collect();
    json!({ "versions": versions })
}

/// `GET /`: 300 Multiple Choices, as Glance answers an unversioned request.
async fn versions_multiple(State(s): S) -> ApiResult {
    json_response(
        StatusCode::MULTIPLE_CHOICES,
        version_list(&s.config.public_url),
    )
}

/// `GET /versions`: the same list with 200.
async fn versions(State(s): S) -> ApiResult {
    json_response(StatusCode::OK, version_list(&s.config.public_url))
}

async fn image_create(State(s): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    let image = s.create(&ctx, &body).await?;
    let mut resp = (StatusCode::CREATED, axum::Json(image.to_json())).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/images/{}", image.id)) {
        h.insert("location", v);
    }
    // Clients decide from these whether they may import, and into which stores.
    if let Ok(v) = HeaderValue::from_str(&crate::import::IMPORT_METHODS.join(",")) {
        h.insert("openstack-image-import-methods", v);
    }
    h.insert(
        "openstack-image-store-ids",
        HeaderValue::from_static(crate::store::STORE_ID),
    );
    Ok(resp)
}

async fn image_show(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    json_response(StatusCode::OK, s.get(&ctx, &id).await?.to_json())
}

async fn image_delete(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    s.delete(&ctx, &id).await?;
    no_content()
}

fn parse_bool(key: &str, v: &str) -> Result<bool, Error> {
    // Glance lower-cases the value first (openstacksdk sends Python's `True`).
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::bad_request(format!(
            "Invalid value '{v}' for '{key}' filter. Valid values are 'true' or 'false'."
        ))),
    }
}

fn parse_int(key: &str, v: &str) -> Result<i64, Error> {
    v.parse()
        .map_err(|_| Error::bad_request(format!("Invalid value '{v}' for '{key}'.")))
}

/// Glance's `split_filter_op`: `op:value`, or `eq` when there is no operator (or the whole
/// expression is a timestamp, whose colons are not operators).
fn split_op(expr: &str) -> (&str, &str) {
    match expr.split_once(':') {
        Some(_) if ferro_common::time::parse_iso8601(expr).is_some() => ("eq", expr),
        Some((op, rest)) => (op, rest),
        None => ("eq", expr),
    }
}

/// `value` or `in:a,b,"c,d"` into the values a column may have.
fn in_filter(expr: &str) -> Result<Vec<String>, Error> {
    match split_op(expr) {
        ("eq", v) => Ok(vec![v.to_string()]),
        ("in", list) => split_quoted(list),
        (op, _) => Err(Error::bad_request(format!(
            "Unable to filter by unknown operator '{op}'."
        ))),
    }
}

/// Splits `a,"b,c",d` on commas outside double quotes, as Glance's
/// `split_filter_value_for_quotes` does; an unclosed quote is a 400.
fn split_quoted(list: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in list.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(Error::bad_request(format!(
            "Invalid filter value {list}. The quote is not closed."
        )));
    }
    out.push(cur);
    Ok(out)
}

/// `created_at`/`updated_at` filters: `[gt|gte|lt|lte|eq|neq:]<ISO 8601>`.
fn time_filter(col: &'static str, expr: &str) -> Result<(&'static str, &'static str, i64), Error> {
    let (op, time) = split_op(expr);
    let op = match op {
        "gt" => "gt",
        "gte" => "gte",
        "lt" => "lt",
        "lte" => "lte",
        "eq" => "eq",
        "neq" => "neq",
        _ => {
            return Err(Error::bad_request(
                "Unable to filter on a unknown operator.",
            ));
        }
    };
    let micros = ferro_common::time::parse_iso8601(time).ok_or_else(|| {
        Error::bad_request(format!(
            "Bad \"{col}\" query filter format. Use ISO 8601 DateTime notation."
        ))
    })?;
    Ok((col, op, micros))
}

/// Query parameters of `GET /v2/images` into a filter and a page (glance
/// `RequestDeserializer.index`).
fn list_query(params: &[(String, String)]) -> Result<(ListFilter, Page), Error> {
    let mut f = ListFilter::default();
    let mut sort_keys: Vec<String> = Vec::new();
    let mut sort_dirs: Vec<bool> = Vec::new();
    let mut sort: Vec<(String, bool)> = Vec::new();
    let mut page = Page {
        sort: Vec::new(),
        marker: None,
        limit: DEFAULT_LIMIT,
        properties: Vec::new(),
    };
    let dir = |d: &str| match d {
        "asc" => Ok(false),
        "desc" => Ok(true),
        other => Err(Error::bad_request(format!(
            "Invalid sort direction: {other}"
        ))),
    };
    let key = |k: &str| {
        if SORT_KEYS.contains(&k) {
            Ok(k.to_string())
        } else {
            Err(Error::bad_request(format!(
                "Invalid sort key: {k}. It must be one of the following: {}.",
                SORT_KEYS.join(", ")
            )))
        }
    };
    for (k, v) in params {
        match k.as_str() {
            "marker" => page.marker = Some(v.clone()),
            "limit" => {
                let n = parse_int(k, v)?;
                if n < 0 {
                    return Err(Error::bad_request("limit param must be positive"));
                }
                page.limit = (n as usize).min(MAX_LIMIT);
            }
            "sort_key" => {
                for part in v.split(',') {
                    sort_keys.push(key(part.trim())?);
                }
            }
            "sort_dir" => {
                for part in v.split(',') {
                    sort_dirs.push(dir(part.trim())?);
                }
            }
            "sort" => {
                for part in v.split(',') {
                    let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
                    sort.push((key(k.trim())?, dir(d.trim())?));
                }
            }
            "name" | "id" | "status" | "disk_format" | "container_format" => {
                let col = match k.as_str() {
                    "name" => "name",
                    "id" => "id",
                    "status" => "status",
                    "disk_format" => "disk_format",
                    _ => "container_format",
                };
                f.any_of.push((col, in_filter(v)?));
            }
            "owner" => f.owner = Some(v.clone()),
            "visibility" => {
                if v != "all" && !VISIBILITIES.contains(&v.as_str()) {
                    return Err(Error::bad_request(format!("Invalid visibility value: {v}")));
                }
                f.visibility = Some(v.clone());
            }
            "tag" => f.tags.push(v.clone()),
            "protected" => f.protected = Some(parse_bool(k, v)?),
            "os_hidden" => f.os_hidden = parse_bool(k, v)?,
            // An exact size is both bounds.
            "size" => {
                let n = parse_int(k, v)?;
                f.size_min = Some(n);
                f.size_max = Some(n);
            }
            "size_min" => f.size_min = Some(parse_int(k, v)?),
            "size_max" => f.size_max = Some(parse_int(k, v)?),
            "member_status" => {
                if !matches!(v.as_str(), "pending" | "accepted" | "rejected" | "all") {
                    return Err(Error::bad_request(format!("Invalid status value: {v}")));
                }
                f.member_status = v.clone();
            }
            "created_at" => f.times.push(time_filter("created_at", v)?),
            "updated_at" => f.times.push(time_filter("updated_at", v)?),
            _ => page.properties.push((k.clone(), v.clone())),
        }
    }
    if !sort.is_empty() && (!sort_keys.is_empty() || !sort_dirs.is_empty()) {
        return Err(Error::bad_request(
            "The sort and sort_key/sort_dir parameters cannot be used together.",
        ));
    }
    if sort.is_empty() {
        if sort_keys.is_empty() {
            sort_keys.push("created_at".into());
        }
        if sort_dirs.len() > 1 && sort_dirs.len() != sort_keys.len() {
            return Err(Error::bad_request(
                "Number of sort dirs does not match the number of sort keys",
            ));
        }
        let default_dir = sort_dirs.first().copied().unwrap_or(true);
        for (i, k) in sort_keys.into_iter().enumerate() {
            sort.push((k, sort_dirs.get(i).copied().unwrap_or(default_dir)));
        }
    }
    page.sort = sort;
    Ok((f, page))
}

/// A Glance collection page: `{key: items, "first", "schema"}`, and `next` when there is a
/// further page. The links repeat the query without its marker (`ResponseSerializer.index`).
pub(crate) fn collection(
    path: &str,
    key: &str,
    items: Vec<Value>,
    schema: &str,
    params: Vec<(String, String)>,
    next: Option<String>,
) -> Value {
    let mut rest: Vec<(String, String)> =
        params.into_iter().filter(|(k, _)| k != "marker").collect();
    let mut body = json!({ key: items, "first": path, "schema": schema });
    if !rest.is_empty() {
        body["first"] = json!(format!("{path}?{}", urlencode(&rest)));
    }
    if let Some(marker) = next {
        rest.push(("marker".into(), marker));
        body["next"] = json!(format!("{path}?{}", urlencode(&rest)));
    }
    body
}

async fn image_list(
    State(s): S,
    Auth(ctx): Auth,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult {
    let (filter, page) = list_query(&params)?;
    let (images, next) = s.list(&ctx, filter, &page).await?;
    let images = images.iter().map(|i| i.to_json()).collect();
    let body = collection(
        "/v2/images",
        "images",
        images,
        "/v2/schemas/images",
        params,
        next,
    );
    json_response(StatusCode::OK, body)
}

/// Decodes Glance's JSON-patch body, in either of its media types' forms.
fn parse_changes(body: &Value) -> Result<Vec<Change>, Error> {
    let Value::Array(ops) = body else {
        return Err(Error::bad_request(
            "Request body must be a JSON array of operation objects.",
        ));
    };
    let mut out = Vec::new();
    for raw in ops {
        let Value::Object(raw) = raw else {
            return Err(Error::bad_request("Operations must be JSON objects."));
        };
        // The v2.1 media type names the operation in `op` and the pointer in `path` (draft
        // 10); the v2.0 one, which Tempest sends, uses the operation as the key:
        // `{"replace": "/name", "value": ...}`. Glance takes both.
        let (op, path) = match raw.get("op").and_then(Value::as_str) {
            Some(op) => (
                op,
                raw.get("path").and_then(Value::as_str).ok_or_else(|| {
                    Error::bad_request("Unable to find 'path' in JSON Schema change")
                })?,
            ),
            None => ["add", "remove", "replace"]
                .iter()
                .find_map(|k| raw.get(*k).and_then(Value::as_str).map(|p| (*k, p)))
                .ok_or_else(|| {
                    Error::bad_request(
                        "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.",
                    )
                })?,
        };
        let Some(root) = path.strip_prefix('/') else {
            return Err(Error::bad_request(format!(
                "Pointer `{path}` does not start with \"/\"."
            )));
        };
        let invalid =
            || Error::bad_request(format!("Invalid JSON pointer for this resource: '{path}'"));
        let value = || {
            raw.get("value").cloned().ok_or_else(|| {
                Error::bad_request(format!(
                    "Operation \"{op}\" requires a member named \"value\"."
                ))
            })
        };
        // openstacksdk diffs `tags` with jsonpatch, which addresses single items
        // (`/tags/0`); Glance itself only takes whole lists, so items are an extension.
        if let Some(item) = root.strip_prefix("tags/") {
            let index = match item {
                "-" => None,
                n => Some(n.parse::<usize>().map_err(|_| invalid())?),
            };
            out.push(match (op, index) {
                ("add", index) => Change::TagAdd(index, value()?),
                ("replace", Some(i)) => Change::TagReplace(i, value()?),
                ("remove", Some(i)) => Change::TagRemove(i),
                _ => return Err(invalid()),
            });
            continue;
        }
        if root.is_empty() || root.contains('/') {
            // TODO-compat: `/locations/N` pointers.
            return Err(invalid());
        }
        let key = root.replace("~1", "/").replace("~0", "~");
        out.push(match op {
            "add" => Change::Add(key, value()?),
            "replace" => Change::Replace(key, value()?),
            "remove" => Change::Remove(key),
            other => {
                return Err(Error::bad_request(format!(
                    "Invalid operation: `{other}`. It must be one of the following: add, remove, replace."
                )));
            }
        });
    }
    Ok(out)
}

async fn image_update(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let ct = content_type(&headers).unwrap_or("");
    if !PATCH_TYPES.contains(&ct) {
        return Ok(unsupported_media_type(ct));
    }
    let body: Value = ferro_http::json::parse(&body)?;
    let changes = parse_changes(&body)?;
    json_response(
        StatusCode::OK,
        s.update(&ctx, &id, &changes).await?.to_json(),
    )
}

async fn image_tag_add(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    s.tag_add(&ctx, &id, &tag).await?;
    no_content()
}

async fn image_tag_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    s.tag_delete(&ctx, &id, &tag).await?;
    no_content()
}

async fn member_create(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let member = match body.get("member") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => {
            return Err(Error::bad_request(
                "Expected a member in the form: {\"member\": \"image_id\"}",
            )
            .into());
        }
        None => return Err(Error::bad_request("Member to be added not specified").into()),
    };
    let m = s.member_create(&ctx, &id, &member).await?;
    json_response(StatusCode::OK, m.to_json())
}

async fn member_list(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let members = s.member_list(&ctx, &id).await?;
    json_response(
        StatusCode::OK,
        json!({
            "members": members.iter().map(|m| m.to_json()).collect::<Vec<_>>(),
            "schema": "/v2/schemas/members",
        }),
    )
}

async fn member_show(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult {
    json_response(
        StatusCode::OK,
        s.member_show(&ctx, &id, &member).await?.to_json(),
    )
}

async fn member_update(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, member)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult {
    let Some(status) = body.get("status") else {
        return Err(Error::bad_request("Status not specified").into());
    };
    let Some(status) = status.as_str() else {
        return Err(
            Error::bad_request("Expected a status in the form: {\"status\": \"status\"}").into(),
        );
    };
    let m = s.member_update(&ctx, &id, &member, status).await?;
    json_response(StatusCode::OK, m.to_json())
}

async fn member_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult {
    s.member_delete(&ctx, &id, &member).await?;
    no_content()
}

async fn image_deactivate(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    s.set_active(&ctx, &id, false).await?;
    no_content()
}

async fn image_reactivate(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    s.set_active(&ctx, &id, true).await?;
    no_content()
}

async fn image_upload(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    // Glance wants raw bytes; a client that names no type is let through.
    if let Some(ct) = content_type(&headers)
        && ct != "application/octet-stream"
    {
        return Ok(unsupported_media_type(ct));
    }
    // The upload runs in its own task so that a client hanging up mid-way (which drops this
    // handler) still ends in the failure path: image back to queued, partial data removed.
    let task = tokio::spawn(async move {
        let stream = body.into_data_stream();
        s.upload(&ctx, &id, stream).await
    });
    match task.await {
        Ok(r) => r?,
        Err(e) => return Err(Error::internal(format!("upload task: {e}")).into()),
    }
    no_content()
}

/// `PUT /v2/images/{id}/stage`: like an upload, into the staging area (204).
async fn image_stage(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    if let Some(ct) = content_type(&headers)
        && ct != "application/octet-stream"
    {
        return Ok(unsupported_media_type(ct));
    }
    // As for uploads: a client hanging up still ends in the clean-up path.
    let task = tokio::spawn(async move { s.stage(&ctx, &id, body.into_data_stream()).await });
    match task.await {
        Ok(r) => r?,
        Err(e) => return Err(Error::internal(format!("stage task: {e}")).into()),
    }
    no_content()
}

/// `POST /v2/images/{id}/import`: 202 once the import task is under way.
async fn image_import(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult {
    let store = headers
        .get("x-image-meta-store")
        .and_then(|v| v.to_str().ok());
    s.import(&ctx, &id, &body, store).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /v2/images/{id}/tasks`.
async fn image_tasks(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let tasks = s.image_tasks(&ctx, &id).await?;
    json_response(
        StatusCode::OK,
        json!({"tasks": tasks.iter().map(|t| t.to_json()).collect::<Vec<_>>()}),
    )
}

/// `GET /v2/info/import`: the import methods on offer.
async fn info_import(Auth(_ctx): Auth) -> ApiResult {
    json_response(
        StatusCode::OK,
        json!({"import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": crate::import::IMPORT_METHODS,
        }}),
    )
}

/// `GET /v2/info/stores`: the one store, the default.
async fn info_stores(Auth(_ctx): Auth) -> ApiResult {
    json_response(
        StatusCode::OK,
        json!({"stores": [{
            "id": crate::store::STORE_ID,
            "description": "Image data as files under the state directory",
            "default": "true",
        }]}),
    )
}

async fn task_create(State(s): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    let task = s.task_create(&ctx, &body).await?;
    let mut resp = (StatusCode::CREATED, axum::Json(task.to_json())).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/tasks/{}", task.id)) {
        resp.headers_mut().insert("location", v);
    }
    Ok(resp)
}

async fn task_list(
    State(s): S,
    Auth(ctx): Auth,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult {
    let mut q = crate::import::TaskQuery {
        task_type: None,
        status: None,
        sort_key: "created_at".into(),
        descending: true,
        marker: None,
        limit: DEFAULT_LIMIT,
    };
    for (k, v) in &params {
        match k.as_str() {
            "type" => q.task_type = Some(v.clone()),
            "status" => q.status = Some(v.clone()),
            "marker" => q.marker = Some(v.clone()),
            "limit" => {
                let n = parse_int(k, v)?;
                if n < 1 {
                    return Err(Error::bad_request("limit param must be positive").into());
                }
                q.limit = (n as usize).min(MAX_LIMIT);
            }
            "sort_key" => {
                if !["id", "type", "status", "created_at", "updated_at"].contains(&v.as_str()) {
                    return Err(Error::bad_request(format!("Invalid sort key: {v}")).into());
                }
                q.sort_key = v.clone();
            }
            "sort_dir" => {
                q.descending = match v.as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => {
                        return Err(
                            Error::bad_request(format!("Invalid sort direction: {v}")).into()
                        );
                    }
                };
            }
            _ => {}
        }
    }
    let (tasks, next) = s.task_list(&ctx, &q).await?;
    let tasks = tasks.iter().map(|t| t.stub_json()).collect();
    let body = collection(
        "/v2/tasks",
        "tasks",
        tasks,
        "/v2/schemas/tasks",
        params,
        next,
    );
    json_response(StatusCode::OK, body)
}

async fn task_show(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    json_response(StatusCode::OK, s.task_get(&ctx, &id).await?.to_json())
}

/// Tasks are never deleted by a client: they expire (405, as Glance).
async fn task_delete(Auth(_ctx): Auth) -> ApiResult {
    Ok(ferro_http::fault::render_status(
        FaultStyle::Glance,
        StatusCode::METHOD_NOT_ALLOWED,
        "This operation is currently not permitted on Glance Tasks. They are auto deleted after reaching the time based on their expires_at property.",
    ))
}

/// The task schema's properties (glance/api/v2/tasks.py `_TASK_SCHEMA`), without the ones
/// a list leaves out when `partial`.
fn task_properties(partial: bool) -> Value {
    let mut p = json!({
        "id": {"description": "An identifier for the task", "type": "string",
            "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
        "type": {"description": "The type of task represented by this content", "type": "string",
            "enum": ["import", "api_image_import", "location_import"]},
        "status": {"description": "The current status of this task", "type": "string",
            "enum": crate::model::TASK_STATUSES},
        "input": {"description": "The parameters required by task, JSON blob", "type": ["null", "object"]},
        "result": {"description": "The result of current task, JSON blob", "type": ["null", "object"]},
        "owner": {"description": "An identifier for the owner of this task", "type": "string"},
        "message": {"description": "Human-readable informative message only included when appropriate (usually on failure)", "type": "string"},
        "image_id": {"description": "Image associated with the task", "type": "string"},
        "request_id": {"description": "Human-readable informative request-id", "type": "string"},
        "user_id": {"description": "User associated with the task", "type": "string"},
        "expires_at": {"description": "Datetime when this resource would be subject to removal", "type": ["null", "string"]},
        "created_at": {"description": "Datetime when this resource was created", "type": "string"},
        "updated_at": {"description": "Datetime when this resource was updated", "type": "string"},
        "self": {"readOnly": true, "type": "string"},
        "schema": {"readOnly": true, "type": "string"},
    });
    if partial && let Some(m) = p.as_object_mut() {
        for k in ["input", "result", "message"] {
            m.remove(k);
        }
    }
    p
}

async fn schema_task(Auth(_ctx): Auth) -> ApiResult {
    json_response(
        StatusCode::OK,
        json!({"name": "task", "properties": task_properties(false)}),
    )
}

async fn schema_tasks(Auth(_ctx): Auth) -> ApiResult {
    json_response(
        StatusCode::OK,
        json!({
            "name": "tasks",
            "properties": {
                "tasks": {"type": "array", "items": {"name": "task", "properties": task_properties(true)}},
                "schema": {"type": "string"},
                "first": {"type": "string"},
                "next": {"type": "string"},
            },
            "links": [
                {"rel": "first", "href": "{first}"},
                {"rel": "next", "href": "{next}"},
                {"rel": "describedby", "href": "{schema}"},
            ],
        }),
    )
}

/// A single `Range: bytes=...` against an image of `size` bytes, as `(first, last)`
/// inclusive; `Err` when it cannot be satisfied (416). Several ranges are not served.
fn byte_range(header: &str, size: u64) -> Result<(u64, u64), ()> {
    let spec = header.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') || size == 0 {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last N bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        return Ok((size - n.min(size), size - 1));
    }
    let first: u64 = a.parse().map_err(|_| ())?;
    let last: u64 = if b.is_empty() {
        size - 1
    } else {
        b.parse::<u64>().map_err(|_| ())?.min(size - 1)
    };
    if first > last || first >= size {
        return Err(());
    }
    Ok((first, last))
}

async fn image_download(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let Some(image) = s.download_image(&ctx, &id).await? else {
        return no_content();
    };
    let size = u64::try_from(image.size.unwrap_or(0)).unwrap_or(0);
    let range = headers.get(RANGE).and_then(|v| v.to_str().ok());
    let (status, offset, len) = match range.map(|r| byte_range(r, size)) {
        None => (StatusCode::OK, 0, size),
        Some(Ok((first, last))) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        Some(Err(())) => {
            let mut resp = ferro_http::fault::render_status(
                FaultStyle::Glance,
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The requested range is not satisfiable.",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let Some(data) = s.download_data(&image, offset, Some(len)).await? else {
        return no_content();
    };
    let mut resp = (status, Body::from_stream(data)).into_response();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {offset}-{}/{size}", offset + len - 1))
    {
        h.insert(CONTENT_RANGE, v);
    }
    // Glance sends the whole image's md5 on partial answers too.
    if let Some(md5) = image
        .checksum
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        h.insert("content-md5", md5);
    }
    Ok(resp)
}

/// Glance's image schema (glance/api/v2/images.py `get_schema`), enough for clients that
/// validate with it.
pub fn image_schema() -> Value {
    fn nullable_enum(values: &[&str]) -> Vec<Value> {
        std::iter::once(Value::Null)
            .chain(values.iter().map(|v| json!(v)))
            .collect()
    }
    json!({
        "name": "image",
        "properties": {
            "id": {"type": "string", "description": "An identifier for the image",
                "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "name": {"type": ["null", "string"], "description": "Descriptive name for the image", "maxLength": 255},
            "status": {"type": "string", "readOnly": true, "description": "Status of the image",
                "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"]},
            "visibility": {"type": "string", "description": "Scope of image accessibility", "enum": VISIBILITIES},
            "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
            "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
            "checksum": {"type": ["null", "string"], "readOnly": true, "maxLength": 32, "description": "md5 hash of image contents."},
            "os_hash_algo": {"type": ["null", "string"], "readOnly": true, "maxLength": 64, "description": "Algorithm to calculate the os_hash_value"},
            "os_hash_value": {"type": ["null", "string"], "readOnly": true, "maxLength": 128, "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo"},
            "owner": {"type": ["null", "string"], "description": "Owner of the image", "maxLength": 255},
            "size": {"type": ["null", "integer"], "readOnly": true, "description": "Size of image file in bytes"},
            "virtual_size": {"type": ["null", "integer"], "readOnly": true, "description": "Virtual size of image in bytes"},
            "container_format": {"type": ["null", "string"], "description": "Format of the container", "enum": nullable_enum(CONTAINER_FORMATS)},
            "disk_format": {"type": ["null", "string"], "description": "Format of the disk", "enum": nullable_enum(DISK_FORMATS)},
            "created_at": {"type": "string", "readOnly": true, "description": "Date and time of image registration"},
            "updated_at": {"type": "string", "readOnly": true, "description": "Date and time of the last image modification"},
            "tags": {"type": "array", "description": "List of strings related to the image",
                "items": {"type": "string", "maxLength": 255}},
            "direct_url": {"type": "string", "readOnly": true, "description": "URL to access the image file kept in external store"},
            "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
            "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
            "self": {"type": "string", "readOnly": true, "description": "An image self url"},
            "file": {"type": "string", "readOnly": true, "description": "An image file url"},
            "stores": {"type": "string", "readOnly": true, "description": "Store in which image data resides."},
            "schema": {"type": "string", "readOnly": true, "description": "An image schema url"},
            "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                "items": {"type": "object", "properties": {
                    "url": {"type": "string", "maxLength": 255},
                    "metadata": {"type": "object"}},
                    "required": ["url", "metadata"]}},
        },
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

async fn schema_image(Auth(_ctx): Auth) -> ApiResult {
    json_response(StatusCode::OK, image_schema())
}

async fn schema_images(Auth(_ctx): Auth) -> ApiResult {
    json_response(
        StatusCode::OK,
        json!({
            "name": "images",
            "properties": {
                "images": {"type": "array", "items": image_schema()},
                "schema": {"type": "string"},
                "first": {"type": "string"},
                "next": {"type": "string"},
            },
            "links": [
                {"rel": "first", "href": "{first}"},
                {"rel": "next", "href": "{next}"},
                {"rel": "describedby", "href": "{schema}"},
            ],
        }),
    )
}

/// Glance's image member schema (glance/api/v2/image_members.py `get_schema`).
fn member_schema() -> Value {
    json!({
        "name": "member",
        "properties": {
            "created_at": {"type": "string", "description": "Date and time of image member creation"},
            "image_id": {"type": "string", "description": "An identifier for the image",
                "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
            "status": {"type": "string", "description": "The status of this image member",
                "enum": crate::model::MEMBER_STATUSES},
            "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
            "schema": {"type": "string", "readOnly": true},
        },
    })
}

async fn schema_member(Auth(_ctx): Auth) -> ApiResult {
    json_response(StatusCode::OK, member_schema())
}

async fn schema_members(Auth(_ctx): Auth) -> ApiResult {
    json_response(
        StatusCode::OK,
        json!({
            "name": "members",
            "properties": {
                "members": {"type": "array", "items": member_schema()},
                "schema": {"type": "string"},
            },
            "links": [{"rel": "describedby", "href": "{schema}"}],
        }),
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
    fn boolean_filters_ignore_case_as_glance_does() {
        let (f, _) = list_query(&q(&[("os_hidden", "True"), ("protected", "FALSE")])).unwrap();
        assert!(f.os_hidden);
        assert_eq!(f.protected, Some(false));
        assert!(list_query(&q(&[("os_hidden", "yes")])).is_err());
    }

    #[test]
    fn list_query_defaults_and_errors() {
        let (f, p) = list_query(&[]).unwrap();
        assert_eq!(p.sort, vec![("created_at".to_string(), true)]);
        assert_eq!(p.limit, DEFAULT_LIMIT);
        assert!(!f.os_hidden);
        let (f, p) = list_query(&q(&[
            ("tag", "a"),
            ("tag", "b"),
            ("sort", "name:asc"),
            ("limit", "5000"),
            ("hw_x", "1"),
        ]))
        .unwrap();
        assert_eq!(f.tags, vec!["a", "b"]);
        assert_eq!(p.sort, vec![("name".to_string(), false)]);
        assert_eq!(p.limit, MAX_LIMIT);
        assert_eq!(p.properties, q(&[("hw_x", "1")]));
        for bad in [
            ("sort_key", "colour"),
            ("sort_dir", "up"),
            ("limit", "-1"),
            ("protected", "yes"),
            ("visibility", "secret"),
        ] {
            assert_eq!(list_query(&q(&[bad])).unwrap_err().status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn byte_ranges_as_rfc_7233() {
        assert_eq!(byte_range("bytes=0-9", 100), Ok((0, 9)));
        assert_eq!(byte_range("bytes=90-", 100), Ok((90, 99)));
        assert_eq!(byte_range("bytes=90-500", 100), Ok((90, 99)));
        assert_eq!(byte_range("bytes=-10", 100), Ok((90, 99)));
        assert_eq!(byte_range("bytes=-500", 100), Ok((0, 99)));
        for bad in [
            "bytes=100-",
            "bytes=5-1",
            "bytes=-0",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=x-",
        ] {
            assert_eq!(byte_range(bad, 100), Err(()), "{bad}");
        }
    }

    #[test]
    fn patch_ops_are_decoded_and_checked() {
        let c = parse_changes(&json!([
            {"op": "replace", "path": "/name", "value": "x"},
            {"op": "remove", "path": "/hw~1x"},
        ]))
        .unwrap();
        assert_eq!(
            c,
            vec![
                Change::Replace("name".into(), json!("x")),
                Change::Remove("hw/x".into())
            ]
        );
        let c = parse_changes(&json!([
            {"op": "add", "path": "/tags/0", "value": "a"},
            {"op": "add", "path": "/tags/-", "value": "b"},
            {"op": "remove", "path": "/tags/1"},
        ]))
        .unwrap();
        assert_eq!(
            c,
            vec![
                Change::TagAdd(Some(0), json!("a")),
                Change::TagAdd(None, json!("b")),
                Change::TagRemove(1)
            ]
        );
        assert!(parse_changes(&json!([{"op": "remove", "path": "/tags/x"}])).is_err());
        // The v2.0 form, operation as the key (what Tempest's images client sends).
        let old = parse_changes(&json!([{"replace": "/name", "value": "n2"}])).unwrap();
        let new =
            parse_changes(&json!([{"op": "replace", "path": "/name", "value": "n2"}])).unwrap();
        assert_eq!(format!("{old:?}"), format!("{new:?}"));
        for bad in [
            json!({}),
            json!([{"op": "move", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
        ] {
            assert_eq!(parse_changes(&bad).unwrap_err().status(), 400, "{bad}");
        }
    }

    #[test]
    fn versions_list_current_and_v2_links() {
        let v = version_list("http://h:9292");
        let list = v["versions"].as_array().unwrap();
        assert!(list.iter().any(|x| x["id"] == "v2.0"));
        assert_eq!(list.iter().filter(|x| x["status"] == "CURRENT").count(), 1);
        assert_eq!(list[0]["links"][0]["href"], "http://h:9292/v2/");
    }
}
