//! Swift's proxy API: `GET /info` and `/v1/{account}[/{container}[/{object}]]` for every
//! method Swift answers (including `COPY`).
//!
//! The path cannot name the operation, so each request is parsed into a [`Target`] and
//! matched with its method. Handlers stay thin: parse, authorise (`policy`), delegate to the
//! [`ObjectStore`], render. Errors are Swift's: a status with swob's HTML page or upstream's
//! plain text, and every answer carries `X-Trans-Id` and `X-Openstack-Request-Id`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use ferro_common::RequestContext;
use ferro_http::TokenValidator;
use futures::stream::{BoxStream, StreamExt as _};
use md5::Digest as _;
use serde_json::json;

use crate::db::{ContainerRow, ObjectRow, Stat};
use crate::disk::{ObjectMeta, ObjectState, PostedMeta};
use crate::model::*;
use crate::node::DataRef;
use crate::policy::{Want, authorize, is_owner};
use crate::{ObjectStore, bulk, large, model, tempurl};

/// The proxy's state: the store and the token validator.
#[derive(Clone)]
struct Api {
    store: Arc<ObjectStore>,
    validator: Arc<dyn TokenValidator>,
}

/// Swift's API as an axum router.
pub fn router(store: Arc<ObjectStore>, validator: Arc<dyn TokenValidator>) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(Api { store, validator })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            error_response(&SwiftError::status(500), false)
        }))
}

/// What a path names.
#[derive(Debug, PartialEq)]
enum Target {
    Info,
    /// `/healthcheck` (Swift's `healthcheck` middleware).
    Healthcheck,
    Account(String),
    Container(String, String),
    Object(String, String, String),
}

fn parse_target(path: &str) -> SwiftResult<Target> {
    if path == "/info" {
        return Ok(Target::Info);
    }
    if path == "/healthcheck" {
        return Ok(Target::Healthcheck);
    }
    let rest = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix("/v1.0/"))
        .ok_or_else(SwiftError::not_found)?;
    let mut parts = rest.splitn(3, '/');
    let decode = |s: &str| {
        percent_decode(s, false)
            .ok_or_else(|| SwiftError::with_body(412, "Invalid UTF8 or contains NULL"))
    };
    let account = decode(parts.next().unwrap_or_default())?;
    if account.is_empty() {
        return Err(SwiftError::not_found());
    }
    check_name(&account, MAX_ACCOUNT_NAME_LENGTH, "Account")?;
    let container = match parts.next() {
        None | Some("") => return Ok(Target::Account(account)),
        Some(c) => decode(c)?,
    };
    check_name(&container, MAX_CONTAINER_NAME_LENGTH, "Container")?;
    match parts.next() {
        None | Some("") => Ok(Target::Container(account, container)),
        Some(o) => {
            let object = decode(o)?;
            check_object_name(&object)?;
            Ok(Target::Object(account, container, object))
        }
    }
}

/// `tx<21 hex>-<hex unix time>`, Swift's transaction id.
fn trans_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    let now = chrono::Utc::now().timestamp();
    format!("tx{}-{now:010x}", &u[..21])
}

fn query_map(req: &Request) -> SwiftResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for pair in req.uri().query().unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, true)
            .ok_or_else(|| SwiftError::bad_request("Invalid UTF8 in query"))?;
        let v = percent_decode(v, true)
            .ok_or_else(|| SwiftError::bad_request("Invalid UTF8 in query"))?;
        if v.contains('\0') {
            return Err(SwiftError::bad_request("Invalid UTF8 or contains NULL"));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | "t" | "y"
        )
    })
}

/// Swift's error page: `<html><h1>Title</h1><p>Explanation</p></html>` (swob), or
/// upstream's own text where it has one.
fn error_response(e: &SwiftError, head: bool) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (body, ct) = match &e.body {
        Some(b) => (b.clone(), "text/plain; charset=UTF-8"),
        None => (
            reason(e.status)
                .map(|(t, x)| format!("<html><h1>{t}</h1><p>{x}</p></html>"))
                .unwrap_or_default(),
            "text/html; charset=UTF-8",
        ),
    };
    let len = body.len();
    let mut r = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(ct));
    h.insert("content-length", HeaderValue::from(len));
    if e.status == 401 {
        h.insert(
            "www-authenticate",
            HeaderValue::from_static("Keystone uri=\"/v3\""),
        );
    }
    r
}

/// swob's `RESPONSE_REASONS` for the statuses this API answers with.
fn reason(status: u16) -> Option<(&'static str, &'static str)> {
    Some(match status {
        400 => (
            "Bad Request",
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        ),
        401 => (
            "Unauthorized",
            "This server could not verify that you are authorized to access the document you requested.",
        ),
        403 => ("Forbidden", "Access was denied to this resource."),
        404 => ("Not Found", "The resource could not be found."),
        405 => (
            "Method Not Allowed",
            "The method is not allowed for this resource.",
        ),
        409 => (
            "Conflict",
            "There was a conflict when trying to complete your request.",
        ),
        411 => ("Length Required", "Content-Length header required."),
        412 => (
            "Precondition Failed",
            "A precondition for this request was not met.",
        ),
        413 => (
            "Request Entity Too Large",
            "The body of your request was too large for this server.",
        ),
        416 => (
            "Requested Range Not Satisfiable",
            "The Range requested is not available.",
        ),
        422 => (
            "Unprocessable Entity",
            "Unable to process the contained instructions",
        ),
        499 => (
            "Client Disconnect",
            "The client was disconnected during request.",
        ),
        500 => (
            "Internal Error",
            "The server has either erred or is incapable of performing the requested operation.",
        ),
        501 => (
            "Not Implemented",
            "The requested method is not implemented by this server.",
        ),
        503 => (
            "Service Unavailable",
            "The server is currently unavailable. Please try again at a later time.",
        ),
        _ => return None,
    })
}

/// A response with `status`, `headers` and `body`.
fn respond(status: u16, headers: Vec<(String, String)>, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = r.headers_mut();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.insert(k, v);
        }
    }
    r
}

/// A bodiless answer as Swift gives for PUT, POST and DELETE (`Content-Length: 0`).
fn empty(status: u16) -> Response {
    text_response(status, vec![], String::new(), "text/html; charset=UTF-8")
}

/// `201 Created` for a stored object, with its `Etag` and `Last-Modified` and `extra`.
fn created(meta: &ObjectMeta, extra: Vec<(String, String)>) -> Response {
    let mut headers = vec![
        ("Etag".into(), meta.etag.clone()),
        ("Last-Modified".into(), meta.timestamp.http_date()),
    ];
    headers.extend(extra);
    text_response(201, headers, String::new(), "text/html; charset=UTF-8")
}

/// What a new object is, besides its bytes.
struct NewObject {
    /// `Content-Length`, when the client sent one.
    length: Option<u64>,
    /// The client's `ETag`, to verify.
    etag: Option<String>,
    content_type: String,
    user: Metadata,
    headers: Metadata,
    /// A manifest's logical size and etag, recorded instead of its own bytes'.
    logical: Option<(u64, String)>,
}

/// The files an object reads from, in order, with their sizes: one for a plain object,
/// the segments' for a large one.
type Pieces = Vec<(DataRef, u64)>;

/// Streams `len` bytes from `offset` of the concatenation of `pieces`.
fn pieces_stream(
    pieces: Pieces,
    offset: u64,
    len: u64,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let mut streams = Vec::new();
    let mut pos = 0u64;
    for (data, size) in pieces {
        let (start, end) = (pos, pos + size);
        pos = end;
        let s = offset.max(start);
        let e = (offset + len).min(end);
        if s < e {
            streams.push(data.stream(s - start, e - s));
        }
    }
    futures::stream::iter(streams).flatten().boxed()
}

fn text_response(
    status: u16,
    mut headers: Vec<(String, String)>,
    body: String,
    ct: &str,
) -> Response {
    headers.push(("content-type".into(), ct.into()));
    headers.push(("content-length".into(), body.len().to_string()));
    respond(status, headers, Body::from(body))
}

async fn dispatch(State(api): State<Api>, req: Request) -> Response {
    let tx = trans_id();
    let head = req.method() == Method::HEAD;
    let mut resp = match handle(&api, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e, head),
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tx) {
        h.insert("x-trans-id", v.clone());
        h.insert("x-openstack-request-id", v);
    }
    resp
}

async fn handle(api: &Api, req: Request) -> SwiftResult<Response> {
    let target = parse_target(req.uri().path())?;
    if target == Target::Info {
        return match *req.method() {
            Method::GET | Method::HEAD => Ok(info()),
            _ => Err(SwiftError::status(405)),
        };
    }
    if target == Target::Healthcheck {
        // Any method, no token: `200 OK` while the proxy answers.
        return Ok(text_response(200, vec![], "OK".into(), "text/plain"));
    }
    let ctx = match header(req.headers(), "x-auth-token") {
        None => None,
        Some(token) => match api.validator.validate(token).await {
            Ok(ctx) => Some(ctx),
            Err(_) => return Err(SwiftError::status(401)),
        },
    };
    let mut h = Handler {
        store: &api.store,
        ctx: ctx.as_ref(),
        temp_container: None,
    };
    let method = req.method().clone();
    // The Content-Disposition a temporary URL's GET answers with, and whether the object's
    // own one (if it has one) is kept instead.
    let mut disposition: Option<(String, bool)> = None;
    if let Target::Object(a, c, o) = &target {
        let q = query_map(&req)?;
        // Swift's tempurl runs before keystoneauth: when a request carries a temporary URL's
        // parameters, the URL alone decides, token or not (an expired URL is 401 even for
        // the owner).
        if let (Some(sig), Some(expires)) = (q.get("temp_url_sig"), q.get("temp_url_expires")) {
            h.check_tempurl(
                a,
                c,
                o,
                method.as_str(),
                sig,
                expires,
                q.get("temp_url_prefix"),
            )
            .await?;
            h.temp_container = Some(c.clone());
            if method == Method::GET {
                let format = |kind: &str, name: &str| {
                    format!(
                        "{kind}; filename=\"{}\"; filename*=UTF-8''{}",
                        name.replace('"', "\\\""),
                        percent_encode(name)
                    )
                };
                let basename = o.rsplit('/').next().unwrap_or(o);
                disposition = Some(match (q.contains_key("inline"), q.get("filename")) {
                    (true, Some(name)) => (format("inline", name), false),
                    (true, None) => ("inline".to_string(), false),
                    (false, Some(name)) => (format("attachment", name), false),
                    // The object's own Content-Disposition, else an attachment named
                    // after the object.
                    (false, None) => (format("attachment", basename), true),
                });
            }
        }
    }
    let mut resp = route(&h, target, method, req).await?;
    if let Some((value, keep_own)) = disposition
        && resp.status().is_success()
        && !(keep_own && resp.headers().contains_key("content-disposition"))
        && let Ok(v) = HeaderValue::from_str(&value)
    {
        resp.headers_mut().insert("content-disposition", v);
    }
    Ok(resp)
}

