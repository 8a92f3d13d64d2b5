//! The storage server: the account, container and object servers of one node on its
//! storage port, as Swift's backend protocol lays them out:
//! `/<device>/<partition>/<account>[/<container>[/<object>]]` with `X-Timestamp` and
//! `X-Backend-*` headers, `REPLICATE /<device>/<partition>[/<suffix>]` for the replicator's
//! suffix hashes and file lists, and `SYNC /<device>/<partition>/<suffix>/<hash>/<file>` for
//! the file pushes it would make with rsync.
//!
//! Every request is served by the same [`LocalDevice`] the proxy uses for its own devices.
//! It is the backend network's protocol: no Keystone token, but a device this node does not
//! hold (no ring puts it at one of this node's addresses) or whose directory is missing is
//! refused with 507, as Swift's servers refuse an unmounted device.
// TODO-compat: object state is read with `GET` and `X-Backend-Metadata-Only` (a JSON body)
// instead of upstream's `HEAD` with metadata in headers; object PUT bodies are framed with
// the metadata last (see `node::FRAME_DATA`) instead of a MIME footer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;

use crate::ObjectStore;
use crate::disk::{CRC32C, ObjectMeta, ObjectState, PostedMeta};
use crate::model::{ListParams, SwiftError, Timestamp, percent_decode};
use crate::node::{
    DataRef, DbDigest, DbListResponse, DbRef, DbReplicate, DbUpdateRequest, DbUpdateResponse,
    Frame, FrameReader, LocalDevice, StorageDevice, Target, WireState,
};

/// The storage server's routes over `store`'s local devices.
pub fn router(store: Arc<ObjectStore>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(store)
        .layer(DefaultBodyLimit::disable())
}

/// A refusal: status and a short text.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

type Served = Result<Response, Refusal>;

fn refuse(status: u16, text: impl Into<String>) -> Refusal {
    Refusal(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        text.into(),
    )
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => refuse(507, e.to_string()),
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                refuse(400, e.to_string())
            }
            _ => {
                tracing::warn!(error = %e, "storage server request failed");
                refuse(500, e.to_string())
            }
        }
    }
}

impl From<SwiftError> for Refusal {
    fn from(e: SwiftError) -> Self {
        refuse(e.status, e.body.unwrap_or_default())
    }
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => refuse(500, e.to_string()).into_response(),
    }
}

