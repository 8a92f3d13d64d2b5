//! The image proxy (upstream's deprecated `/images` and `/images/{id}/metadata`, images.py
//! and image_metadata.py): the image API's images as Nova showed them before 2.36, read and
//! changed through the image API with the caller's token. `/images` answers until 2.35,
//! the metadata until 2.38; later microversions get 404, as upstream.
//!
//! An image's `metadata` is its properties: every attribute the image API does not define
//! itself (upstream's glance v2 mapping). Writes are JSON patches of those properties.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ferro_common::RequestContext;
use ferro_http::Auth;
use serde_json::{Map, Value, json};

use crate::Compute;
use crate::api::{Body, Params, S, empty, links, next_link, ok, param};
use crate::fault::{Fault, Result};
use crate::manager::percent_encode;
use crate::microversion::ApiVersion;
use crate::schemas;
use crate::validation::validate_body;

pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route("/images", get(image_list))
        .route("/images/detail", get(image_list_detail))
        .route("/images/{id}", get(image_show).delete(image_delete))
        .route(
            "/images/{id}/metadata",
            get(metadata_list)
                .post(metadata_merge)
                .put(metadata_replace),
        )
        .route(
            "/images/{id}/metadata/{key}",
            get(metadata_show).put(metadata_set).delete(metadata_delete),
        )
}

/// The image API's own attributes; the rest of an image is its properties.
pub(crate) const OWN: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "os_hidden",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
    "owner",
    "min_disk",
    "min_ram",
    "disk_format",
    "container_format",
    "direct_url",
    "locations",
    "stores",
];

/// Query parameters `/images` passes on to the image API, by Nova's name.
const FILTERS: &[(&str, &str)] = &[
    ("name", "name"),
    ("status", "status"),
    ("server", "instance_uuid"),
    ("type", "image_type"),
    ("minRam", "min_ram"),
    ("minDisk", "min_disk"),
];

fn proxy_gone(v: ApiVersion, max_minor: u32) -> Result<()> {
    if v.at_least(2, max_minor + 1) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    Ok(())
}

fn image_not_found() -> Fault {
    Fault::not_found("Image not found.")
}