async fn route(
    h: &Handler<'_>,
    target: Target,
    method: Method,
    req: Request,
) -> SwiftResult<Response> {
    match target {
        Target::Info | Target::Healthcheck => Ok(info()),
        Target::Account(a) => match method.as_str() {
            "GET" | "HEAD" => h.account_get(&a, req).await,
            "POST" | "DELETE" if req.uri().query().is_some_and(|q| q.contains("bulk-delete")) => {
                h.bulk_delete(&a, req).await
            }
            "POST" => h.account_post(&a, req.headers()).await,
            "PUT" if let Some(format) = extract_format(&req)? => {
                h.extract_archive(&a, "", &format, req).await
            }
            _ => Err(SwiftError::status(405)),
        },
        Target::Container(a, c) => match method.as_str() {
            "GET" | "HEAD" => h.container_get(&a, &c, req).await,
            "PUT" if let Some(format) = extract_format(&req)? => {
                h.extract_archive(&a, &c, &format, req).await
            }
            "PUT" => h.container_put(&a, &c, req.headers()).await,
            "POST" => h.container_post(&a, &c, req.headers()).await,
            "DELETE" => h.container_delete(&a, &c).await,
            _ => Err(SwiftError::status(405)),
        },
        Target::Object(a, c, o) => match method.as_str() {
            "GET" | "HEAD" => h.object_get(&a, &c, &o, req).await,
            "PUT" if let Some(format) = extract_format(&req)? => {
                h.extract_archive(&a, &format!("{c}/{o}"), &format, req)
                    .await
            }
            "PUT" => h.object_put(&a, &c, &o, req).await,
            "POST" => h.object_post(&a, &c, &o, req.headers()).await,
            "DELETE" => h.object_delete(&a, &c, &o, req).await,
            "COPY" => h.object_copy(&a, &c, &o, req).await,
            _ => Err(SwiftError::status(405)),
        },
    }
}

/// The archive format of a `PUT ?extract-archive=<format>` (bulk middleware).
fn extract_format(req: &Request) -> SwiftResult<Option<String>> {
    if !req
        .uri()
        .query()
        .is_some_and(|q| q.contains("extract-archive"))
    {
        return Ok(None);
    }
    Ok(query_map(req)?.remove("extract-archive"))
}

/// `GET /info`: the cluster's capabilities and limits.
fn info() -> Response {
    let body = json!({
        "swift": {
            "version": "2.35.0",
            "max_file_size": MAX_FILE_SIZE,
            "max_meta_name_length": MAX_META_NAME_LENGTH,
            "max_meta_value_length": MAX_META_VALUE_LENGTH,
            "max_meta_count": MAX_META_COUNT,
            "max_meta_overall_size": MAX_META_OVERALL_SIZE,
            "max_header_size": 8192,
            "max_object_name_length": MAX_OBJECT_NAME_LENGTH,
            "max_container_name_length": MAX_CONTAINER_NAME_LENGTH,
            "max_account_name_length": MAX_ACCOUNT_NAME_LENGTH,
            "container_listing_limit": LISTING_LIMIT,
            "account_listing_limit": LISTING_LIMIT,
            "extra_header_count": 0,
            "valid_api_versions": ["v1", "v1.0"],
            "policies": [{"name": "Policy-0", "aliases": "Policy-0", "default": true}],
            "allow_account_management": false,
            "account_autocreate": true,
            "strict_cors_mode": true,
        },
        "keystoneauth": {},
        "slo": {
            "max_manifest_segments": large::MAX_SEGMENTS,
            "max_manifest_size": large::MAX_MANIFEST_SIZE,
            "min_segment_size": 1,
        },
        "dlo": {"max_segments": LISTING_LIMIT},
        "tempurl": {
            "methods": ["GET", "HEAD", "PUT", "POST", "DELETE"],
            "allowed_digests": ["sha1", "sha256", "sha512"],
        },
        "bulk_delete": {"max_deletes_per_request": LISTING_LIMIT, "max_failed_deletes": LISTING_LIMIT},
        "bulk_upload": {"max_containers_per_extraction": LISTING_LIMIT, "max_failed_extractions": 1000},
        "versioned_writes": {"allowed_flags": ["x-versions-location", "x-history-location"]},
        "container_quotas": {},
        "account_quotas": {},
    });
    text_response(
        200,
        vec![],
        body.to_string(),
        "application/json; charset=UTF-8",
    )
}

/// Title-cases a header name piece by piece (`color-name` → `Color-Name`).
fn title(name: &str) -> String {
    name.split('-')
        .map(capitalise)
        .collect::<Vec<_>>()
        .join("-")
}

fn meta_headers(meta: &Metadata, kind: &str) -> Vec<(String, String)> {
    meta.iter()
        .filter(|(k, _)| !k.starts_with("sys:"))
        .map(|(k, v)| {
            (
                format!("X-{}-Meta-{}", capitalise(kind), title(k)),
                v.clone(),
            )
        })
        .collect()
}

/// The listing format from `?format=` or else the `Accept` header (Swift's
/// `get_listing_content_type`).
fn list_format(q: &HashMap<String, String>, headers: &HeaderMap) -> ListFormat {
    let accept = match q.get("format").map(|f| f.to_ascii_lowercase()) {
        Some(f) if f == "json" => "application/json".to_string(),
        Some(f) if f == "xml" => "application/xml".to_string(),
        Some(_) => "text/plain".to_string(),
        None => header(headers, "accept").unwrap_or("").to_ascii_lowercase(),
    };
    if accept.contains("application/json") {
        ListFormat::Json
    } else if accept.contains("application/xml") || accept.contains("text/xml") {
        ListFormat::Xml
    } else {
        ListFormat::Plain
    }
}

fn list_params(q: &HashMap<String, String>) -> SwiftResult<ListParams> {
    let limit = match q.get("limit") {
        None => LISTING_LIMIT,
        Some(l) => {
            let n: i64 = l.parse().map_err(|_| {
                SwiftError::with_body(412, "Value of limit must be a positive integer")
            })?;
            if n < 0 {
                return Err(SwiftError::with_body(
                    412,
                    "Value of limit must be a positive integer",
                ));
            }
            if n as usize > LISTING_LIMIT {
                return Err(SwiftError::with_body(
                    412,
                    format!("Maximum limit is {LISTING_LIMIT}"),
                ));
            }
            n as usize
        }
    };
    let delimiter = q.get("delimiter").filter(|d| !d.is_empty()).cloned();
    if let Some(d) = &delimiter
        && (d.chars().count() > 1 || d.chars().next().is_some_and(|c| c as u32 > 254))
    {
        return Err(SwiftError::with_body(412, "Bad delimiter"));
    }
    Ok(ListParams {
        prefix: q.get("prefix").cloned().unwrap_or_default(),
        delimiter,
        marker: q.get("marker").cloned().unwrap_or_default(),
        end_marker: q.get("end_marker").filter(|m| !m.is_empty()).cloned(),
        limit,
        reverse: truthy(q.get("reverse").map(String::as_str)),
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An account listing's JSON row.
#[derive(serde::Serialize)]
struct ContainerItem<'a> {
    bytes: i64,
    count: i64,
    last_modified: String,
    name: &'a str,
}

/// Renders a listing: 204 for an empty plain listing, else 200 in the asked format.
fn render_listing<T>(
    status_headers: Vec<(String, String)>,
    format: ListFormat,
    root: (&str, &str),
    entries: &[Entry<T>],
    json_item: impl Fn(&mut Vec<u8>, &str, &T) -> serde_json::Result<()>,
    xml_item: impl Fn(&str, &T) -> String,
    head: bool,
) -> Response {
    let (body, ct) = match format {
        ListFormat::Plain => {
            let mut s = String::new();
            for e in entries {
                match e {
                    Entry::Item(n, _) => s.push_str(n),
                    Entry::Subdir(n) => s.push_str(n),
                }
                s.push('\n');
            }
            (s, "text/plain; charset=utf-8")
        }
        ListFormat::Json => {
            // Each row serialised straight into the body (no JSON tree in between).
            #[derive(serde::Serialize)]
            struct Subdir<'a> {
                subdir: &'a str,
            }
            let mut out = Vec::with_capacity(entries.len() * 160 + 2);
            out.push(b'[');
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let written = match e {
                    Entry::Item(n, r) => json_item(&mut out, n, r),
                    Entry::Subdir(s) => serde_json::to_writer(&mut out, &Subdir { subdir: s }),
                };
                if let Err(e) = written {
                    return error_response(&SwiftError::unavailable(e), head);
                }
            }
            out.push(b']');
            (
                String::from_utf8(out).unwrap_or_default(),
                "application/json; charset=utf-8",
            )
        }
        ListFormat::Xml => {
            let mut s = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{} name=\"{}\">",
                root.0,
                xml_escape(root.1)
            );
            for e in entries {
                match e {
                    Entry::Item(n, r) => s.push_str(&xml_item(n, r)),
                    Entry::Subdir(d) => s.push_str(&format!(
                        "<subdir name=\"{0}\"><name>{0}</name></subdir>",
                        xml_escape(d)
                    )),
                }
            }
            s.push_str(&format!("</{}>", root.0));
            (s, "application/xml; charset=utf-8")
        }
    };
    let status = if head || (format == ListFormat::Plain && entries.is_empty()) {
        204
    } else {
        200
    };
    let mut headers = status_headers;
    headers.push(("content-type".into(), ct.into()));
    if status == 204 {
        headers.push(("content-length".into(), "0".into()));
        respond(status, headers, Body::empty())
    } else {
        headers.push(("content-length".into(), body.len().to_string()));
        respond(status, headers, Body::from(body))
    }
}

/// A guess of the content type from the object name's extension, as Python's `mimetypes`
/// would for the common ones; `application/octet-stream` otherwise.
fn guess_content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "text" | "log" | "conf" | "cfg" | "ini" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "iso" => "application/x-iso9660-image",
        "qcow2" | "img" | "raw" | "bin" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

/// Headers Swift keeps with an object besides its user metadata.
const KEPT_HEADERS: [&str; 3] = [
    "content-disposition",
    "content-encoding",
    "x-object-manifest",
];