fn status(code: u16) -> Response {
    StatusCode::from_u16(code)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn timestamp(headers: &HeaderMap, name: &str) -> Result<Timestamp, Refusal> {
    header(headers, name)
        .and_then(Timestamp::parse)
        .ok_or_else(|| refuse(400, format!("missing or bad {name}")))
}

async fn handle(State(store): State<Arc<ObjectStore>>, req: Request) -> Response {
    match dispatch(&store, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// One path segment, percent-decoded.
fn segment(s: Option<&str>, what: &str) -> Result<String, Refusal> {
    s.filter(|s| !s.is_empty())
        .and_then(|s| percent_decode(s, false))
        .ok_or_else(|| refuse(400, format!("bad or missing {what}")))
}

async fn dispatch(store: &Arc<ObjectStore>, req: Request) -> Served {
    let path = req.uri().path().to_string();
    let mut segs = path.trim_start_matches('/').splitn(5, '/');
    let device_name = segment(segs.next(), "device")?;
    if device_name.contains('/') || device_name == "." || device_name == ".." {
        return Err(refuse(400, "bad device name"));
    }
    let Some(device) = store.held_device(&device_name) else {
        return Err(refuse(
            507,
            format!("{device_name} is not a device of this node"),
        ));
    };
    if !device.path.is_dir() {
        return Err(refuse(507, format!("{device_name} is not mounted")));
    }
    let part: u32 = segs
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| refuse(400, "bad partition"))?;
    let rest: Vec<&str> = segs.collect();
    match req.method().as_str() {
        "REPLICATE" => match rest.as_slice() {
            [kind, hash] => {
                let kind = kind.parse().map_err(|_| refuse(400, "bad database kind"))?;
                let r = DbRef {
                    kind,
                    part,
                    hash: hash.to_string(),
                };
                replicate_db(&device, &r, req).await
            }
            _ => replicate(&device, part, &rest).await,
        },
        "SYNC" => sync(&device, part, &rest, req).await,
        _ => {
            let account = segment(rest.first().copied(), "account")?;
            let container = rest
                .get(1)
                .map(|c| segment(Some(c), "container"))
                .transpose()?;
            let object = rest
                .get(2)
                .map(|o| segment(Some(o), "object"))
                .transpose()?;
            let target = Target::new(
                &store.config.hash_path,
                part,
                &account,
                container.as_deref(),
                object.as_deref(),
            );
            if target.object.is_some() {
                object_request(&device, &target, req).await
            } else {
                db_request(&device, &target, req).await
            }
        }
    }
}

async fn replicate(device: &LocalDevice, part: u32, rest: &[&str]) -> Served {
    match rest {
        [] => Ok(json(StatusCode::OK, &device.suffix_hashes(part).await?)),
        [suffix] if suffix.len() == 3 && suffix.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(json(
            StatusCode::OK,
            &device.suffix_files(part, suffix).await?,
        )),
        _ => Err(refuse(
            400,
            "REPLICATE takes a partition and an optional suffix",
        )),
    }
}

/// The database replicator's `REPLICATE` of one database: its digest, or a merge.
async fn replicate_db(device: &LocalDevice, r: &DbRef, req: Request) -> Served {
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .map_err(|e| refuse(400, e.to_string()))?;
    let op: DbReplicate = serde_json::from_slice(&body).map_err(|e| refuse(400, e.to_string()))?;
    match op {
        DbReplicate::Digest => {
            let digest = device.db_digest(r).await?;
            Ok(json(StatusCode::OK, &DbDigest { digest }))
        }
        DbReplicate::Merge { replica } => {
            device.db_merge(r, &replica).await?;
            Ok(status(204))
        }
    }
}

async fn sync(device: &LocalDevice, part: u32, rest: &[&str], req: Request) -> Served {
    let [suffix, hash, name] = rest else {
        return Err(refuse(
            400,
            "SYNC takes a suffix, an object hash and a file",
        ));
    };
    let body = req
        .into_body()
        .into_data_stream()
        .map(|c| c.map_err(std::io::Error::other))
        .boxed();
    device.receive_file(part, suffix, hash, name, body).await?;
    Ok(status(201))
}

async fn object_request(device: &LocalDevice, t: &Target, req: Request) -> Served {
    let headers = req.headers().clone();
    match *req.method() {
        Method::GET if header(&headers, "x-backend-metadata-only").is_some() => {
            let state = device.object_state(t).await?;
            Ok(json(StatusCode::OK, &WireState::from(&state)))
        }
        Method::GET => object_get(device, t, &headers).await,
        Method::PUT => object_put(device, t, req).await,
        Method::DELETE => {
            if let Some(ts) = header(&headers, "x-backend-quarantine") {
                let ts = Timestamp::parse(ts).ok_or_else(|| refuse(400, "bad timestamp"))?;
                return match device.object_state(t).await? {
                    ObjectState::Present { data, meta } if meta.timestamp == ts => {
                        data.quarantine().await?;
                        Ok(status(204))
                    }
                    _ => Ok(status(404)),
                };
            }
            let ts = timestamp(&headers, "x-timestamp")?;
            let if_present = header(&headers, "x-backend-if-present").is_some();
            let wrote = device.object_delete(t, ts, if_present).await?;
            Ok(status(if wrote { 204 } else { 404 }))
        }
        Method::POST => {
            let ts = timestamp(&headers, "x-timestamp")?;
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .map_err(|e| refuse(400, e.to_string()))?;
            let posted: PostedMeta =
                serde_json::from_slice(&body).map_err(|e| refuse(400, e.to_string()))?;
            let hit = device.object_post(t, ts, &posted).await?;
            Ok(status(if hit { 202 } else { 404 }))
        }
        _ => Err(refuse(405, "method not allowed")),
    }
}

/// The data file of the object's newest `.data`, when its timestamp is the one asked for
/// (another has replaced it meanwhile: 404). `Range: bytes=a-b` reads part of it.
async fn object_get(device: &LocalDevice, t: &Target, headers: &HeaderMap) -> Served {
    let want = timestamp(headers, "x-backend-data-timestamp")?;
    let ObjectState::Present {
        data: DataRef::Local(path),
        meta,
    } = device.object_state(t).await?
    else {
        return Ok(status(404));
    };
    if meta.timestamp != want {
        return Ok(status(404));
    }
    let size = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || crate::disk::data_len(&path))
            .await
            .map_err(std::io::Error::other)??
    };
    let range = header(headers, "range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    let (code, offset, len) = match range {
        Some((a, b)) if a <= b && b < size => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Some(_) => return Ok(status(416)),
        None => (StatusCode::OK, 0, size),
    };
    let body = Body::from_stream(crate::node::file_stream(path, offset, len));
    Ok((
        code,
        [(axum::http::header::CONTENT_LENGTH, len.to_string())],
        body,
    )
        .into_response())
}

