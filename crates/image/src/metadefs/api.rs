//! Metadef routes and handlers: parse and check the request as Glance's deserializers do,
//! delegate to the service, answer as Glance's serializers do.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferro_common::Error;
use ferro_http::{Auth, Json};
use serde_json::{Value, json};

use super::db::Content;
use super::service::{NAMESPACE_SORT_KEYS, NamespaceQuery, TAG_SORT_KEYS, TagQuery};
use super::{MdResult, Metadefs, model, schemas};
use crate::manager::{DEFAULT_LIMIT, MAX_LIMIT};

type S = State<Arc<Metadefs>>;
type ApiResult = MdResult<Response>;
type Params = Query<Vec<(String, String)>>;

fn respond(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The routes, before the state is attached.
pub(super) fn routes() -> Router<Arc<Metadefs>> {
    Router::new()
        .route(
            "/v2/metadefs/namespaces",
            get(namespace_list).post(namespace_create),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}",
            get(namespace_show)
                .put(namespace_update)
                .delete(namespace_delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/objects",
            get(object_list).post(object_create).delete(objects_delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/objects/{name}",
            get(object_show).put(object_update).delete(object_delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/properties",
            get(property_list)
                .post(property_create)
                .delete(properties_delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/properties/{name}",
            get(property_show)
                .put(property_update)
                .delete(property_delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/tags",
            get(tag_list).post(tags_create).delete(tags_delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/tags/{name}",
            get(tag_show)
                .post(tag_create)
                .put(tag_update)
                .delete(tag_delete),
        )
        .route("/v2/metadefs/resource_types", get(resource_type_list))
        .route(
            "/v2/metadefs/namespaces/{ns}/resource_types",
            get(association_list).post(association_create),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/resource_types/{name}",
            axum::routing::delete(association_delete),
        )
        .route("/v2/schemas/metadefs/{which}", get(schema_show))
}

// ---- query parameters ---------------------------------------------------------------------

/// The last value of `key`, as a WSGI `params.pop` sees it.
fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `limit` as an integer; `zero_ok` as namespaces and tags allow it, objects do not.
fn parse_limit(v: &str, zero_ok: bool) -> Result<i64, Error> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| Error::bad_request("limit param must be an integer"))?;
    if n < 0 || (n == 0 && !zero_ok) {
        return Err(Error::bad_request("limit param must be positive"));
    }
    Ok(n)
}

fn parse_sort_dir(params: &[(String, String)]) -> Result<bool, Error> {
    match param(params, "sort_dir").unwrap_or("desc") {
        "desc" => Ok(true),
        "asc" => Ok(false),
        other => Err(Error::bad_request(format!(
            "Invalid sort direction: {other}"
        ))),
    }
}

fn check_visibility(params: &[(String, String)], allowed: &[&str]) -> Result<(), Error> {
    match param(params, "visibility") {
        Some(v) if !v.is_empty() && !allowed.contains(&v) => {
            Err(Error::bad_request(format!("Invalid visibility value: {v}")))
        }
        _ => Ok(()),
    }
}

fn sort_key(params: &[(String, String)], allowed: &[&str]) -> Result<String, Error> {
    let key = param(params, "sort_key").unwrap_or("created_at");
    if allowed.contains(&key) {
        Ok(key.to_string())
    } else {
        Err(Error::bad_request(format!(
            "Invalid sort key: {key}. It must be one of the following: {}.",
            allowed.join(", ")
        )))
    }
}

/// `GET /v2/metadefs/namespaces` parameters (`RequestDeserializer.index`).
fn namespace_query(params: &[(String, String)]) -> Result<NamespaceQuery, Error> {
    let limit = match param(params, "limit") {
        Some(v) => (parse_limit(v, true)? as usize).min(MAX_LIMIT),
        None => DEFAULT_LIMIT,
    };
    check_visibility(params, &["public", "private"])?;
    Ok(NamespaceQuery {
        limit,
        marker: param(params, "marker").map(str::to_string),
        sort_key: sort_key(params, NAMESPACE_SORT_KEYS)?,
        descending: parse_sort_dir(params)?,
        visibility: param(params, "visibility")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        resource_types: param(params, "resource_types")
            .map(|v| v.split(',').map(|s| s.to_string()).collect()),
    })
}

/// Whether the `X-Openstack-Append` header is true (oslo `bool_from_string`).
fn append_header(headers: &HeaderMap) -> bool {
    headers
        .get("x-openstack-append")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "t" | "true" | "on" | "y" | "yes"
            )
        })
        .unwrap_or(false)
}

// ---- namespaces ---------------------------------------------------------------------------

async fn namespace_list(State(s): S, Auth(ctx): Auth, Query(params): Params) -> ApiResult {
    let q = namespace_query(&params)?;
    let (namespaces, next) = s.namespace_list(&ctx, &q).await?;
    let body = crate::api::collection(
        "/v2/metadefs/namespaces",
        "namespaces",
        namespaces,
        "/v2/schemas/metadefs/namespaces",
        params,
        next,
    );
    respond(StatusCode::OK, body)
}

async fn namespace_create(State(s): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    let input = model::namespace_input(&body)?;
    model::no_4byte(&body, "create metadata namespace")?;
    let created = s.namespace_create(&ctx, input).await?;
    let href = created["self"].as_str().unwrap_or_default().to_string();
    let mut resp = (StatusCode::CREATED, axum::Json(created)).into_response();
    if let Ok(v) = HeaderValue::from_str(&href) {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}

async fn namespace_show(
    State(s): S,
    Auth(ctx): Auth,
    Path(ns): Path<String>,
    Query(params): Params,
) -> ApiResult {
    check_visibility(&params, &["public", "private"])?;
    let body = s
        .namespace_show(&ctx, &ns, param(&params, "resource_type"))
        .await?;
    respond(StatusCode::OK, body)
}

async fn namespace_update(
    State(s): S,
    Auth(ctx): Auth,
    Path(ns): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let input = model::namespace_input(&body)?;
    model::no_4byte(&body, "update metadata namespace")?;
    respond(StatusCode::OK, s.namespace_update(&ctx, &ns, input).await?)
}

async fn namespace_delete(State(s): S, Auth(ctx): Auth, Path(ns): Path<String>) -> ApiResult {
    s.namespace_delete(&ctx, &ns).await?;
    no_content()
}

// ---- objects ------------------------------------------------------------------------------

async fn object_list(
    State(s): S,
    Auth(ctx): Auth,
    Path(ns): Path<String>,
    Query(params): Params,
) -> ApiResult {
    // Glance checks these parameters, then lists every object regardless.
    if let Some(l) = param(&params, "limit") {
        parse_limit(l, false)?;
    }
    parse_sort_dir(&params)?;
    check_visibility(&params, &["public", "private", "shared"])?;
    let objects = s.object_list(&ctx, &ns).await?;
    // Glance's link here lacks the leading slash.
    respond(
        StatusCode::OK,
        json!({"objects": objects, "schema": "v2/schemas/metadefs/objects"}),
    )
}

async fn object_create(
    State(s): S,
    Auth(ctx): Auth,
    Path(ns): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let o = model::object_input(&body, true)?;
    model::no_4byte(&body, "create metadata object")?;
    respond(StatusCode::CREATED, s.object_create(&ctx, &ns, o).await?)
}

async fn object_show(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    respond(StatusCode::OK, s.object_show(&ctx, &ns, &name).await?)
}

async fn object_update(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult {
    let o = model::object_input(&body, false)?;
    model::no_4byte(&body, "update metadata object")?;
    respond(StatusCode::OK, s.object_update(&ctx, &ns, &name, o).await?)
}

async fn object_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    s.object_delete(&ctx, &ns, &name).await?;
    no_content()
}

async fn objects_delete(State(s): S, Auth(ctx): Auth, Path(ns): Path<String>) -> ApiResult {
    s.namespace_clear(&ctx, &ns, Content::Objects).await?;
    no_content()
}

// ---- properties ---------------------------------------------------------------------------

async fn property_list(State(s): S, Auth(ctx): Auth, Path(ns): Path<String>) -> ApiResult {
    let props = s.property_list(&ctx, &ns).await?;
    respond(StatusCode::OK, json!({"properties": props}))
}

async fn property_create(
    State(s): S,
    Auth(ctx): Auth,
    Path(ns): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let (name, def) = model::property_input(&body)?;
    model::no_4byte(&body, "create metadata property")?;
    respond(
        StatusCode::CREATED,
        s.property_create(&ctx, &ns, name, def).await?,
    )
}

async fn property_show(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let body = s
        .property_show(&ctx, &ns, &name, param(&params, "resource_type"))
        .await?;
    respond(StatusCode::OK, body)
}

async fn property_update(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult {
    let (new_name, def) = model::property_input(&body)?;
    model::no_4byte(&body, "update metadata property")?;
    respond(
        StatusCode::OK,
        s.property_update(&ctx, &ns, &name, new_name, def).await?,
    )
}

async fn property_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    s.property_delete(&ctx, &ns, &name).await?;
    no_content()
}

async fn properties_delete(State(s): S, Auth(ctx): Auth, Path(ns): Path<String>) -> ApiResult {
    s.namespace_clear(&ctx, &ns, Content::Properties).await?;
    no_content()
}

// ---- tags ---------------------------------------------------------------------------------

async fn tag_list(
    State(s): S,
    Auth(ctx): Auth,
    Path(ns): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let descending = parse_sort_dir(&params)?;
    let key = sort_key(&params, TAG_SORT_KEYS)?;
    check_visibility(&params, &["public", "private", "shared"])?;
    // Glance ignores an empty limit or marker.
    let limit = match param(&params, "limit").filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_limit(v, true)? as usize),
        None => None,
    };
    let q = TagQuery {
        limit,
        marker: param(&params, "marker")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        sort_key: key,
        descending,
    };
    let tags = s.tag_list(&ctx, &ns, &q).await?;
    respond(StatusCode::OK, json!({"tags": tags}))
}