/// Set on a static large object's manifest (by the SLO code only, never from a client).
const SLO_HEADER: &str = "x-static-large-object";

/// A byte range request (`bytes=0-9,20-,-5`) resolved against `size`: `Ok(None)` when the
/// header is absent or malformed (the whole object is served, as swob does), `Err(416)` when
/// no range is satisfiable.
fn parse_ranges(value: Option<&str>, size: u64) -> SwiftResult<Option<Vec<(u64, u64)>>> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut any = false;
    for part in spec.split(',') {
        let part = part.trim();
        let Some((a, b)) = part.split_once('-') else {
            return Ok(None);
        };
        let (a, b) = (a.trim(), b.trim());
        let range = if a.is_empty() {
            let Ok(n) = b.parse::<u64>() else {
                return Ok(None);
            };
            any = true;
            if n == 0 || size == 0 {
                continue;
            }
            (size.saturating_sub(n), size - 1)
        } else {
            let Ok(start) = a.parse::<u64>() else {
                return Ok(None);
            };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e,
                    _ => return Ok(None),
                }
            };
            any = true;
            if start >= size {
                continue;
            }
            (start, end.min(size - 1))
        };
        out.push(range);
    }
    if !any {
        return Ok(None);
    }
    if out.is_empty() {
        return Err(SwiftError::status(416));
    }
    Ok(Some(out))
}

/// Objects up to this size are read whole and checked against their ETag before a GET
/// answers; larger ones are checked as they stream.
const VERIFY_BEFORE_SENDING: u64 = 1 << 20;

/// A plain object: its bytes are its own, and its ETag their md5 (not a large object's
/// manifest).
fn is_plain(meta: &ObjectMeta) -> bool {
    !meta.headers.contains_key(SLO_HEADER) && !meta.headers.contains_key("x-object-manifest")
}

fn md5_hex(bytes: &[u8]) -> String {
    hex(&md5::Md5::digest(bytes))
}

/// What a GET checks an object's bytes against: its CRC-32C when recorded, else its ETag.
#[derive(Clone)]
enum Checksum {
    Crc32c(u32),
    Md5(String),
}

impl Checksum {
    fn of(meta: &ObjectMeta) -> Checksum {
        match meta.crc32c {
            Some(c) => Checksum::Crc32c(c),
            None => Checksum::Md5(meta.etag.clone()),
        }
    }

    fn matches(&self, bytes: &[u8]) -> bool {
        match self {
            Checksum::Crc32c(c) => crate::disk::CRC32C.checksum(bytes) == *c,
            Checksum::Md5(etag) => md5_hex(bytes) == *etag,
        }
    }
}