/// A framed object PUT: data frames into the device's `tmp/`, then the metadata frame; the
/// object is committed only when the data matches the metadata's size and CRC-32C.
async fn object_put(device: &LocalDevice, t: &Target, req: Request) -> Served {
    if header(req.headers(), "x-backend-obj-framed").is_none() {
        return Err(refuse(400, "object PUTs must be framed"));
    }
    let mut writer = device.object_writer(t).await?;
    let mut body = req.into_body().into_data_stream();
    let mut frames = FrameReader::default();
    let mut crc = CRC32C.digest();
    let mut received: u64 = 0;
    let mut meta: Option<ObjectMeta> = None;
    while let Some(chunk) = body.next().await {
        // A body cut short (the proxy gave up): nothing is stored.
        let chunk = chunk.map_err(|e| refuse(499, e.to_string()))?;
        frames.push(&chunk);
        while let Some(frame) = frames.next_frame()? {
            match frame {
                Frame::Data(_) | Frame::Meta(_) if meta.is_some() => {
                    return Err(refuse(400, "bytes after the metadata frame"));
                }
                Frame::Data(d) => {
                    crc.update(&d);
                    received += d.len() as u64;
                    writer.write(&Bytes::clone(&d)).await?;
                }
                Frame::Meta(m) => {
                    meta =
                        Some(serde_json::from_slice(&m).map_err(|e| refuse(400, e.to_string()))?);
                }
            }
        }
    }
    let Some(meta) = meta else {
        return Err(refuse(499, "the object body ended without its metadata"));
    };
    if frames.has_leftover() {
        return Err(refuse(400, "a partial frame after the metadata"));
    }
    // A manifest's recorded size is the whole's and it has no CRC; a plain object's bytes
    // must be the ones the proxy counted and summed.
    if let Some(want) = meta.crc32c
        && (crc.finalize() != want || received != meta.size)
    {
        return Err(refuse(422, "the object's bytes do not match its checksum"));
    }
    writer.commit(&meta).await?;
    Ok(status(201))
}

async fn db_request(device: &LocalDevice, t: &Target, req: Request) -> Served {
    match *req.method() {
        Method::GET if header(req.headers(), "x-backend-stat-only").is_some() => {
            match device.db_stat(t).await? {
                Some(stat) => Ok(json(StatusCode::OK, &stat)),
                None => Ok(status(404)),
            }
        }
        Method::GET => {
            let params: ListParams = serde_urlencoded_query(req.uri().query().unwrap_or(""))?;
            match device.db_list(t, &params).await? {
                Some((stat, listing)) => {
                    Ok(json(StatusCode::OK, &DbListResponse { stat, listing }))
                }
                None => Ok(status(404)),
            }
        }
        Method::POST => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .map_err(|e| refuse(400, e.to_string()))?;
            let r: DbUpdateRequest =
                serde_json::from_slice(&body).map_err(|e| refuse(400, e.to_string()))?;
            match device.db_update(t, &r.update, r.create).await? {
                Some(hit) => Ok(json(StatusCode::OK, &DbUpdateResponse { hit })),
                None => Ok(status(404)),
            }
        }
        _ => Err(refuse(405, "method not allowed")),
    }
}

fn serde_urlencoded_query(q: &str) -> Result<ListParams, Refusal> {
    axum::extract::Query::<ListParams>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| refuse(400, "bad query"))?,
    )
    .map(|q| q.0)
    .map_err(|e| refuse(400, e.to_string()))
}