async fn tags_create(
    State(s): S,
    Auth(ctx): Auth,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let names = model::tags_input(&body)?;
    model::no_4byte(&body, "create metadata tags")?;
    let tags = s
        .tags_create(&ctx, &ns, names, append_header(&headers))
        .await?;
    respond(StatusCode::CREATED, json!({"tags": tags}))
}

async fn tags_delete(State(s): S, Auth(ctx): Auth, Path(ns): Path<String>) -> ApiResult {
    s.namespace_clear(&ctx, &ns, Content::Tags).await?;
    no_content()
}

/// `POST .../tags/{name}`: no body; the name comes from the path.
async fn tag_create(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    respond(StatusCode::CREATED, s.tag_create(&ctx, &ns, name).await?)
}

async fn tag_show(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    respond(StatusCode::OK, s.tag_show(&ctx, &ns, &name).await?)
}

async fn tag_update(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult {
    let new_name = model::tag_input(&body)?;
    model::no_4byte(&body, "update metadata tag")?;
    respond(
        StatusCode::OK,
        s.tag_update(&ctx, &ns, &name, new_name).await?,
    )
}

async fn tag_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    s.tag_delete(&ctx, &ns, &name).await?;
    no_content()
}

// ---- resource types -----------------------------------------------------------------------