/// An image's properties.
fn properties(image: &Value) -> Map<String, Value> {
    image
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !OWN.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Upstream's image view: `basic` (id, name, links) or the whole of it.
fn view(base: &str, image_url: &str, image: &Value, detail: bool) -> Value {
    let id = image["id"].as_str().unwrap_or_default();
    let mut l = links(base, "images", id);
    if let Some(a) = l.as_array_mut() {
        a.push(
            json!({"rel": "alternate", "type": "application/vnd.openstack.image",
            "href": format!("{image_url}/images/{}", percent_encode(id))}),
        );
    }
    if !detail {
        return json!({"id": id, "name": image["name"], "links": l});
    }
    let status = image["status"].as_str().unwrap_or_default();
    let meta = properties(image);
    let mut out = json!({
        "id": id,
        "name": image["name"],
        "minRam": image["min_ram"].as_i64().unwrap_or(0),
        "minDisk": image["min_disk"].as_i64().unwrap_or(0),
        "created": image["created_at"],
        "updated": image["updated_at"],
        "status": match status {
            "active" => "ACTIVE",
            "queued" | "saving" | "uploading" | "importing" => "SAVING",
            "deleted" | "pending_delete" => "DELETED",
            "killed" => "ERROR",
            _ => "UNKNOWN",
        },
        "progress": match status {
            "queued" => 25,
            "saving" => 50,
            "active" => 100,
            _ => 0,
        },
        "OS-EXT-IMG-SIZE:size": image["size"],
        "links": l,
    });
    if let Some(server) = meta.get("instance_uuid").and_then(Value::as_str) {
        out["server"] = json!({"id": server, "links": links(base, "servers", server)});
    }
    if let Some(auto) = meta.get("auto_disk_config").and_then(Value::as_str) {
        let on = matches!(
            auto.to_ascii_lowercase().as_str(),
            "1" | "t" | "true" | "on" | "y" | "yes"
        );
        out["OS-DCF:diskConfig"] = json!(if on { "AUTO" } else { "MANUAL" });
    }
    out["metadata"] = Value::Object(meta);
    out
}

impl Compute {
    /// Image `id` as the caller sees it in the image API, or upstream's 404/403.
    async fn proxied_image(&self, ctx: &RequestContext, id: &str) -> Result<Value> {
        let r = self
            .image_client(&ctx.token)?
            .get(&format!("/v2/images/{}", percent_encode(id)))
            .await
            .map_err(|e| Fault::internal(format!("image API: {e}")))?;
        match r.status {
            200 => Ok(r.body),
            403 => Err(Fault::forbidden("Not authorized for image.")),
            400 | 404 => Err(image_not_found()),
            s => Err(Fault::internal(format!("image API answered {s}"))),
        }
    }

    /// Makes image `id`'s properties `wanted`: a JSON patch of what differs.
    async fn proxied_set_properties(
        &self,
        ctx: &RequestContext,
        id: &str,
        image: &Value,
        wanted: &Map<String, Value>,
    ) -> Result<()> {
        let now = properties(image);
        let mut ops = Vec::new();
        for key in now.keys().filter(|k| !wanted.contains_key(*k)) {
            ops.push(json!({"op": "remove", "path": format!("/{}", pointer(key))}));
        }
        for (key, value) in wanted {
            match now.get(key) {
                Some(v) if v == value => {}
                Some(_) => ops.push(
                    json!({"op": "replace", "path": format!("/{}", pointer(key)), "value": value}),
                ),
                None => ops.push(
                    json!({"op": "add", "path": format!("/{}", pointer(key)), "value": value}),
                ),
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        let r = self
            .image_client(&ctx.token)?
            .with_header(
                "Content-Type",
                "application/openstack-images-v2.1-json-patch",
            )
            .patch(&format!("/v2/images/{}", percent_encode(id)), &json!(ops))
            .await
            .map_err(|e| Fault::internal(format!("image API: {e}")))?;
        match r.status {
            200 => Ok(()),
            403 => Err(Fault::forbidden("Not authorized for image.")),
            404 => Err(image_not_found()),
            400 | 409 | 413 => Err(Fault::bad_request(
                r.body["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| r.body.to_string()),
            )),
            s => Err(Fault::internal(format!("image API answered {s}"))),
        }
    }
}

/// Refuses more properties than the caller's `metadata_items` quota allows (upstream's
/// `check_img_metadata_properties_quota`).
async fn check_quota(s: &Compute, ctx: &RequestContext, props: &Map<String, Value>) -> Result<()> {
    let project = ctx.project_id.clone().unwrap_or_default();
    s.check_metadata_quota(&project, props.len())
        .await
        .map_err(|e| {
            if e.status() == StatusCode::FORBIDDEN {
                Fault::forbidden("Image metadata limit exceeded")
            } else {
                e
            }
        })
}

/// `key` as one JSON pointer segment.
fn pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

async fn list(
    s: &Compute,
    ctx: &RequestContext,
    p: &[(String, String)],
    detail: bool,
) -> Result<Response> {
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, v) in p {
        if let Some((_, to)) = FILTERS.iter().find(|(from, _)| from == k) {
            let v = match *to {
                // `server` may be the server's URL.
                "instance_uuid" => v.rsplit('/').next().unwrap_or(v).to_string(),
                "status" => v.to_lowercase(),
                _ => v.clone(),
            };
            query.push((to.to_string(), v));
        } else if let Some(prop) = k.strip_prefix("property-") {
            query.push((prop.to_string(), v.clone()));
        } else if k == "changes-since" {
            query.push(("updated_at".into(), format!("gte:{v}")));
        } else if k == "limit" || k == "marker" {
            query.push((k.clone(), v.clone()));
        }
    }
    let qs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let r = s
        .image_client(&ctx.token)?
        .get(&format!("/v2/images?{}", qs.join("&")))
        .await
        .map_err(|e| Fault::internal(format!("image API: {e}")))?;
    if r.status != 200 {
        return Err(Fault::bad_request(
            r.body["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("The image API answered {}", r.status)),
        ));
    }
    let images = r.body["images"].as_array().cloned().unwrap_or_default();
    let base = &s.config.public_url;
    let image_url = s.links()?.image_url.trim_end_matches('/').to_string();
    let list: Vec<Value> = images
        .iter()
        .map(|i| view(base, &image_url, i, detail))
        .collect();
    let collection = if detail { "images/detail" } else { "images" };
    let mut body = json!({ "images": list });
    let last = images.last().and_then(|i| i["id"].as_str());
    let page_len = images.len();
    if param(p, "limit").is_some()
        && let Some(next) = next_link(base, collection, p, page_len, last)
    {
        body["images_links"] = next;
    }
    ok(StatusCode::OK, body)
}

async fn image_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    axum::extract::Query(p): Params,
) -> Result<Response> {
    proxy_gone(v, 35)?;
    list(&s, &ctx, &p, false).await
}

async fn image_list_detail(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    axum::extract::Query(p): Params,
) -> Result<Response> {
    proxy_gone(v, 35)?;
    list(&s, &ctx, &p, true).await
}

async fn image_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_gone(v, 35)?;
    let image = s.proxied_image(&ctx, &id).await?;
    let image_url = s.links()?.image_url.trim_end_matches('/').to_string();
    ok(
        StatusCode::OK,
        json!({"image": view(&s.config.public_url, &image_url, &image, true)}),
    )
}

async fn image_delete(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_gone(v, 35)?;
    let r = s
        .image_client(&ctx.token)?
        .delete(&format!("/v2/images/{}", percent_encode(&id)))
        .await
        .map_err(|e| Fault::internal(format!("image API: {e}")))?;
    match r.status {
        204 => empty(StatusCode::NO_CONTENT),
        403 => Err(Fault::forbidden("You are not allowed to delete the image.")),
        400 | 404 => Err(image_not_found()),
        s => Err(Fault::internal(format!("image API answered {s}"))),
    }
}

async fn metadata_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_gone(v, 38)?;
    let image = s.proxied_image(&ctx, &id).await?;
    ok(StatusCode::OK, json!({"metadata": properties(&image)}))
}

async fn metadata_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    proxy_gone(v, 38)?;
    let image = s.proxied_image(&ctx, &id).await?;
    match properties(&image).get(&key) {
        Some(value) => ok(StatusCode::OK, json!({"meta": {key: value}})),
        None => Err(Fault::not_found("The resource could not be found.")),
    }
}