/// A running [`Checksum`] over streamed chunks.
enum RunningChecksum {
    Crc32c(crc::Digest<'static, u32, crc::Table<16>>, u32),
    Md5(md5::Md5, String),
}

impl RunningChecksum {
    fn new(c: Checksum) -> Self {
        match c {
            Checksum::Crc32c(want) => RunningChecksum::Crc32c(crate::disk::CRC32C.digest(), want),
            Checksum::Md5(etag) => RunningChecksum::Md5(md5::Md5::new(), etag),
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        match self {
            RunningChecksum::Crc32c(d, _) => d.update(chunk),
            RunningChecksum::Md5(d, _) => d.update(chunk),
        }
    }

    fn matches(self) -> bool {
        match self {
            RunningChecksum::Crc32c(d, want) => d.finalize() == want,
            RunningChecksum::Md5(d, etag) => hex(&d.finalize()) == etag,
        }
    }
}

/// Bodies from this size on are summed on a blocking thread beside their writes (md5 costs
/// about 0.1 s of CPU per 64 MiB, which the writes need not wait for).
const SUM_ASIDE_FROM: u64 = 1 << 20;

/// An object body's md5 (its ETag) and CRC-32C as it streams in: inline for small
/// bodies, on a thread of its own for large ones.
enum BodySums {
    Inline(md5::Md5, crc::Digest<'static, u32, crc::Table<16>>),
    Aside(
        tokio::sync::mpsc::Sender<Bytes>,
        tokio::task::JoinHandle<(String, u32)>,
    ),
}

impl BodySums {
    fn new(length: Option<u64>) -> BodySums {
        if length.is_none_or(|l| l < SUM_ASIDE_FROM) {
            return BodySums::Inline(md5::Md5::new(), crate::disk::CRC32C.digest());
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let sums = tokio::task::spawn_blocking(move || {
            let mut md5 = md5::Md5::new();
            let mut crc = crate::disk::CRC32C.digest();
            while let Some(chunk) = rx.blocking_recv() {
                md5.update(&chunk);
                crc.update(&chunk);
            }
            (hex(&md5.finalize()), crc.finalize())
        });
        BodySums::Aside(tx, sums)
    }

    async fn update(&mut self, chunk: &Bytes) -> SwiftResult<()> {
        match self {
            BodySums::Inline(md5, crc) => {
                md5.update(chunk);
                crc.update(chunk);
                Ok(())
            }
            BodySums::Aside(tx, _) => tx
                .send(chunk.clone())
                .await
                .map_err(|_| SwiftError::unavailable("object checksum thread ended")),
        }
    }

    /// The md5 as hex and the CRC-32C.
    async fn finish(self) -> SwiftResult<(String, u32)> {
        match self {
            BodySums::Inline(md5, crc) => Ok((hex(&md5.finalize()), crc.finalize())),
            BodySums::Aside(tx, sums) => {
                drop(tx);
                sums.await.map_err(SwiftError::unavailable)
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Quarantines the object whose data `data` is.
async fn quarantine_object(data: &DataRef) -> SwiftResult<()> {
    data.quarantine().await.map_err(SwiftError::unavailable)
}

/// `inner`'s bytes, checked against `checksum` as they pass. The last chunk is held back
/// until the sum is known: on a mismatch the object is quarantined and the stream ends in an
/// error instead, so the response is cut short and no client receives a complete body of
/// wrong bytes.
fn checked_stream(
    inner: BoxStream<'static, Result<Bytes, std::io::Error>>,
    checksum: Checksum,
    data: DataRef,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    struct Check {
        inner: BoxStream<'static, Result<Bytes, std::io::Error>>,
        sum: RunningChecksum,
        held: Option<Bytes>,
        data: DataRef,
    }
    let start = Check {
        inner,
        sum: RunningChecksum::new(checksum),
        held: None,
        data,
    };
    futures::stream::unfold(Some(start), |state| async move {
        let mut c = state?;
        loop {
            match c.inner.next().await {
                Some(Ok(chunk)) => {
                    c.sum.update(&chunk);
                    if let Some(prev) = c.held.replace(chunk) {
                        return Some((Ok(prev), Some(c)));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    if !c.sum.matches() {
                        let _ = quarantine_object(&c.data).await;
                        let e = std::io::Error::other("object failed its checksum; quarantined");
                        return Some((Err(e), None));
                    }
                    return c.held.take().map(|last| (Ok(last), None));
                }
            }
        }
    })
    .boxed()
}

/// The etags an `If-Match` / `If-None-Match` header lists (`*` included).
fn etag_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|e| {
            e.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        })
        .filter(|e| !e.is_empty())
        .collect()
}

struct Handler<'a> {
    store: &'a Arc<ObjectStore>,
    ctx: Option<&'a RequestContext>,
    /// The container a valid temporary URL grants this request.
    temp_container: Option<String>,
}

impl Handler<'_> {
    fn owner(&self, account: &str) -> bool {
        is_owner(&self.store.config, self.ctx, account)
    }

    fn require_owner(&self, account: &str) -> SwiftResult<()> {
        authorize(
            &self.store.config,
            self.ctx,
            account,
            Want::Manage,
            None,
            None,
        )
    }

    /// Checks a temporary URL's signature and expiry against the account's and container's
    /// `Temp-URL-Key`s; 401 `Temp URL invalid` otherwise.
    #[allow(clippy::too_many_arguments)]
    async fn check_tempurl(
        &self,
        account: &str,
        container: &str,
        object: &str,
        method: &str,
        sig: &str,
        expires: &str,
        prefix: Option<&String>,
    ) -> SwiftResult<()> {
        let invalid = || SwiftError::with_body(401, "401 Unauthorized: Temp URL invalid\n");
        let when = tempurl::parse_expires(expires).ok_or_else(invalid)?;
        if when < chrono::Utc::now().timestamp() {
            return Err(invalid());
        }
        let path = match prefix {
            Some(p) if object.starts_with(p.as_str()) => {
                format!("prefix:/v1/{account}/{container}/{p}")
            }
            Some(_) => return Err(invalid()),
            None => format!("/v1/{account}/{container}/{object}"),
        };
        let mut keys = Vec::new();
        for stat in [
            self.store.stat(account, None).await?,
            self.store.stat(account, Some(container)).await?,
        ]
        .into_iter()
        .flatten()
        {
            for k in ["temp-url-key", "temp-url-key-2"] {
                if let Some(v) = stat.metadata.get(k) {
                    keys.push(v.clone());
                }
            }
        }
        // A HEAD may use a URL signed for GET, PUT or POST (upstream's tempurl).
        let methods: &[&str] = match method {
            "HEAD" => &["HEAD", "GET", "PUT", "POST"],
            "GET" | "PUT" | "POST" | "DELETE" => &[method],
            _ => &[],
        };
        if methods
            .iter()
            .any(|m| tempurl::valid(sig, m, expires, &path, &keys))
        {
            Ok(())
        } else {
            Err(invalid())
        }
    }

    /// Authorises a container-level read or an object access through the container's ACLs.
    async fn authorize_container(
        &self,
        account: &str,
        container: &str,
        want: Want,
    ) -> SwiftResult<Option<Stat>> {
        if self.owner(account) || self.temp_container.as_deref() == Some(container) {
            return Ok(None);
        }
        let stat = self.store.stat(account, Some(container)).await?;
        let (read, write) = match &stat {
            Some(s) => (s.metadata.get("sys:read"), s.metadata.get("sys:write")),
            None => (None, None),
        };
        authorize(
            &self.store.config,
            self.ctx,
            account,
            want,
            read.map(String::as_str),
            write.map(String::as_str),
        )?;
        Ok(stat)
    }

    async fn account_get(&self, account: &str, req: Request) -> SwiftResult<Response> {
        self.require_owner(account)?;
        let q = query_map(&req)?;
        let params = list_params(&q)?;
        let format = list_format(&q, req.headers());
        let head = req.method() == Method::HEAD;
        let (stat, entries) = match self.store.list_containers(account, &params).await? {
            Some(found) => found,
            // account_autocreate: an account nobody wrote to yet is empty, not missing.
            None => (
                Stat {
                    created_at: Timestamp::now(),
                    put_timestamp: Timestamp::now(),
                    delete_timestamp: Timestamp(0),
                    metadata: Metadata::new(),
                    count: 0,
                    object_count: 0,
                    bytes_used: 0,
                },
                Vec::new(),
            ),
        };
        let mut headers = vec![
            ("X-Account-Container-Count".into(), stat.count.to_string()),
            (
                "X-Account-Object-Count".into(),
                stat.object_count.to_string(),
            ),
            ("X-Account-Bytes-Used".into(), stat.bytes_used.to_string()),
            (
                "X-Account-Storage-Policy-Policy-0-Container-Count".into(),
                stat.count.to_string(),
            ),
            (
                "X-Account-Storage-Policy-Policy-0-Object-Count".into(),
                stat.object_count.to_string(),
            ),
            (
                "X-Account-Storage-Policy-Policy-0-Bytes-Used".into(),
                stat.bytes_used.to_string(),
            ),
            ("X-Timestamp".into(), stat.created_at.normal()),
            ("X-Put-Timestamp".into(), stat.put_timestamp.normal()),
        ];
        headers.extend(meta_headers(&stat.metadata, "account"));
        Ok(render_listing(
            headers,
            format,
            ("account", account),
            &entries,
            |out, n, r: &ContainerRow| {
                let item = ContainerItem {
                    bytes: r.bytes_used,
                    count: r.object_count,
                    last_modified: Timestamp::parse(&r.put_timestamp)
                        .unwrap_or(Timestamp(0))
                        .iso(),
                    name: n,
                };
                serde_json::to_writer(out, &item)
            },
            |n, r: &ContainerRow| {
                format!(
                    "<container><name>{}</name><count>{}</count><bytes>{}</bytes><last_modified>{}</last_modified></container>",
                    xml_escape(n),
                    r.object_count,
                    r.bytes_used,
                    Timestamp::parse(&r.put_timestamp)
                        .unwrap_or(Timestamp(0))
                        .iso()
                )
            },
            head,
        ))
    }

    async fn account_post(&self, account: &str, headers: &HeaderMap) -> SwiftResult<Response> {
        self.require_owner(account)?;
        let mut meta = metadata_from_headers(headers, "account")?;
        // account_quotas (Swift 2.34+): `X-Account-Quota-Bytes` / `-Count`, kept as system
        // metadata and taking precedence over the older `X-Account-Meta-Quota-Bytes`;
        // `X-Remove-Account-Quota-*` clears one.
        for what in ["bytes", "count"] {
            if let Some(v) = header(headers, &format!("x-account-quota-{what}")) {
                meta.insert(format!("sys:quota-{what}"), v.trim().to_string());
            } else if headers.contains_key(format!("x-remove-account-quota-{what}").as_str()) {
                meta.insert(format!("sys:quota-{what}"), String::new());
            }
        }
        // Only a reseller admin sets an account's quota.
        for (key, what) in [
            ("quota-bytes", "bytes"),
            ("sys:quota-bytes", "bytes"),
            ("sys:quota-count", "count"),
        ] {
            let Some(q) = meta.get(key) else { continue };
            let reseller = self.ctx.is_some_and(|c| {
                c.role_names()
                    .any(|r| r == self.store.config.reseller_admin_role)
            });
            if !reseller {
                return Err(SwiftError::status(403));
            }
            if !q.is_empty() {
                check_quota_value(q, what)?;
            }
        }
        self.store.account_autocreate(account).await?;
        self.store.post_metadata(account, None, &meta).await?;
        Ok(empty(204))
    }

    /// Container metadata from a request: `X-Container-Meta-*` plus the ACLs (owners only).
    fn container_meta(&self, headers: &HeaderMap) -> SwiftResult<Metadata> {
        let mut meta = metadata_from_headers(headers, "container")?;
        if header(headers, "x-versions-location").is_some_and(|v| !v.is_empty())
            && header(headers, "x-history-location").is_some_and(|v| !v.is_empty())
        {
            return Err(SwiftError::bad_request(
                "Only one of X-Versions-Location or X-History-Location may be specified",
            ));
        }
        for (h, key) in [
            ("x-container-read", "sys:read"),
            ("x-container-write", "sys:write"),
            ("x-versions-location", "sys:versions"),
            ("x-history-location", "sys:history"),
        ] {
            if let Some(v) = header(headers, h) {
                meta.insert(key.into(), v.trim().to_string());
            }
            if headers.contains_key(format!("x-remove-{}", &h[2..]).as_str()) {
                meta.insert(key.into(), String::new());
            }
        }
        for (key, what) in [("quota-bytes", "bytes"), ("quota-count", "count")] {
            if let Some(v) = meta.get(key) {
                check_quota_value(v, what)?;
            }
        }
        // Setting one versioning mode turns the other off.
        for (set, other) in [
            ("sys:versions", "sys:history"),
            ("sys:history", "sys:versions"),
        ] {
            if meta.get(set).is_some_and(|v| !v.is_empty()) {
                meta.insert(other.into(), String::new());
            }
        }
        Ok(meta)
    }

    async fn container_put(
        &self,
        account: &str,
        container: &str,
        headers: &HeaderMap,
    ) -> SwiftResult<Response> {
        self.require_owner(account)?;
        if container.is_empty() {
            return Err(SwiftError::not_found());
        }
        let meta = self.container_meta(headers)?;
        let created = self.store.container_put(account, container, &meta).await?;
        Ok(empty(if created { 201 } else { 202 }))
    }

    async fn container_post(
        &self,
        account: &str,
        container: &str,
        headers: &HeaderMap,
    ) -> SwiftResult<Response> {
        self.require_owner(account)?;
        let meta = self.container_meta(headers)?;
        if !self
            .store
            .post_metadata(account, Some(container), &meta)
            .await?
        {
            return Err(SwiftError::not_found());
        }
        Ok(empty(204))
    }

    async fn container_delete(&self, account: &str, container: &str) -> SwiftResult<Response> {
        self.require_owner(account)?;
        self.store.container_delete(account, container).await?;
        Ok(empty(204))
    }

    async fn container_get(
        &self,
        account: &str,
        container: &str,
        req: Request,
    ) -> SwiftResult<Response> {
        self.authorize_container(account, container, Want::ListContainer)
            .await?;
        let q = query_map(&req)?;
        let params = list_params(&q)?;
        let format = list_format(&q, req.headers());
        let head = req.method() == Method::HEAD;
        let Some((stat, entries)) = self.store.list_objects(account, container, &params).await?
        else {
            return Err(SwiftError::not_found());
        };
        let mut headers = vec![
            (
                "X-Container-Object-Count".into(),
                stat.object_count.to_string(),
            ),
            ("X-Container-Bytes-Used".into(), stat.bytes_used.to_string()),
            ("X-Timestamp".into(), stat.created_at.normal()),
            ("X-Put-Timestamp".into(), stat.put_timestamp.normal()),
            ("X-Storage-Policy".into(), "Policy-0".into()),
            ("Last-Modified".into(), stat.put_timestamp.http_date()),
            ("Accept-Ranges".into(), "bytes".into()),
        ];
        headers.extend(meta_headers(&stat.metadata, "container"));
        if self.owner(account) {
            for (key, h) in [
                ("sys:read", "X-Container-Read"),
                ("sys:write", "X-Container-Write"),
                ("sys:versions", "X-Versions-Location"),
                ("sys:history", "X-History-Location"),
            ] {
                if let Some(v) = stat.metadata.get(key) {
                    headers.push((h.into(), v.clone()));
                }
            }
        }
        Ok(render_listing(
            headers,
            format,
            ("container", container),
            &entries,
            |out, n, r: &ObjectRow| {
                // Swift's keys in its order, written field by field (no row struct, no
                // timestamp string): this runs once per listed object.
                use std::io::Write as _;
                out.extend_from_slice(b"{\"bytes\":");
                write!(out, "{}", r.size).map_err(serde_json::Error::io)?;
                out.extend_from_slice(b",\"content_type\":");
                serde_json::to_writer(&mut *out, &r.content_type)?;
                out.extend_from_slice(b",\"hash\":");
                serde_json::to_writer(&mut *out, &r.etag)?;
                out.extend_from_slice(b",\"last_modified\":\"");
                Timestamp::parse(&r.created_at)
                    .unwrap_or(Timestamp(0))
                    .write_iso(out);
                out.extend_from_slice(b"\",\"name\":");
                serde_json::to_writer(&mut *out, n)?;
                out.push(b'}');
                Ok(())
            },
            |n, r: &ObjectRow| {
                format!(
                    "<object><name>{}</name><hash>{}</hash><bytes>{}</bytes><content_type>{}</content_type><last_modified>{}</last_modified></object>",
                    xml_escape(n),
                    r.etag,
                    r.size,
                    xml_escape(&r.content_type),
                    Timestamp::parse(&r.created_at)
                        .unwrap_or(Timestamp(0))
                        .iso()
                )
            },
            head,
        ))
    }

    async fn object_get(
        &self,
        account: &str,
        container: &str,
        object: &str,
        req: Request,
    ) -> SwiftResult<Response> {
        self.authorize_container(account, container, Want::ReadObject)
            .await?;
        let head = req.method() == Method::HEAD;
        // A GET never answers with bytes that no longer match the object's ETag: a small
        // object is checked before it is sent, and a corrupt replica is quarantined (the
        // replicator restores it) and the next one read; a larger one is checked as it
        // streams (see `checked_stream`).
        let mut verified: Option<Bytes> = None;
        let (data, mut meta) = loop {
            let ObjectState::Present { data, meta } =
                self.store.object_state(account, container, object).await?
            else {
                return Err(SwiftError::not_found());
            };
            if head || !is_plain(&meta) || meta.size > VERIFY_BEFORE_SENDING {
                break (data, meta);
            }
            let bytes = data.read_all().await.map_err(SwiftError::unavailable)?;
            if bytes.len() as u64 == meta.size && Checksum::of(&meta).matches(&bytes) {
                verified = Some(bytes);
                break (data, meta);
            }
            quarantine_object(&data).await?;
        };
        let q = query_map(&req)?;
        let is_slo = meta.headers.contains_key(SLO_HEADER);
        if is_slo && q.get("multipart-manifest").is_some_and(|v| v == "get") {
            // The manifest itself, as stored.
            let body = data.read_all().await.map_err(SwiftError::unavailable)?;
            let mut out = object_headers(&meta);
            out.retain(|(k, _)| k != "Etag");
            out.push(("Content-Length".into(), body.len().to_string()));
            out.push((
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ));
            let body = if head {
                Body::empty()
            } else {
                Body::from(body)
            };
            return Ok(respond(200, out, body));
        }
        let pieces = self.pieces(account, &data, &mut meta).await?;
        let headers = req.headers();
        let mut out = object_headers(&meta);
        // Conditional requests, in swob's order.
        if let Some(v) = header(headers, "if-match") {
            let tags = etag_list(v);
            if !tags
                .iter()
                .any(|t| t == "*" || t == meta.etag.trim_matches('"'))
            {
                return Ok(text_response(
                    412,
                    out,
                    String::new(),
                    "text/html; charset=UTF-8",
                ));
            }
        }
        if let Some(v) = header(headers, "if-none-match") {
            let tags = etag_list(v);
            if tags
                .iter()
                .any(|t| t == "*" || t == meta.etag.trim_matches('"'))
            {
                out.retain(|(k, _)| k != "Content-Type");
                return Ok(respond(304, out, Body::empty()));
            }
        }
        let modified = meta.timestamp.0.div_ceil(100_000) as i64;
        if let Some(since) = header(headers, "if-modified-since").and_then(parse_http_date)
            && modified <= since
        {
            return Ok(respond(304, out, Body::empty()));
        }
        if let Some(since) = header(headers, "if-unmodified-since").and_then(parse_http_date)
            && modified > since
        {
            return Ok(text_response(
                412,
                out,
                String::new(),
                "text/html; charset=UTF-8",
            ));
        }
        let size = meta.size;
        let ranges = match parse_ranges(header(headers, "range"), size) {
            Ok(r) => r,
            Err(e) => {
                let mut r = error_response(&e, head);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert("content-range", v);
                }
                return Ok(r);
            }
        };
        out.push(("Content-Type".into(), meta.content_type.clone()));
        match ranges {
            None => {
                out.push(("Content-Length".into(), size.to_string()));
                let body = if head {
                    Body::empty()
                } else if let Some(bytes) = verified {
                    Body::from(bytes)
                } else if is_plain(&meta) {
                    Body::from_stream(checked_stream(
                        pieces_stream(pieces, 0, size),
                        Checksum::of(&meta),
                        data,
                    ))
                } else {
                    Body::from_stream(pieces_stream(pieces, 0, size))
                };
                Ok(respond(200, out, body))
            }
            Some(r) if r.len() == 1 => {
                let (s, e) = r[0];
                out.push(("Content-Length".into(), (e - s + 1).to_string()));
                out.push(("Content-Range".into(), format!("bytes {s}-{e}/{size}")));
                let body = if head {
                    Body::empty()
                } else {
                    Body::from_stream(pieces_stream(pieces, s, e - s + 1))
                };
                Ok(respond(206, out, body))
            }
            Some(r) => {
                let boundary = uuid::Uuid::new_v4().simple().to_string();
                let ct = meta.content_type.clone();
                out.retain(|(k, _)| k != "Content-Type");
                out.push((
                    "Content-Type".into(),
                    format!("multipart/byteranges;boundary={boundary}"),
                ));
                let mut parts: Vec<BoxStream<'static, Result<Bytes, std::io::Error>>> = Vec::new();
                let mut total = 0u64;
                for (s, e) in r {
                    let head_part = format!(
                        "--{boundary}\r\nContent-Type: {ct}\r\nContent-Range: bytes {s}-{e}/{size}\r\n\r\n"
                    );
                    total += head_part.len() as u64 + (e - s + 1) + 2;
                    parts.push(
                        futures::stream::once(async move { Ok(Bytes::from(head_part)) }).boxed(),
                    );
                    parts.push(pieces_stream(pieces.clone(), s, e - s + 1));
                    parts.push(
                        futures::stream::once(async { Ok(Bytes::from_static(b"\r\n")) }).boxed(),
                    );
                }
                let tail = format!("--{boundary}--");
                total += tail.len() as u64;
                parts.push(futures::stream::once(async move { Ok(Bytes::from(tail)) }).boxed());
                out.push(("Content-Length".into(), total.to_string()));
                let body = if head {
                    Body::empty()
                } else {
                    Body::from_stream(futures::stream::iter(parts).flatten())
                };
                Ok(respond(206, out, body))
            }
        }
    }

    /// The files `meta`'s object reads from. For a large object this resolves the segments
    /// (checking the caller may read them) and sets `meta`'s size and etag to the whole's.
    async fn pieces(
        &self,
        account: &str,
        data: &DataRef,
        meta: &mut ObjectMeta,
    ) -> SwiftResult<Pieces> {
        let segments: Vec<(String, String)> = if meta.headers.contains_key(SLO_HEADER) {
            let bytes = data.read_all().await.map_err(SwiftError::unavailable)?;
            let manifest: Vec<large::Segment> =
                serde_json::from_slice(&bytes).map_err(SwiftError::unavailable)?;
            manifest
                .iter()
                .map(|seg| {
                    large::split_segment_path(&seg.name)
                        .ok_or_else(|| SwiftError::unavailable(format!("bad segment {}", seg.name)))
                })
                .collect::<SwiftResult<_>>()?
        } else if let Some(m) = meta.headers.get("x-object-manifest") {
            let Some((c, prefix)) = percent_decode(m, false)
                .as_deref()
                .and_then(|m| m.split_once('/'))
                .map(|(c, p)| (c.to_string(), p.to_string()))
            else {
                return Ok(vec![]);
            };
            self.authorize_container(account, &c, Want::ReadObject)
                .await?;
            let params = ListParams {
                prefix,
                limit: LISTING_LIMIT,
                ..Default::default()
            };
            let listed = self.store.list_objects(account, &c, &params).await?;
            let mut segs = Vec::new();
            for e in listed.map(|(_, e)| e).unwrap_or_default() {
                if let Entry::Item(name, _) = e {
                    segs.push((c.clone(), name));
                }
            }
            let mut size = 0;
            let mut etags = Vec::new();
            let mut pieces = Vec::new();
            for (c, o) in segs {
                if let ObjectState::Present { data, meta: m } =
                    self.store.object_state(account, &c, &o).await?
                {
                    size += m.size;
                    etags.push(m.etag.clone());
                    pieces.push((data, m.size));
                }
            }
            meta.size = size;
            meta.etag = format!(
                "\"{}\"",
                large::combined_etag(etags.iter().map(String::as_str))
            );
            return Ok(pieces);
        } else {
            return Ok(vec![(data.clone(), meta.size)]);
        };
        // Static: every listed segment must still be there with its recorded size.
        let mut pieces = Vec::new();
        let mut checked: Vec<String> = Vec::new();
        for (c, o) in segments {
            if !checked.contains(&c) {
                self.authorize_container(account, &c, Want::ReadObject)
                    .await?;
                checked.push(c.clone());
            }
            let ObjectState::Present { data, meta: m } =
                self.store.object_state(account, &c, &o).await?
            else {
                return Err(SwiftError::with_body(
                    409,
                    format!("Segment /{c}/{o} is missing"),
                ));
            };
            pieces.push((data, m.size));
        }
        meta.etag = format!("\"{}\"", meta.etag);
        Ok(pieces)
    }

    /// `PUT ?multipart-manifest=put`: checks every segment and stores the manifest.
    async fn slo_put(
        &self,
        account: &str,
        container: &str,
        object: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> SwiftResult<Response> {
        let bytes = axum::body::to_bytes(body, large::MAX_MANIFEST_SIZE + 1)
            .await
            .map_err(|_| SwiftError::with_body(413, "Manifest File too large"))?;
        let wanted = large::parse_put_manifest(&bytes)?;
        let mut stored = Vec::new();
        let mut errors = Vec::new();
        for seg in &wanted {
            let Some((c, o)) = large::split_segment_path(&seg.path) else {
                errors.push(format!("{}, Invalid segment path", seg.path));
                continue;
            };
            self.authorize_container(account, &c, Want::ReadObject)
                .await?;
            match self.store.object_state(account, &c, &o).await? {
                ObjectState::Present { meta: m, .. } => {
                    if seg
                        .etag
                        .as_deref()
                        .is_some_and(|e| e.trim_matches('"') != m.etag)
                    {
                        errors.push(format!("{}, Etag Mismatch", seg.path));
                    }
                    if seg.size_bytes.is_some_and(|b| b != m.size) {
                        errors.push(format!("{}, Size Mismatch", seg.path));
                    }
                    stored.push(large::Segment {
                        name: format!("/{c}/{o}"),
                        hash: m.etag.clone(),
                        bytes: m.size,
                        content_type: m.content_type.clone(),
                        last_modified: m.timestamp.iso(),
                    });
                }
                _ => errors.push(format!("{}, 404 Not Found", seg.path)),
            }
        }
        if !errors.is_empty() {
            return Err(SwiftError::bad_request(format!(
                "Errors:\n{}\n",
                errors.join("\n")
            )));
        }
        let total: u64 = stored.iter().map(|s| s.bytes).sum();
        let etag = large::combined_etag(stored.iter().map(|s| s.hash.as_str()));
        let manifest = serde_json::to_vec(&stored).map_err(SwiftError::unavailable)?;
        let user = metadata_from_headers(headers, "object")?;
        let mut kept = kept_headers(headers)?;
        kept.remove("x-object-manifest");
        kept.insert(SLO_HEADER.into(), "True".into());
        let new = NewObject {
            length: Some(manifest.len() as u64),
            etag: None,
            content_type: header(headers, "content-type")
                .map(str::to_string)
                .unwrap_or_else(|| guess_content_type(object).to_string()),
            user,
            headers: kept,
            logical: Some((total, etag)),
        };
        let stream = futures::stream::once(async move { Ok(Bytes::from(manifest)) }).boxed();
        let meta = self
            .write_object(account, container, object, stream, new)
            .await?;
        let mut resp = created(&meta, vec![]);
        if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", meta.etag)) {
            resp.headers_mut().insert("etag", v);
        }
        Ok(resp)
    }

    async fn object_put(
        &self,
        account: &str,
        container: &str,
        object: &str,
        req: Request,
    ) -> SwiftResult<Response> {
        self.authorize_container(account, container, Want::WriteObject)
            .await?;
        let q = query_map(&req)?;
        let (parts, body) = req.into_parts();
        let headers = parts.headers;
        if q.get("multipart-manifest").is_some_and(|v| v == "put") {
            return self
                .slo_put(account, container, object, &headers, body)
                .await;
        }
        // `If-None-Match: *`: create only (upstream answers 412 when the object exists).
        if header(&headers, "if-none-match").is_some_and(|v| v.trim() == "*")
            && matches!(
                self.store.object_state(account, container, object).await?,
                ObjectState::Present { .. }
            )
        {
            return Err(SwiftError::status(412));
        }
        if let Some(src) = header(&headers, "x-copy-from") {
            let (sc, so) = parse_copy_path(src)?;
            return self
                .copy(account, &sc, &so, container, object, &headers)
                .await;
        }
        let length = match header(&headers, "content-length") {
            Some(v) => Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| SwiftError::bad_request("Invalid Content-Length header value"))?,
            ),
            None => None,
        };
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        if length.is_none() && !chunked {
            return Err(SwiftError::status(411));
        }
        if length.is_some_and(|l| l > MAX_FILE_SIZE) {
            return Err(SwiftError::status(413));
        }
        let user = metadata_from_headers(&headers, "object")?;
        let content_type = match header(&headers, "content-type") {
            Some(ct) if !truthy(header(&headers, "x-detect-content-type")) => ct.to_string(),
            _ => guess_content_type(object).to_string(),
        };
        let kept = kept_headers(&headers)?;
        let stream = body
            .into_data_stream()
            .map(|r| r.map_err(|_| SwiftError::status(499)))
            .boxed();
        let etag_wanted =
            header(&headers, "etag").map(|e| e.trim_matches('"').to_ascii_lowercase());
        let new = NewObject {
            length,
            etag: etag_wanted,
            content_type,
            user,
            headers: kept,
            logical: None,
        };
        let meta = self
            .write_object(account, container, object, stream, new)
            .await?;
        Ok(created(&meta, vec![]))
    }

