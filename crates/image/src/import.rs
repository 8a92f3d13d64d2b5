//! Interoperable image import and Glance tasks.
//!
//! `PUT /v2/images/{id}/stage` keeps data in the staging store (`queued -> uploading`);
//! `POST /v2/images/{id}/import` records an `api_image_import` task and moves the staged data
//! (`glance-direct`) or a web resource (`web-download`) into the store in the background,
//! hashing it on the way (`-> importing -> active`, or back to `queued` with the task failed
//! and nothing left in either store). The legacy tasks API (`/v2/tasks`, type `import`)
//! creates an image and fills it from a URL the same way. A task a restart interrupted is
//! failed by [`Images::sweep_stale_tasks`], so no image stays `importing` for ever.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ferro_common::time::now_micros;
use ferro_common::{Error, RequestContext, Result};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::db::{self, TaskFilter};
use crate::manager::{Images, too_large};
use crate::model::{Image, Status, TASK_STATUSES, Task};
use crate::policy::authorize;
use crate::quota::Resource;
use crate::store::STORE_ID;

/// The import methods this service offers (Glance's `enabled_import_methods` default).
pub const IMPORT_METHODS: &[&str] = &["glance-direct", "web-download"];

/// How long a finished task is kept visible (Glance's `task_time_to_live`, 48 hours).
const TASK_TTL_MICROS: i64 = 48 * 3600 * 1_000_000;

/// How often a running import records its progress on its task.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// A running task whose record has not moved for this long was interrupted (its process
/// died): the sweep fails it.
pub const STALE_AFTER: Duration = Duration::from_secs(300);

/// Where an import's data comes from.
#[derive(Clone, Debug)]
enum Source {
    /// The staging store (`glance-direct`).
    Staged,
    /// A URL (`web-download`, legacy `import` tasks).
    Web(String),
}

/// The image property Glance keeps the running import's task id in.
const IMPORT_TASK_KEY: &str = "os_glance_import_task";
const IMPORTING_KEY: &str = "os_glance_importing_to_stores";
const FAILED_KEY: &str = "os_glance_failed_import";

fn task_not_found(id: &str) -> Error {
    Error::NotFound {
        kind: "task",
        id: id.to_string(),
    }
}

/// Glance's `validate_import_uri`: an http(s) URL with a host, on an allowed port.
fn validate_uri(uri: &str, allowed_ports: &[u16]) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    // `[v6]:port`, `[v6]`, `host:port` or `host`.
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
            None => return false,
        },
        None => match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    let port = match port.map(str::parse::<u16>) {
        None => default_port,
        Some(Ok(p)) => p,
        Some(Err(_)) => return false,
    };
    !host.is_empty() && (allowed_ports.is_empty() || allowed_ports.contains(&port))
}

/// The data behind `uri`, as a stream of chunks; a non-2xx answer is an error.
async fn fetch(uri: &str) -> Result<impl Stream<Item = std::result::Result<Bytes, String>>> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .build()
        .map_err(Error::internal)?;
    let resp = client
        .get(uri)
        .send()
        .await
        .map_err(|e| Error::bad_request(format!("Failed to fetch {uri}: {e}")))?;
    if !resp.status().is_success() {
        return Err(Error::bad_request(format!(
            "Failed to fetch {uri}: HTTP {}",
            resp.status()
        )));
    }
    Ok(futures::stream::unfold(Some(resp), |resp| async move {
        let mut resp = resp?;
        match resp.chunk().await {
            Ok(Some(b)) => Some((Ok(b), Some(resp))),
            Ok(None) => None,
            Err(e) => Some((Err(e.to_string()), None)),
        }
    }))
}

/// Bytes copied so far, shared between an import and its heartbeat.
#[derive(Default)]
struct Progress(AtomicU64);