async fn resource_type_list(State(s): S, Auth(ctx): Auth) -> ApiResult {
    let types = s.resource_type_list(&ctx).await?;
    respond(StatusCode::OK, json!({"resource_types": types}))
}

async fn association_list(State(s): S, Auth(ctx): Auth, Path(ns): Path<String>) -> ApiResult {
    let assocs = s.association_list(&ctx, &ns).await?;
    respond(
        StatusCode::OK,
        json!({"resource_type_associations": assocs}),
    )
}

async fn association_create(
    State(s): S,
    Auth(ctx): Auth,
    Path(ns): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let a = model::association_input(&body)?;
    respond(
        StatusCode::CREATED,
        s.association_create(&ctx, &ns, a).await?,
    )
}

async fn association_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    s.association_delete(&ctx, &ns, &name).await?;
    no_content()
}

// ---- schemas ------------------------------------------------------------------------------

async fn schema_show(Auth(_ctx): Auth, Path(which): Path<String>) -> ApiResult {
    let schema = match which.as_str() {
        "namespace" => schemas::namespace(),
        "namespaces" => schemas::namespaces(),
        "resource_type" => schemas::resource_type(),
        "resource_types" => schemas::resource_types(),
        "property" => schemas::property(),
        "properties" => schemas::properties(),
        "object" => schemas::object(),
        "objects" => schemas::objects(),
        "tag" => schemas::tag(),
        "tags" => schemas::tags(),
        _ => return Err(super::Fault::NotFound(super::DEFAULT_NOT_FOUND.into())),
    };
    respond(StatusCode::OK, schema)
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
    fn namespace_list_parameters_as_glance_reads_them() {
        let d = namespace_query(&[]).unwrap();
        assert_eq!(
            (d.limit, d.sort_key.as_str(), d.descending),
            (25, "created_at", true)
        );
        let p = namespace_query(&q(&[
            ("limit", "5000"),
            ("sort_dir", "asc"),
            ("resource_types", "OS::Nova::Flavor,OS::Glance::Image"),
            ("visibility", "public"),
        ]))
        .unwrap();
        assert_eq!(p.limit, MAX_LIMIT);
        assert!(!p.descending);
        assert_eq!(p.resource_types.unwrap().len(), 2);
        for bad in [
            ("limit", "-1"),
            ("limit", "x"),
            ("sort_dir", "up"),
            ("visibility", "shared"),
            ("sort_key", "colour"),
        ] {
            assert_eq!(
                namespace_query(&q(&[bad])).unwrap_err().status(),
                400,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn append_header_reads_oslo_booleans() {
        let mut h = HeaderMap::new();
        assert!(!append_header(&h));
        h.insert("x-openstack-append", HeaderValue::from_static("True"));
        assert!(append_header(&h));
        h.insert("x-openstack-append", HeaderValue::from_static("no"));
        assert!(!append_header(&h));
    }

    #[test]
    fn objects_refuse_a_zero_limit_namespaces_do_not() {
        assert!(parse_limit("0", true).is_ok());
        assert!(parse_limit("0", false).is_err());
    }
}