    /// Copies the current version of an object into `archive` as
    /// `<3 hex digits of the name's length><name>/<timestamp>` (Swift's versioned_writes).
    /// False when there was nothing to archive.
    async fn archive_current(
        &self,
        account: &str,
        container: &str,
        object: &str,
        archive: &str,
    ) -> SwiftResult<bool> {
        let ObjectState::Present {
            data,
            meta: mut current,
        } = self.store.object_state(account, container, object).await?
        else {
            return Ok(false);
        };
        if self.store.stat(account, Some(archive)).await?.is_none() {
            return Err(SwiftError::with_body(
                412,
                format!("The versions container {archive} does not exist"),
            ));
        }
        self.authorize_container(account, archive, Want::WriteObject)
            .await?;
        let name = format!("{}{}", version_prefix(object), current.timestamp.normal());
        let pieces = self.pieces(account, &data, &mut current).await?;
        let mut kept = current.headers.clone();
        kept.remove(SLO_HEADER);
        let new = NewObject {
            length: Some(current.size),
            etag: None,
            content_type: current.content_type.clone(),
            user: current.user.clone(),
            headers: kept,
            logical: None,
        };
        let stream = pieces_stream(pieces, 0, current.size)
            .map(|r| r.map_err(SwiftError::unavailable))
            .boxed();
        Box::pin(self.store_object(account, archive, &name, stream, new, false)).await?;
        Ok(true)
    }