impl Images {
    /// `PUT /v2/images/{id}/stage`: `queued -> uploading` with the data in the staging store
    /// and `size` set; back to `queued` with nothing staged when the transfer fails.
    pub async fn stage<S, E>(&self, ctx: &RequestContext, id: &str, body: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let (image, target) = self.get_with_target(ctx, id).await?;
        authorize(&self.enforcer, ctx, "modify_image", &target)?;
        self.enforce(&image.owner, Resource::Stage, 0).await?;
        if image.status != Status::Queued
            || !db::image_cas_status(
                &mut &self.db,
                id,
                Status::Queued,
                Status::Uploading,
                now_micros(),
            )
            .await?
        {
            return Err(Error::conflict(format!(
                "Image status transition from {} to uploading is not allowed",
                image.status.as_str()
            )));
        }
        let staged = match self.enforce(&image.owner, Resource::Uploading, 0).await {
            Ok(()) => self.stage_data(id, body).await,
            Err(e) => Err(e),
        };
        let outcome = match staged {
            Ok(size) => {
                if db::image_set_staged_size(&mut &self.db, id, size, now_micros()).await? {
                    return Ok(());
                }
                Err(Error::conflict(format!(
                    "Image {id} could not be found after upload. The image may have been deleted during the upload."
                )))
            }
            Err(e) => Err(e),
        };
        self.staging.delete(id).await?;
        if let Err(e) = db::image_cas_status(
            &mut &self.db,
            id,
            Status::Uploading,
            Status::Queued,
            now_micros(),
        )
        .await
        {
            tracing::warn!(image = id, error = %e, "could not return image to queued");
        }
        outcome
    }