/// `POST /images/{id}/metadata`: the body's items merged into the properties.
async fn metadata_merge(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    proxy_gone(v, 38)?;
    validate_body(&schemas::server_metadata("metadata", false), &b)?;
    let image = s.proxied_image(&ctx, &id).await?;
    let mut props = properties(&image);
    for (k, val) in b["metadata"].as_object().into_iter().flatten() {
        props.insert(k.clone(), val.clone());
    }
    check_quota(&s, &ctx, &props).await?;
    s.proxied_set_properties(&ctx, &id, &image, &props).await?;
    ok(StatusCode::OK, json!({"metadata": props}))
}

/// `PUT /images/{id}/metadata`: the body's items are all the properties.
async fn metadata_replace(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    proxy_gone(v, 38)?;
    validate_body(&schemas::server_metadata("metadata", false), &b)?;
    let props = b["metadata"].as_object().cloned().unwrap_or_default();
    check_quota(&s, &ctx, &props).await?;
    let image = s.proxied_image(&ctx, &id).await?;
    s.proxied_set_properties(&ctx, &id, &image, &props).await?;
    ok(StatusCode::OK, json!({"metadata": props}))
}

async fn metadata_set(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, key)): Path<(String, String)>,
    Body(b): Body,
) -> Result<Response> {
    proxy_gone(v, 38)?;
    validate_body(&schemas::server_metadata("meta", true), &b)?;
    let Some(value) = b["meta"].get(&key).cloned() else {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    };
    let image = s.proxied_image(&ctx, &id).await?;
    let mut props = properties(&image);
    props.insert(key.clone(), value.clone());
    check_quota(&s, &ctx, &props).await?;
    s.proxied_set_properties(&ctx, &id, &image, &props).await?;
    ok(StatusCode::OK, json!({"meta": {key: value}}))
}

async fn metadata_delete(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    proxy_gone(v, 38)?;
    let image = s.proxied_image(&ctx, &id).await?;
    let mut props = properties(&image);
    if props.remove(&key).is_none() {
        return Err(Fault::not_found("Invalid metadata key"));
    }
    s.proxied_set_properties(&ctx, &id, &image, &props).await?;
    empty(StatusCode::NO_CONTENT)
}