    /// Stack mode DELETE: after the current version goes, the newest archived one takes
    /// its place and leaves the archive. False when no version was archived.
    async fn restore_previous(
        &self,
        account: &str,
        container: &str,
        object: &str,
        archive: &str,
    ) -> SwiftResult<bool> {
        let params = ListParams {
            prefix: version_prefix(object),
            limit: 1,
            reverse: true,
            ..Default::default()
        };
        let Some((_, entries)) = self.store.list_objects(account, archive, &params).await? else {
            return Ok(false);
        };
        let Some(Entry::Item(name, _)) = entries.into_iter().next() else {
            return Ok(false);
        };
        let ObjectState::Present { data, meta } =
            self.store.object_state(account, archive, &name).await?
        else {
            return Ok(false);
        };
        let new = NewObject {
            length: Some(meta.size),
            etag: None,
            content_type: meta.content_type.clone(),
            user: meta.user.clone(),
            headers: meta.headers.clone(),
            logical: None,
        };
        let stream = data
            .stream(0, meta.size)
            .map(|r| r.map_err(SwiftError::unavailable))
            .boxed();
        // Written straight to the container: restoring must not archive again.
        self.store_object(account, container, object, stream, new, false)
            .await?;
        self.delete_one(account, archive, &name).await?;
        Ok(true)
    }

    /// Streams `body` to a quorum of the object's devices and records it in the container.
    async fn write_object(
        &self,
        account: &str,
        container: &str,
        object: &str,
        body: BoxStream<'static, SwiftResult<Bytes>>,
        new: NewObject,
    ) -> SwiftResult<ObjectMeta> {
        self.store_object(account, container, object, body, new, true)
            .await
    }