    async fn stage_data<S, E>(&self, id: &str, body: S) -> Result<i64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut body = Box::pin(body);
        let mut upload = self.staging.begin(id).await?;
        let mut size: i64 = 0;
        while let Some(chunk) = body.next().await {
            let step = match chunk {
                Ok(c) => {
                    size += c.len() as i64;
                    if size > self.config.size_cap {
                        Err(too_large(self.config.size_cap))
                    } else {
                        upload.write(&c).await
                    }
                }
                Err(e) => Err(Error::bad_request(format!(
                    "Error reading the image data: {e}"
                ))),
            };
            if let Err(e) = step {
                upload.abort().await;
                return Err(e);
            }
        }
        upload.commit().await?;
        Ok(size)
    }

    /// `POST /v2/images/{id}/import`: checks the request as Glance does, records an
    /// `api_image_import` task, marks the image `importing` and runs the import in the
    /// background.
    pub async fn import(
        self: &Arc<Self>,
        ctx: &RequestContext,
        id: &str,
        body: &Value,
        store_header: Option<&str>,
    ) -> Result<()> {
        let method = body
            .get("method")
            .filter(|m| m.is_object())
            .ok_or_else(|| Error::bad_request("Import request requires a 'method' field."))?;
        let name = method
            .get("name")
            .ok_or_else(|| Error::bad_request("Import request requires a 'name' field."))?;
        let name = name.as_str().unwrap_or_default();
        if !IMPORT_METHODS.contains(&name) {
            return Err(Error::bad_request(format!(
                "Unknown import method name '{name}'."
            )));
        }
        for (key, default) in [("all_stores_must_succeed", true), ("all_stores", false)] {
            if !body.get(key).unwrap_or(&json!(default)).is_boolean() {
                return Err(Error::bad_request(format!(
                    "'{key}' must be boolean value only"
                )));
            }
        }
        let (image, target) = self.get_with_target(ctx, id).await?;
        match (image.status, name) {
            (Status::Active, _) => {
                return Err(Error::conflict(
                    "Image with status active cannot be target for import",
                ));
            }
            (s, "web-download") if s != Status::Queued => {
                return Err(Error::conflict(
                    "Image needs to be in 'queued' state to use 'web-download' method",
                ));
            }
            (s, "glance-direct") if s != Status::Uploading => {
                return Err(Error::conflict(
                    "Image needs to be staged before 'glance-direct' method can be used",
                ));
            }
            _ => {}
        }
        if image.container_format.is_none() {
            return Err(Error::conflict(
                "'container_format' needs to be set before import",
            ));
        }
        if image.disk_format.is_none() {
            return Err(Error::conflict(
                "'disk_format' needs to be set before import",
            ));
        }
        authorize(&self.enforcer, ctx, "modify_image", &target)?;
        check_stores(body, store_header)?;
        // The staged size counts against the storage quota before anything moves.
        let staged_mib = match name {
            "glance-direct" => image.size.unwrap_or(0) >> 20,
            _ => 0,
        };
        self.enforce(&image.owner, Resource::Size, staged_mib)
            .await?;
        let source = if name == "web-download" {
            let uri = method.get("uri").and_then(Value::as_str).unwrap_or("");
            if !validate_uri(uri, &self.config.web_download_allowed_ports) {
                return Err(Error::bad_request(format!(
                    "URI for web-download does not pass filtering: {uri}"
                )));
            }
            Source::Web(uri.to_string())
        } else {
            Source::Staged
        };

        let now = now_micros();
        let owner = ctx.project_id.clone().unwrap_or_default();
        let input = json!({"image_id": id, "import_req": body, "backend": [STORE_ID]});
        let mut task = Task::new("api_image_import", owner, input, now);
        task.image_id = Some(id.to_string());
        task.user_id = Some(ctx.user_id.clone());
        task.request_id = Some(ctx.request_id.clone());
        let mut image = image;
        image
            .properties
            .insert(IMPORT_TASK_KEY.into(), task.id.clone());
        image
            .properties
            .insert(IMPORTING_KEY.into(), STORE_ID.into());
        image.properties.remove(FAILED_KEY);
        image.updated_at = now;
        let mut tx = self.db.begin().await?;
        if !db::image_cas_status(&mut tx, id, image.status, Status::Importing, now).await? {
            return Err(Error::conflict(format!(
                "New operation on image '{id}' is not permitted as prior operation is still in progress"
            )));
        }
        db::image_set_properties(&mut tx, &image).await?;
        db::task_insert(&mut tx, &task).await?;
        tx.commit().await?;
        let me = self.clone();
        let owner = image.owner.clone();
        tokio::spawn(async move { me.run_import(task, source, owner).await });
        Ok(())
    }

    /// Runs an import task to its end: `processing`, the copy, then `success`, or `failure`
    /// with the image back in `queued` and no data left behind.
    async fn run_import(self: Arc<Self>, mut task: Task, source: Source, owner: String) {
        let Some(image_id) = task.image_id.clone() else {
            return;
        };
        task.status = "processing".into();
        task.updated_at = now_micros();
        if let Err(e) = db::task_update(&mut &self.db, &task).await {
            tracing::warn!(task = %task.id, error = %e, "could not mark task processing");
        }
        let progress = Arc::new(Progress::default());
        let heartbeat = self.heartbeat(task.clone(), progress.clone());
        let outcome = self.copy_in(&image_id, &owner, &source, &progress).await;
        heartbeat.abort();
        if matches!(source, Source::Staged)
            && let Err(e) = self.staging.delete(&image_id).await
        {
            tracing::warn!(image = %image_id, error = %e, "could not drop staged data");
        }
        let outcome = match outcome {
            Ok(()) => self.finish_image(&image_id, None).await,
            Err(e) => {
                let _ = self.finish_image(&image_id, Some(&e)).await;
                Err(e)
            }
        };
        self.finish_task(&mut task, outcome).await;
    }

    /// Copies the import's data into the store; the image becomes `active` on success.
    async fn copy_in(
        &self,
        image_id: &str,
        owner: &str,
        source: &Source,
        progress: &Progress,
    ) -> Result<()> {
        let counted = |s: std::result::Result<Bytes, String>| {
            if let Ok(b) = &s {
                progress.0.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            s
        };
        match source {
            Source::Staged => {
                let data = self.staging.get(image_id, 0, None).await?.ok_or_else(|| {
                    Error::conflict(format!("Image {image_id} has no staged data"))
                })?;
                let data = data.map(|c| c.map_err(|e| e.to_string())).map(counted);
                self.receive(image_id, owner, data, Status::Importing).await
            }
            Source::Web(uri) => {
                let data = fetch(uri).await?.map(counted);
                self.receive(image_id, owner, data, Status::Importing).await
            }
        }
    }

    /// Clears the import bookkeeping on the image; on failure, records the failed store and
    /// returns an `importing` image to `queued`.
    async fn finish_image(&self, image_id: &str, failure: Option<&Error>) -> Result<()> {
        let Some(mut image) = db::image_get(&mut &self.db, image_id).await? else {
            return Ok(());
        };
        let now = now_micros();
        image.properties.remove(IMPORT_TASK_KEY);
        image.properties.insert(IMPORTING_KEY.into(), String::new());
        if failure.is_some() {
            image
                .properties
                .insert(FAILED_KEY.into(), STORE_ID.to_string());
        }
        image.updated_at = now;
        let mut tx = self.db.begin().await?;
        db::image_set_properties(&mut tx, &image).await?;
        if failure.is_some() && image.status == Status::Importing {
            db::image_cas_status(&mut tx, image_id, Status::Importing, Status::Queued, now).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn finish_task(&self, task: &mut Task, outcome: Result<()>) {
        let now = now_micros();
        match outcome {
            Ok(()) => {
                task.status = "success".into();
                task.result = Some(json!({"image_id": task.image_id}));
                task.message = String::new();
            }
            Err(e) => {
                task.status = "failure".into();
                task.message = e.to_string();
            }
        }
        task.updated_at = now;
        task.expires_at = Some(now + TASK_TTL_MICROS);
        if let Err(e) = db::task_update(&mut &self.db, task).await {
            tracing::warn!(task = %task.id, error = %e, "could not record task outcome");
        }
    }

    /// Every [`HEARTBEAT`], writes the bytes copied so far onto the task, which also tells
    /// the sweep that the task is alive.
    fn heartbeat(&self, mut task: Task, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
        let db = self.db.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let mib = progress.0.load(Ordering::Relaxed) >> 20;
                task.message = format!("Copied {mib} MiB");
                task.updated_at = now_micros();
                if let Err(e) = db::task_update(&mut &db, &task).await {
                    tracing::warn!(task = %task.id, error = %e, "task heartbeat failed");
                }
            }
        })
    }

    /// Fails every `pending`/`processing` task whose record has not moved for
    /// [`STALE_AFTER`] (its process died mid-import) and returns its image to `queued`.
    /// Returns how many it failed.
    pub async fn sweep_stale_tasks(&self) -> Result<usize> {
        let filter = TaskFilter {
            statuses: vec!["pending".into(), "processing".into()],
            updated_before: Some(now_micros() - STALE_AFTER.as_micros() as i64),
            ..TaskFilter::default()
        };
        let stale = db::task_list(&mut &self.db, &filter).await?;
        for mut task in stale.clone() {
            let err = Error::Unavailable("The import was interrupted; try again.".into());
            if let Some(image_id) = task.image_id.clone() {
                self.staging.delete(&image_id).await?;
                self.finish_image(&image_id, Some(&err)).await?;
            }
            self.finish_task(&mut task, Err(err)).await;
        }
        Ok(stale.len())
    }

    /// `GET /v2/images/{id}/tasks`: the image's tasks, oldest first.
    pub async fn image_tasks(&self, ctx: &RequestContext, id: &str) -> Result<Vec<Task>> {
        self.get_with_target(ctx, id).await?;
        let filter = TaskFilter {
            image_id: Some(id.to_string()),
            ..TaskFilter::default()
        };
        db::task_list(&mut &self.db, &filter).await
    }

    fn tasks_access(&self, ctx: &RequestContext, rule: &str) -> Result<()> {
        let target = json!({"project_id": ctx.project_id});
        authorize(&self.enforcer, ctx, "tasks_api_access", &target)?;
        authorize(&self.enforcer, ctx, rule, &target)
    }

    /// `POST /v2/tasks` (type `import`): creates the image described by
    /// `input.image_properties` and fills it from `input.import_from` in the background.
    pub async fn task_create(self: &Arc<Self>, ctx: &RequestContext, body: &Value) -> Result<Task> {
        self.tasks_access(ctx, "add_task")?;
        for key in ["type", "input"] {
            if body.get(key).is_none() {
                return Err(Error::bad_request(format!("Task '{key}' is required")));
            }
        }
        let task_type = body["type"].as_str().unwrap_or_default();
        if task_type != "import" {
            return Err(Error::bad_request(format!(
                "Task type '{task_type}' is not supported; only 'import' is."
            )));
        }
        let Value::Object(input) = &body["input"] else {
            return Err(Error::bad_request("Task 'input' must be an object"));
        };
        let uri = input
            .get("import_from")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !validate_uri(uri, &[]) {
            return Err(Error::bad_request(format!(
                "The given uri is not valid. Please specify a valid uri from the following list \
                 of supported uri ['http', 'https']: {uri}"
            )));
        }
        let properties = input
            .get("image_properties")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let now = now_micros();
        let owner = ctx.project_id.clone().unwrap_or_default();
        let mut task = Task::new("import", owner, body["input"].clone(), now);
        task.user_id = Some(ctx.user_id.clone());
        task.request_id = Some(ctx.request_id.clone());
        db::task_insert(&mut &self.db, &task).await?;
        let me = self.clone();
        let (ctx, uri, out) = (ctx.clone(), uri.to_string(), task.clone());
        tokio::spawn(async move { me.run_legacy_import(ctx, task, properties, uri).await });
        Ok(out)
    }

    /// The legacy `import` task: create the image, then import from the URL into it. On
    /// failure the image it created is deleted again.
    async fn run_legacy_import(
        self: Arc<Self>,
        ctx: RequestContext,
        mut task: Task,
        properties: Value,
        uri: String,
    ) {
        task.status = "processing".into();
        task.updated_at = now_micros();
        if let Err(e) = db::task_update(&mut &self.db, &task).await {
            tracing::warn!(task = %task.id, error = %e, "could not mark task processing");
        }
        let image = match self.create(&ctx, &properties).await {
            Ok(i) => i,
            Err(e) => return self.finish_task(&mut task, Err(e)).await,
        };
        task.image_id = Some(image.id.clone());
        let moved = db::image_cas_status(
            &mut &self.db,
            &image.id,
            Status::Queued,
            Status::Importing,
            now_micros(),
        )
        .await;
        let progress = Arc::new(Progress::default());
        let outcome = match moved {
            Ok(true) => {
                self.copy_in(&image.id, &image.owner, &Source::Web(uri), &progress)
                    .await
            }
            Ok(false) => Err(Error::conflict(
                "The new image changed status before import",
            )),
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            self.discard_image(&image).await;
        }
        self.finish_task(&mut task, outcome).await;
    }

    async fn discard_image(&self, image: &Image) {
        let result = async {
            let mut tx = self.db.begin().await?;
            db::image_delete(&mut tx, &image.id).await?;
            tx.commit().await?;
            self.store.delete(&image.id).await
        };
        if let Err(e) = result.await {
            tracing::warn!(image = %image.id, error = %e, "could not delete the failed import's image");
        }
    }

    /// `GET /v2/tasks`: tasks filtered by `type` and `status`, sorted, one page of them, and
    /// the next marker when the page is full.
    pub async fn task_list(
        &self,
        ctx: &RequestContext,
        query: &TaskQuery,
    ) -> Result<(Vec<Task>, Option<String>)> {
        self.tasks_access(ctx, "get_tasks")?;
        if let Some(s) = &query.status
            && !TASK_STATUSES.contains(&s.as_str())
        {
            return Err(Error::bad_request(format!("Invalid status value: {s}")));
        }
        if let Some(t) = &query.task_type
            && !["import", "api_image_import", "location_import"].contains(&t.as_str())
        {
            return Err(Error::bad_request(format!("Invalid type value: {t}")));
        }
        let filter = TaskFilter {
            task_type: query.task_type.clone(),
            status: query.status.clone(),
            ..TaskFilter::default()
        };
        let mut tasks = db::task_list(&mut &self.db, &filter).await?;
        let key = query.sort_key.as_str();
        tasks.sort_by(|a, b| {
            let o = match key {
                "id" => a.id.cmp(&b.id),
                "type" => a.task_type.cmp(&b.task_type),
                "status" => a.status.cmp(&b.status),
                "updated_at" => a.updated_at.cmp(&b.updated_at),
                _ => a.created_at.cmp(&b.created_at),
            }
            .then_with(|| a.id.cmp(&b.id));
            if query.descending { o.reverse() } else { o }
        });
        let start = match &query.marker {
            None => 0,
            Some(m) => {
                tasks
                    .iter()
                    .position(|t| &t.id == m)
                    .ok_or_else(|| task_not_found(m))?
                    + 1
            }
        };
        let page: Vec<Task> = tasks.into_iter().skip(start).take(query.limit).collect();
        let next = (page.len() == query.limit && query.limit > 0)
            .then(|| page.last().map(|t| t.id.clone()))
            .flatten();
        Ok((page, next))
    }

    /// `GET /v2/tasks/{id}`.
    pub async fn task_get(&self, ctx: &RequestContext, id: &str) -> Result<Task> {
        self.tasks_access(ctx, "get_task")?;
        db::task_get(&mut &self.db, id)
            .await?
            .ok_or_else(|| task_not_found(id))
    }
}

/// A `GET /v2/tasks` request, parsed.
#[derive(Clone, Debug)]
pub struct TaskQuery {
    pub task_type: Option<String>,
    pub status: Option<String>,
    pub sort_key: String,
    pub descending: bool,
    pub marker: Option<String>,
    pub limit: usize,
}

/// The stores an import asks for (`stores` in the body or the `X-Image-Meta-Store` header)
/// must be ones this service has; Glance answers 409 for an unknown one.
fn check_stores(body: &Value, header: Option<&str>) -> Result<()> {
    let mut wanted: Vec<String> = header.map(|h| vec![h.to_string()]).unwrap_or_default();
    if let Some(stores) = body.get("stores") {
        let Value::Array(items) = stores else {
            return Err(Error::bad_request("'stores' must be a list of store ids"));
        };
        for s in items {
            wanted.push(s.as_str().unwrap_or_default().to_string());
        }
    }
    match wanted.iter().find(|s| s.as_str() != STORE_ID) {
        Some(s) => Err(Error::conflict(format!(
            "Unknown scheme '{s}' found in uri"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_download_uris_are_filtered_as_glance_does() {
        let default = [80, 443];
        assert!(validate_uri("http://example.com/x.qcow2", &default));
        assert!(validate_uri("https://user@example.com/x", &default));
        assert!(!validate_uri("http://example.com:8080/x", &default));
        assert!(validate_uri("http://example.com:8080/x", &[]));
        assert!(!validate_uri("ftp://example.com/x", &[]));
        assert!(!validate_uri("file:///etc/passwd", &[]));
        assert!(!validate_uri("http:///x", &[]));
        assert!(!validate_uri("not a uri", &[]));
        assert!(!validate_uri("http://h:notaport/x", &[]));
    }

    #[test]
    fn only_the_file_store_is_known() {
        assert!(check_stores(&json!({}), None).is_ok());
        assert!(check_stores(&json!({"stores": ["file"]}), Some("file")).is_ok());
        assert!(matches!(
            check_stores(&json!({"stores": ["ceph"]}), None),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            check_stores(&json!({"stores": "file"}), None),
            Err(Error::BadRequest(_))
        ));
    }
}