    /// Writes an object; `versioned` archives the current version first when the
    /// container keeps versions.
    async fn store_object(
        &self,
        account: &str,
        container: &str,
        object: &str,
        mut body: BoxStream<'static, SwiftResult<Bytes>>,
        new: NewObject,
        versioned: bool,
    ) -> SwiftResult<ObjectMeta> {
        let NewObject {
            length,
            etag: etag_wanted,
            content_type,
            user,
            headers,
            logical,
        } = new;
        // The container's record as recently read (its existence, versioning and quota
        // settings); its totals afresh when a quota counts them.
        let Some(mut cstat) = self.store.stat_cached(account, Some(container)).await? else {
            return Err(SwiftError::not_found());
        };
        if ["quota-bytes", "quota-count"]
            .iter()
            .any(|k| cstat.metadata.contains_key(*k))
        {
            cstat = self
                .store
                .stat(account, Some(container))
                .await?
                .ok_or_else(SwiftError::not_found)?;
        }
        // Versioned container: the current object goes to the archive container first.
        if versioned && let Some((_, archive)) = versioning(&cstat) {
            self.archive_current(account, container, object, &archive)
                .await?;
        }
        let mut astat = self.store.stat_cached(account, None).await?;
        // An account with a quota counts every write before it (the account updater's
        // queue is sent first, the totals read afresh); others need not wait for it.
        if astat.as_ref().is_some_and(|a| {
            ["quota-bytes", "sys:quota-bytes", "sys:quota-count"]
                .iter()
                .any(|k| a.metadata.contains_key(*k))
        }) {
            self.store.flush_account(account).await?;
            astat = self.store.stat(account, None).await?;
        }
        let within_quota = |size: u64| {
            let over = |quota: Option<&String>, used: i64, adding: u64| {
                quota
                    .and_then(|q| q.parse::<u64>().ok())
                    .is_some_and(|q| used.max(0) as u64 + adding > q)
            };
            if over(cstat.metadata.get("quota-bytes"), cstat.bytes_used, size)
                || over(cstat.metadata.get("quota-count"), cstat.object_count, 1)
                || astat.as_ref().is_some_and(|a| {
                    let bytes = a
                        .metadata
                        .get("sys:quota-bytes")
                        .or_else(|| a.metadata.get("quota-bytes"));
                    over(bytes, a.bytes_used, size)
                        || over(a.metadata.get("sys:quota-count"), a.object_count, 1)
                })
            {
                // container_quotas / account_quotas: "Upload exceeds quota."
                return Err(SwiftError::with_body(413, "Upload exceeds quota."));
            }
            Ok(())
        };
        within_quota(logical.as_ref().map(|l| l.0).or(length).unwrap_or(0))?;
        let replicas = self.store.object_replicas();
        let mut writers = self
            .store
            .object_writers(account, container, object)
            .await?;
        let mut sums = BodySums::new(length);
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            total += chunk.len() as u64;
            if total > MAX_FILE_SIZE || length.is_some_and(|l| total > l) {
                return Err(SwiftError::status(413));
            }
            sums.update(&chunk).await?;
            // Every replica at once; a device that fails drops out of the write.
            let results =
                futures::future::join_all(writers.iter_mut().map(|w| w.write(&chunk))).await;
            let failed: Vec<usize> = results
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let e = r.as_ref().err()?;
                    tracing::warn!(error = %e, "object write failed on a device");
                    Some(i)
                })
                .collect();
            for i in failed.into_iter().rev() {
                writers.remove(i);
            }
            if writers.len() < manager_quorum(replicas) {
                return Err(SwiftError::status(503));
            }
        }
        if length.is_some_and(|l| l != total) {
            return Err(SwiftError::status(499));
        }
        let (etag, crc) = sums.finish().await?;
        if etag_wanted.is_some_and(|w| w != etag) {
            return Err(SwiftError::status(422));
        }
        // A manifest's recorded size and ETag are the whole's, not its own bytes'.
        let crc32c = logical.is_none().then_some(crc);
        let (size, etag) = logical.unwrap_or((total, etag));
        within_quota(size)?;
        let meta = ObjectMeta {
            timestamp: Timestamp::now(),
            content_type,
            etag,
            size,
            user,
            headers,
            crc32c,
        };
        self.store.object_commit(writers, &meta, replicas).await?;
        if let Some(at) = crate::manager::delete_at(&meta) {
            self.store
                .expiring_add(at, account, container, object)
                .await?;
        }
        let row = ObjectRow {
            name: object.to_string(),
            created_at: meta.timestamp.normal(),
            size: meta.size as i64,
            content_type: meta.content_type.clone(),
            etag: meta.etag.clone(),
        };
        self.store
            .container_update(account, container, row, false)
            .await?;
        Ok(meta)
    }

    /// Server-side copy (`PUT` with `X-Copy-From`, or `COPY` with `Destination`).
    async fn copy(
        &self,
        account: &str,
        src_container: &str,
        src_object: &str,
        dst_container: &str,
        dst_object: &str,
        headers: &HeaderMap,
    ) -> SwiftResult<Response> {
        self.authorize_container(account, src_container, Want::ReadObject)
            .await?;
        let ObjectState::Present {
            data,
            meta: mut src,
        } = self
            .store
            .object_state(account, src_container, src_object)
            .await?
        else {
            return Err(SwiftError::not_found());
        };
        // A large object copies as the whole of its bytes, into a plain object.
        let pieces = self.pieces(account, &data, &mut src).await?;
        let fresh = truthy(header(headers, "x-fresh-metadata"));
        let mut user = if fresh {
            Metadata::new()
        } else {
            src.user.clone()
        };
        // The copy's own `X-Object-Meta-*` headers win, empty ones too (Swift's copy
        // middleware merges the request's headers over the source's).
        user.extend(metadata_from_headers(headers, "object")?);
        model::check_metadata(&user, "object")?;
        let content_type = header(headers, "content-type")
            .map(str::to_string)
            .unwrap_or_else(|| src.content_type.clone());
        let mut kept = src.headers.clone();
        kept.remove(SLO_HEADER);
        kept.remove("x-object-manifest");
        kept.extend(kept_headers(headers)?);
        let stream = pieces_stream(pieces, 0, src.size)
            .map(|r| r.map_err(SwiftError::unavailable))
            .boxed();
        let new = NewObject {
            length: Some(src.size),
            etag: None,
            content_type,
            user,
            headers: kept,
            logical: None,
        };
        let meta = self
            .write_object(account, dst_container, dst_object, stream, new)
            .await?;
        let mut extra = vec![
            (
                "X-Copied-From".into(),
                percent_encode(&format!("{src_container}/{src_object}")),
            ),
            (
                "X-Copied-From-Last-Modified".into(),
                src.timestamp.http_date(),
            ),
            ("X-Copied-From-Account".into(), percent_encode(account)),
        ];
        // Swift's copy middleware answers with the new object's user metadata and
        // `X-Delete-At` as well (`_create_response_headers`).
        extra.extend(meta_headers(&meta.user, "object"));
        if let Some(at) = meta.headers.get("x-delete-at") {
            extra.push(("X-Delete-At".into(), at.clone()));
        }
        Ok(created(&meta, extra))
    }

    async fn object_copy(
        &self,
        account: &str,
        container: &str,
        object: &str,
        req: Request,
    ) -> SwiftResult<Response> {
        let headers = req.headers();
        let dest = header(headers, "destination")
            .ok_or_else(|| SwiftError::with_body(412, "You must provide a Destination header"))?;
        let (dc, dobj) = parse_copy_path(dest)?;
        self.authorize_container(account, &dc, Want::WriteObject)
            .await?;
        self.copy(account, container, object, &dc, &dobj, headers)
            .await
    }

    async fn object_post(
        &self,
        account: &str,
        container: &str,
        object: &str,
        headers: &HeaderMap,
    ) -> SwiftResult<Response> {
        self.authorize_container(account, container, Want::WriteObject)
            .await?;
        let user = metadata_from_headers(headers, "object")?;
        let ObjectState::Present { meta, .. } =
            self.store.object_state(account, container, object).await?
        else {
            return Err(SwiftError::not_found());
        };
        let content_type = header(headers, "content-type").map(str::to_string);
        let posted = PostedMeta {
            user,
            content_type: content_type.clone(),
            headers: kept_headers(headers)?,
        };
        let at = posted
            .headers
            .get("x-delete-at")
            .and_then(|v| v.parse::<i64>().ok());
        self.store
            .object_post(account, container, object, posted)
            .await?;
        if let Some(at) = at {
            self.store
                .expiring_add(at, account, container, object)
                .await?;
        }
        if let Some(ct) = content_type {
            // The listing shows the new type.
            let row = ObjectRow {
                name: object.to_string(),
                created_at: Timestamp::now().normal(),
                size: meta.size as i64,
                content_type: ct,
                etag: meta.etag.clone(),
            };
            self.store
                .container_update(account, container, row, false)
                .await?;
        }
        Ok(text_response(
            202,
            vec![],
            reason_text(202),
            "text/html; charset=UTF-8",
        ))
    }

    async fn object_delete(
        &self,
        account: &str,
        container: &str,
        object: &str,
        req: Request,
    ) -> SwiftResult<Response> {
        self.authorize_container(account, container, Want::WriteObject)
            .await?;
        let q = query_map(&req)?;
        if q.get("multipart-manifest").is_some_and(|v| v == "delete") {
            let headers = req.headers().clone();
            drop(req);
            return self.slo_delete(account, container, object, &headers).await;
        }
        let versioning = match self.store.stat(account, Some(container)).await? {
            Some(stat) => versioning(&stat),
            None => None,
        };
        match versioning {
            None => self.delete_one(account, container, object).await?,
            Some((true, archive)) => {
                self.archive_current(account, container, object, &archive)
                    .await?;
                self.delete_one(account, container, object).await?;
            }
            Some((false, archive)) => {
                let gone = self.delete_one(account, container, object).await;
                let restored = self
                    .restore_previous(account, container, object, &archive)
                    .await?;
                match gone {
                    Err(e) if e.status == 404 && restored => {}
                    other => other?,
                }
            }
        }
        Ok(empty(204))
    }

    /// `DELETE ?multipart-manifest=delete`: the segments, then the manifest, answered as a
    /// bulk delete (plain text, or JSON when asked).
    async fn slo_delete(
        &self,
        account: &str,
        container: &str,
        object: &str,
        headers: &HeaderMap,
    ) -> SwiftResult<Response> {
        let ObjectState::Present { data, meta } =
            self.store.object_state(account, container, object).await?
        else {
            return Err(SwiftError::not_found());
        };
        let mut targets = Vec::new();
        if meta.headers.contains_key(SLO_HEADER) {
            let bytes = data.read_all().await.map_err(SwiftError::unavailable)?;
            let manifest: Vec<large::Segment> =
                serde_json::from_slice(&bytes).map_err(SwiftError::unavailable)?;
            for seg in manifest {
                if let Some((c, o)) = large::split_segment_path(&seg.name) {
                    targets.push((c, Some(o)));
                }
            }
        }
        targets.push((container.to_string(), Some(object.to_string())));
        self.delete_many(account, targets, headers).await
    }

    /// `POST` (or `DELETE`) `?bulk-delete` on an account: the body lists `/container/object`
    /// and `/container` paths, one per line, percent-encoded (Swift's `bulk` middleware).
    async fn bulk_delete(&self, account: &str, req: Request) -> SwiftResult<Response> {
        let headers = req.headers().clone();
        let body = axum::body::to_bytes(req.into_body(), 10 * 1024 * 1024)
            .await
            .map_err(|_| SwiftError::status(413))?;
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| SwiftError::bad_request("Invalid UTF8 in bulk delete body"))?;
        let mut targets = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if targets.len() >= LISTING_LIMIT {
                return Err(SwiftError::with_body(
                    413,
                    format!("Maximum Bulk Deletes: {LISTING_LIMIT} per request"),
                ));
            }
            let path = percent_decode(line.trim_start_matches('/'), true).unwrap_or_default();
            match path.split_once('/') {
                Some((c, o)) if !o.is_empty() => targets.push((c.to_string(), Some(o.to_string()))),
                Some((c, _)) => targets.push((c.to_string(), None)),
                None => targets.push((path, None)),
            }
        }
        if targets.is_empty() {
            return Err(SwiftError::bad_request("Invalid bulk delete."));
        }
        self.delete_many(account, targets, &headers).await
    }

    /// Deletes objects (and containers, `None` object) one by one, answering with the bulk
    /// middleware's summary (plain text, or JSON when asked).
    async fn delete_many(
        &self,
        account: &str,
        targets: Vec<(String, Option<String>)>,
        headers: &HeaderMap,
    ) -> SwiftResult<Response> {
        let (mut deleted, mut not_found) = (0, 0);
        let mut errors: Vec<(String, String)> = Vec::new();
        for (c, o) in targets {
            let result = match &o {
                Some(o) => match self
                    .authorize_container(account, &c, Want::WriteObject)
                    .await
                {
                    Ok(_) => self.delete_one(account, &c, o).await,
                    Err(e) => Err(e),
                },
                None => match self.require_owner(account) {
                    Ok(()) => self.store.container_delete(account, &c).await,
                    Err(e) => Err(e),
                },
            };
            let name = match &o {
                Some(o) => format!("/{c}/{o}"),
                None => format!("/{c}"),
            };
            match result {
                Ok(()) => deleted += 1,
                Err(e) if e.status == 404 => not_found += 1,
                Err(e) => errors.push((
                    name,
                    format!(
                        "{} {}",
                        e.status,
                        reason(e.status).map_or("Error", |(t, _)| t)
                    ),
                )),
            }
        }
        let status = if errors.is_empty() {
            "200 OK"
        } else {
            "400 Bad Request"
        };
        Ok(bulk_summary(
            headers,
            &[("Number Deleted", deleted), ("Number Not Found", not_found)],
            status,
            &errors,
        ))
    }

    /// `PUT ?extract-archive=tar` on an account, container or pseudo-directory: every regular
    /// file of the archive becomes an object under `base` (`<container>/<object>` paths when
    /// `base` is empty), containers created as needed; files at the top level of an
    /// account-wide extraction are ignored, as Swift's `bulk` middleware does.
    async fn extract_archive(
        &self,
        account: &str,
        base: &str,
        format: &str,
        req: Request,
    ) -> SwiftResult<Response> {
        if format != "tar" {
            // TODO-compat: tar.gz and tar.bz2 (see bulk.rs).
            return Err(SwiftError::bad_request("Unsupported archive format"));
        }
        let headers = req.headers().clone();
        let archive = axum::body::to_bytes(req.into_body(), bulk::MAX_ARCHIVE_SIZE)
            .await
            .map_err(|_| SwiftError::status(413))?;
        let files = bulk::read_tar(&archive)?;
        let mut created_count = 0;
        let mut errors: Vec<(String, String)> = Vec::new();
        let mut containers: Vec<String> = Vec::new();
        for file in files {
            let rel = file.path.trim_start_matches("./").trim_start_matches('/');
            let path = if base.is_empty() {
                rel.to_string()
            } else {
                format!("{}/{rel}", base.trim_end_matches('/'))
            };
            let Some((container, object)) = path.split_once('/') else {
                continue;
            };
            if object.is_empty() {
                continue;
            }
            let status = match self
                .extract_one(account, container, object, &mut containers, &archive, &file)
                .await
            {
                Ok(()) => {
                    created_count += 1;
                    continue;
                }
                Err(e) => e.status,
            };
            errors.push((
                percent_encode(&path),
                format!("{status} {}", reason(status).map_or("Error", |(t, _)| t)),
            ));
        }
        let status = if !errors.is_empty() {
            "400 Bad Request"
        } else if created_count == 0 {
            return Ok(bulk_summary(
                &headers,
                &[("Number Files Created", 0)],
                "400 Bad Request",
                &[("".into(), "Invalid Tar File: No Valid Files".into())],
            ));
        } else {
            "201 Created"
        };
        Ok(bulk_summary(
            &headers,
            &[("Number Files Created", created_count)],
            status,
            &errors,
        ))
    }

    /// One file of an extracted archive: its container made if needed, then the object.
    async fn extract_one(
        &self,
        account: &str,
        container: &str,
        object: &str,
        containers: &mut Vec<String>,
        archive: &Bytes,
        file: &bulk::TarFile,
    ) -> SwiftResult<()> {
        check_name(container, MAX_CONTAINER_NAME_LENGTH, "Container")?;
        check_object_name(object)?;
        if !containers.iter().any(|c| c == container) {
            if self.store.stat(account, Some(container)).await?.is_none() {
                self.require_owner(account)?;
                self.store
                    .container_put(account, container, &Metadata::new())
                    .await?;
            }
            containers.push(container.to_string());
        }
        self.authorize_container(account, container, Want::WriteObject)
            .await?;
        let data = archive.slice(file.start..file.start + file.len);
        let new = NewObject {
            length: Some(file.len as u64),
            etag: None,
            content_type: guess_content_type(object).to_string(),
            user: Metadata::new(),
            headers: Metadata::new(),
            logical: None,
        };
        let stream = futures::stream::once(async move { Ok(data) }).boxed();
        self.write_object(account, container, object, stream, new)
            .await
            .map(|_| ())
    }

    /// Deletes one object and records it in its container; 404 when it was not there.
    async fn delete_one(&self, account: &str, container: &str, object: &str) -> SwiftResult<()> {
        let before = self.store.object_state(account, container, object).await?;
        let ts = Timestamp::now();
        self.store
            .object_delete(account, container, object, ts)
            .await?;
        // The container forgets the name even when the object was already gone: an object
        // past its X-Delete-At that the expirer has not reached yet is still listed
        // (Swift's object server sends the container update whenever its tombstone is the
        // newest, and answers 404 for a missing or expired object).
        let row = ObjectRow {
            name: object.to_string(),
            created_at: ts.normal(),
            size: 0,
            content_type: String::new(),
            etag: String::new(),
        };
        self.store
            .container_update(account, container, row, true)
            .await?;
        if !matches!(before, ObjectState::Present { .. }) {
            return Err(SwiftError::not_found());
        }
        Ok(())
    }
}

/// The `bulk` middleware's summary of a bulk delete or archive extraction: plain text, or
/// JSON when the client asks for it; always `200`, the outcome in `Response Status`.
fn bulk_summary(
    headers: &HeaderMap,
    counts: &[(&str, usize)],
    status: &str,
    errors: &[(String, String)],
) -> Response {
    if list_format(&HashMap::new(), headers) == ListFormat::Json {
        let mut body = serde_json::Map::new();
        for (k, v) in counts {
            body.insert((*k).into(), json!(v));
        }
        body.insert("Response Body".into(), json!(""));
        body.insert("Response Status".into(), json!(status));
        body.insert("Errors".into(), json!(errors));
        return text_response(
            200,
            vec![],
            serde_json::Value::Object(body).to_string(),
            "application/json; charset=utf-8",
        );
    }
    let mut body = String::new();
    for (k, v) in counts {
        body.push_str(&format!("{k}: {v}\n"));
    }
    body.push_str(&format!(
        "Response Body: \nResponse Status: {status}\nErrors:\n"
    ));
    for (name, err) in errors {
        body.push_str(&format!("{name}, {err}\n"));
    }
    text_response(200, vec![], body, "text/plain; charset=utf-8")
}

fn reason_text(status: u16) -> String {
    match status {
        202 => {
            "<html><h1>Accepted</h1><p>The request is accepted for processing.</p></html>".into()
        }
        _ => String::new(),
    }
}

/// A container's versioning: `(history mode, archive container)` when it has one.
fn versioning(stat: &Stat) -> Option<(bool, String)> {
    let get = |k: &str| {
        stat.metadata
            .get(k)
            .filter(|v| !v.is_empty())
            .and_then(|v| percent_decode(v, false))
    };
    get("sys:history")
        .map(|a| (true, a))
        .or_else(|| get("sys:versions").map(|a| (false, a)))
}

/// The archive names of an object's versions start with the length of its name (in bytes,
/// three hex digits) and the name (Swift's `versioned_writes`).
fn version_prefix(object: &str) -> String {
    format!("{:03x}{object}/", object.len())
}

/// A quota must be a whole number of bytes or objects (`Invalid bytes quota.`).
fn check_quota_value(v: &str, what: &str) -> SwiftResult<()> {
    if v.is_empty() || v.parse::<u64>().is_ok() {
        Ok(())
    } else {
        Err(SwiftError::bad_request(format!("Invalid {what} quota.")))
    }
}

fn manager_quorum(replicas: usize) -> usize {
    crate::manager::quorum(replicas)
}

/// `container/object` (with or without a leading `/`, percent-encoded) from `X-Copy-From`
/// or `Destination`.
fn parse_copy_path(v: &str) -> SwiftResult<(String, String)> {
    let bad = || {
        SwiftError::with_body(
            412,
            "Destination/X-Copy-From header must be of the form <container name>/<object name>",
        )
    };
    let decoded = percent_decode(v.trim().trim_start_matches('/'), false).ok_or_else(bad)?;
    let (c, o) = decoded.split_once('/').ok_or_else(bad)?;
    if c.is_empty() || o.is_empty() {
        return Err(bad());
    }
    check_name(c, MAX_CONTAINER_NAME_LENGTH, "Container")?;
    check_object_name(o)?;
    Ok((c.to_string(), o.to_string()))
}

/// The headers kept with an object, `X-Delete-At` (or `X-Delete-After` turned into one)
/// included; a delete time that is not a number or in the past is refused with 400.
fn kept_headers(headers: &HeaderMap) -> SwiftResult<Metadata> {
    let mut kept: Metadata = KEPT_HEADERS
        .iter()
        .filter_map(|h| header(headers, h).map(|v| (h.to_string(), v.to_string())))
        .collect();
    let now = chrono::Utc::now().timestamp();
    let at = if let Some(after) = header(headers, "x-delete-after") {
        let n: i64 = after
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| SwiftError::bad_request("Non-integer X-Delete-After"))?;
        Some(
            now.checked_add(n)
                .ok_or_else(|| SwiftError::bad_request("Non-integer X-Delete-After"))?,
        )
    } else if let Some(at) = header(headers, "x-delete-at") {
        let t: i64 = at
            .trim()
            .split('.')
            .next()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| SwiftError::bad_request("Non-integer X-Delete-At"))?;
        Some(t)
    } else {
        None
    };
    if let Some(t) = at {
        if t <= now {
            return Err(SwiftError::bad_request("X-Delete-At in past"));
        }
        kept.insert("x-delete-at".into(), t.to_string());
    }
    Ok(kept)
}

fn object_headers(meta: &ObjectMeta) -> Vec<(String, String)> {
    let mut out = vec![
        ("Etag".into(), meta.etag.clone()),
        ("Last-Modified".into(), meta.timestamp.http_date()),
        ("X-Timestamp".into(), meta.timestamp.normal()),
        ("Accept-Ranges".into(), "bytes".into()),
    ];
    out.extend(meta_headers(&meta.user, "object"));
    for (k, v) in &meta.headers {
        out.push((title(k), v.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gets_check_the_crc_when_recorded_and_the_etag_before_it_was() {
        let mut meta = ObjectMeta {
            timestamp: Timestamp::now(),
            content_type: "x".into(),
            etag: md5_hex(b"hello"),
            size: 5,
            user: Metadata::new(),
            headers: Metadata::new(),
            crc32c: None,
        };
        assert!(Checksum::of(&meta).matches(b"hello"));
        assert!(!Checksum::of(&meta).matches(b"hellp"));
        meta.crc32c = Some(crate::disk::CRC32C.checksum(b"hello"));
        assert!(matches!(Checksum::of(&meta), Checksum::Crc32c(_)));
        assert!(Checksum::of(&meta).matches(b"hello"));
        assert!(!Checksum::of(&meta).matches(b"hellp"));
        let mut running = RunningChecksum::new(Checksum::of(&meta));
        running.update(b"he");
        running.update(b"llo");
        assert!(running.matches());
        // CRC-32C's check value (RFC 3720).
        assert_eq!(crate::disk::CRC32C.checksum(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn paths_parse_into_targets() {
        assert_eq!(parse_target("/info").unwrap(), Target::Info);
        assert_eq!(
            parse_target("/v1/AUTH_x").unwrap(),
            Target::Account("AUTH_x".into())
        );
        assert_eq!(
            parse_target("/v1/AUTH_x/c/").unwrap(),
            Target::Container("AUTH_x".into(), "c".into())
        );
        assert_eq!(
            parse_target("/v1/AUTH_x/c/a/b%20c").unwrap(),
            Target::Object("AUTH_x".into(), "c".into(), "a/b c".into())
        );
        assert_eq!(parse_target("/v2/x").unwrap_err().status, 404);
        assert_eq!(parse_target("/v1/AUTH_x/c/a%00b").unwrap_err().status, 412);
        assert_eq!(parse_target("/v1/AUTH_x/c/..").unwrap_err().status, 400);
        let long = format!("/v1/AUTH_x/{}", "c".repeat(257));
        assert_eq!(parse_target(&long).unwrap_err().status, 400);
    }

    #[test]
    fn ranges_resolve_as_swob_does() {
        assert_eq!(parse_ranges(None, 10).unwrap(), None);
        assert_eq!(
            parse_ranges(Some("bytes=0-3"), 10).unwrap(),
            Some(vec![(0, 3)])
        );
        assert_eq!(
            parse_ranges(Some("bytes=5-"), 10).unwrap(),
            Some(vec![(5, 9)])
        );
        assert_eq!(
            parse_ranges(Some("bytes=-3"), 10).unwrap(),
            Some(vec![(7, 9)])
        );
        assert_eq!(
            parse_ranges(Some("bytes=0-1,4-20"), 10).unwrap(),
            Some(vec![(0, 1), (4, 9)])
        );
        assert_eq!(
            parse_ranges(Some("bytes=20-30"), 10).unwrap_err().status,
            416
        );
        assert_eq!(parse_ranges(Some("bytes=3-1"), 10).unwrap(), None);
        assert_eq!(parse_ranges(Some("items=0-1"), 10).unwrap(), None);
    }

    #[test]
    fn listing_parameters_are_checked() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(list_params(&q("limit", "10001")).unwrap_err().status, 412);
        assert_eq!(list_params(&q("limit", "x")).unwrap_err().status, 412);
        assert_eq!(list_params(&q("delimiter", "ab")).unwrap_err().status, 412);
        assert!(list_params(&q("reverse", "true")).unwrap().reverse);
        assert_eq!(
            list_format(&q("format", "json"), &HeaderMap::new()),
            ListFormat::Json
        );
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("application/xml"));
        assert_eq!(list_format(&HashMap::new(), &h), ListFormat::Xml);
    }
}
