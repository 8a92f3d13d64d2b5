//! The work behind the image API: visibility, policy, property rules, status changes and
//! moving data between the client and the store.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use ferro_common::time::now_micros;
use ferro_common::{Error, RequestContext, Result};
use ferro_db::Db;
use ferro_policy::Enforcer;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::ImageConfig;
use crate::db::{self, ListFilter};
use crate::model::{self, DISALLOWED_ON_CREATE, Image, Member, READ_ONLY, Status};
use crate::policy::{allowed, authorize};
use crate::quota::Resource;
use crate::store::{DataStream, Store};

/// The image service: its database, data store, policy and settings.
pub struct Images {
    pub db: Db,
    pub store: Arc<dyn Store>,
    /// Where `PUT .../stage` keeps data until an import moves it into `store`.
    pub staging: Arc<dyn Store>,
    /// Per-project limits (Keystone's unified limits for `image`).
    pub limits: Arc<dyn crate::quota::Limits>,
    pub enforcer: Enforcer,
    pub config: ImageConfig,
}

/// Glance's `limit_param_default` and `api_limit_max`.
pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 1000;

/// Glance's `_available_sort_keys`.
pub const SORT_KEYS: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
];

/// Paging and order of an image list.
#[derive(Clone, Debug)]
pub struct Page {
    /// `(sort key, descending)` in order of precedence.
    pub sort: Vec<(String, bool)>,
    pub marker: Option<String>,
    pub limit: usize,
    /// Custom-property filters (any query key Glance does not know).
    pub properties: Vec<(String, String)>,
}

/// One JSON-patch operation, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Add(String, Value),
    Replace(String, Value),
    Remove(String),
    /// Insert a tag at an index (`/tags/N`) or at the end (`/tags/-`).
    TagAdd(Option<usize>, Value),
    /// Replace the tag at an index.
    TagReplace(usize, Value),
    /// Remove the tag at an index.
    TagRemove(usize),
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        kind: "image",
        id: id.to_string(),
    }
}

/// A digest computed on a blocking thread from the chunks [`Hasher::feed`] hands it.
struct Hasher {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<String>,
}

impl Hasher {
    fn spawn<H: Send + 'static>(
        mut state: H,
        update: fn(&mut H, &[u8]),
        finish: fn(H) -> String,
    ) -> Hasher {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                update(&mut state, &chunk);
            }
            finish(state)
        });
        Hasher { tx, done }
    }

    async fn feed(&self, chunk: Bytes) {
        // The thread only stops when the sender is dropped: a send cannot fail before.
        let _ = self.tx.send(chunk).await;
    }

    async fn finish(self) -> Result<String> {
        drop(self.tx);
        self.done
            .await
            .map_err(|e| Error::internal(format!("digest thread: {e}")))
    }
}

/// The 413 of an image larger than `image_size_cap`.
pub(crate) fn too_large(cap: i64) -> Error {
    Error::PayloadTooLarge(format!(
        "The incoming image is too large: image size exceeds the limit of {cap} bytes"
    ))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Images {
    /// The image service on `db`, with data in a file store under `config.data_dir`.
    pub fn open(
        db: Db,
        config: ImageConfig,
        limits: Arc<dyn crate::quota::Limits>,
    ) -> Result<Arc<Images>> {
        let store = Arc::new(crate::store::FileStore::new(&config.data_dir)?);
        let staging = Arc::new(crate::store::FileStore::new(&config.staging_dir)?);
        let enforcer = crate::policy::enforcer(config.policy_file.as_deref())?;
        Ok(Arc::new(Images {
            db,
            store,
            staging,
            limits,
            enforcer,
            config,
        }))
    }

    pub(crate) fn is_admin(&self, ctx: &RequestContext) -> bool {
        allowed(&self.enforcer, ctx, "context_is_admin", &json!({}))
    }

    /// Image `id` if the caller may see it (and passes `get_image`), else 404 as upstream.
    pub async fn get(&self, ctx: &RequestContext, id: &str) -> Result<Image> {
        Ok(self.get_with_target(ctx, id).await?.0)
    }

    /// Image `id` as [`Images::get`] finds it, with its policy target for this caller.
    pub(crate) async fn get_with_target(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<(Image, Value)> {
        let image = db::image_get(&mut &self.db, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let project = ctx.project_id.as_deref();
        let member = match project {
            Some(p) if image.visibility == "shared" && p != image.owner => {
                db::member_get(&mut &self.db, id, p)
                    .await?
                    .map(|m| m.member_id)
            }
            _ => None,
        };
        if !image.visible_to(project, self.is_admin(ctx), member.is_some()) {
            return Err(not_found(id));
        }
        let target = image.target(member.as_deref());
        if !allowed(&self.enforcer, ctx, "get_image", &target) {
            return Err(not_found(id));
        }
        Ok((image, target))
    }

    fn check_visibility_change(&self, ctx: &RequestContext, image: &Image) -> Result<()> {
        match image.visibility.as_str() {
            "public" => authorize(&self.enforcer, ctx, "publicize_image", &image.target(None)),
            "community" => authorize(
                &self.enforcer,
                ctx,
                "communitize_image",
                &image.target(None),
            ),
            _ => Ok(()),
        }
    }

    /// `POST /v2/images`: a queued image from the request body.
    pub async fn create(&self, ctx: &RequestContext, body: &Value) -> Result<Image> {
        let Value::Object(body) = body else {
            return Err(Error::bad_request("Body expected in request."));
        };
        if let Some(k) = DISALLOWED_ON_CREATE.iter().find(|k| body.contains_key(**k)) {
            return Err(Error::Forbidden(format!("Attribute '{k}' is read-only.")));
        }
        let now = now_micros();
        let owner = ctx.project_id.clone().unwrap_or_default();
        let mut image = Image::new(uuid::Uuid::new_v4().to_string(), owner, now);
        for (key, value) in body {
            if key == "id" {
                match value.as_str() {
                    Some(id) if model::is_uuid(id) => image.id = id.to_string(),
                    _ => {
                        return Err(Error::bad_request(format!(
                            "Invalid value for 'id': {value} is not a UUID"
                        )));
                    }
                }
            } else if READ_ONLY.contains(&key.as_str()) {
                return Err(Error::Forbidden(format!("Attribute '{key}' is read-only.")));
            } else if model::is_reserved(key) {
                return Err(Error::Forbidden(format!("Attribute '{key}' is reserved.")));
            } else {
                image.set(key, value)?;
            }
        }
        let target = json!({"project_id": ctx.project_id, "owner": image.owner});
        authorize(&self.enforcer, ctx, "add_image", &target)?;
        self.check_visibility_change(ctx, &image)?;
        self.enforce(&image.owner, Resource::Count, 1).await?;
        let mut tx = self.db.begin().await?;
        db::image_insert(&mut tx, &image)
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => Error::conflict(format!(
                    "Image with identifier {} already exists!",
                    image.id
                )),
                other => other,
            })?;
        tx.commit().await?;
        Ok(image)
    }

    /// `GET /v2/images`: one page of the images `filter` selects, and the next marker when the
    /// page is full.
    pub async fn list(
        &self,
        ctx: &RequestContext,
        mut filter: ListFilter,
        page: &Page,
    ) -> Result<(Vec<Image>, Option<String>)> {
        authorize(
            &self.enforcer,
            ctx,
            "get_images",
            &json!({"project_id": ctx.project_id}),
        )?;
        filter.project = ctx.project_id.clone();
        filter.is_admin = self.is_admin(ctx);
        // TODO-correctness: paging is done here over every selected row; a keyset query
        // belongs in db.rs once image counts grow.
        let mut images = db::image_list(&mut &self.db, &filter).await?;
        images.retain(|i| {
            page.properties
                .iter()
                .all(|(k, v)| i.properties.get(k) == Some(v))
        });
        images.sort_by(|a, b| compare(a, b, &page.sort));
        let start = match &page.marker {
            None => 0,
            Some(m) => {
                let pos = images.iter().position(|i| &i.id == m).ok_or_else(|| {
                    Error::bad_request(format!("Invalid marker. Image {m} could not be found."))
                })?;
                pos + 1
            }
        };
        let mut out: Vec<Image> = images.into_iter().skip(start).take(page.limit).collect();
        // Glance offers a next page whenever this one is full.
        let next = if out.len() == page.limit {
            out.last().map(|i| i.id.clone())
        } else {
            None
        };
        let ids: Vec<String> = out.iter().map(|i| i.id.clone()).collect();
        let mut tags = db::tags_of(&mut &self.db, &ids).await?;
        for i in &mut out {
            i.tags = tags.remove(&i.id).unwrap_or_default();
        }
        Ok((out, next))
    }

    /// `PATCH /v2/images/{id}`: applies `changes` in order, all or nothing.
    ///
    /// Two patches of one image at once both apply, one after the other, as Glance's
    /// per-column updates do: the write is a compare-and-swap on `updated_at`, and the loser
    /// re-reads the image and applies its changes again.
    pub async fn update(
        &self,
        ctx: &RequestContext,
        id: &str,
        changes: &[Change],
    ) -> Result<Image> {
        for _ in 0..64 {
            if let Some(image) = self.try_update(ctx, id, changes).await? {
                return Ok(image);
            }
            // Lost the race: step aside for a moment (jittered) before re-reading.
            let jitter = (now_micros() % 4000) as u64;
            tokio::time::sleep(std::time::Duration::from_micros(500 + jitter)).await;
        }
        Err(Error::conflict(format!(
            "Image {id} is being changed by other requests; try again."
        )))
    }

    /// One attempt of [`Images::update`]: `None` when another writer got in first.
    async fn try_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        changes: &[Change],
    ) -> Result<Option<Image>> {
        let (mut image, target) = self.get_with_target(ctx, id).await?;
        let seen = image.updated_at;
        authorize(&self.enforcer, ctx, "modify_image", &target)?;
        let was_visibility = image.visibility.clone();
        for change in changes {
            let key = match change {
                Change::Add(k, _) | Change::Replace(k, _) | Change::Remove(k) => k.as_str(),
                Change::TagAdd(..) | Change::TagReplace(..) | Change::TagRemove(_) => {
                    apply_tag_change(&mut image.tags, change)?;
                    continue;
                }
            };
            if READ_ONLY.contains(&key) {
                return Err(Error::Forbidden(format!("Attribute '{key}' is read-only.")));
            }
            if model::is_reserved(key) {
                return Err(Error::Forbidden(format!("Attribute '{key}' is reserved.")));
            }
            match change {
                Change::Remove(_) => {
                    if Image::is_base(key) {
                        return Err(Error::Forbidden(format!(
                            "Property {key} may not be removed."
                        )));
                    }
                    if image.properties.remove(key).is_none() {
                        return Err(Error::conflict(format!("Property {key} does not exist.")));
                    }
                }
                Change::Add(_, value) | Change::Replace(_, value) => {
                    if matches!(change, Change::Replace(..))
                        && !Image::is_base(key)
                        && !image.properties.contains_key(key)
                    {
                        return Err(Error::conflict(format!("Property {key} does not exist.")));
                    }
                    if key == "owner" && !self.is_admin(ctx) {
                        return Err(Error::Forbidden(
                            "Owner can't be updated by non admin.".into(),
                        ));
                    }
                    if matches!(key, "disk_format" | "container_format")
                        && image.status != Status::Queued
                    {
                        return Err(Error::Forbidden(format!(
                            "Attribute {key} can be only replaced for a queued image."
                        )));
                    }
                    image.set(key, value)?;
                }
                Change::TagAdd(..) | Change::TagReplace(..) | Change::TagRemove(_) => {}
            }
        }
        // Item changes may have repeated a tag: keep each once, in order.
        let tags = std::mem::take(&mut image.tags);
        image.set("tags", &json!(tags))?;
        if image.visibility != was_visibility {
            self.check_visibility_change(ctx, &image)?;
        }
        // Strictly later than what was read, so the swap can tell every write apart.
        image.updated_at = now_micros().max(seen + 1);
        let mut tx = self.db.begin().await?;
        if !db::image_update(&mut tx, &image, seen).await? {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(image))
    }

    /// `DELETE /v2/images/{id}`: the record and its data; a protected image is refused.
    pub async fn delete(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let (image, target) = self.get_with_target(ctx, id).await?;
        authorize(&self.enforcer, ctx, "delete_image", &target)?;
        if image.protected {
            return Err(Error::Forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            )));
        }
        let mut tx = self.db.begin().await?;
        db::image_delete(&mut tx, id).await?;
        tx.commit().await?;
        self.store.delete(id).await
    }

    /// `PUT /v2/images/{id}/tags/{tag}` (idempotent). One row is added, so concurrent tag
    /// changes on one image never undo each other.
    pub async fn tag_add(&self, ctx: &RequestContext, id: &str, tag: &str) -> Result<()> {
        let (image, target) = self.get_with_target(ctx, id).await?;
        authorize(&self.enforcer, ctx, "modify_image", &target)?;
        let tag = model::tag(tag)?;
        if image.tags.contains(&tag) {
            return Ok(());
        }
        // The image row first, then its tags, in every writer: one lock order, no deadlock.
        let mut tx = self.db.begin().await?;
        db::image_touch(&mut tx, id, now_micros()).await?;
        match db::tag_insert(&mut tx, id, &tag).await {
            // Added by someone else meanwhile: the tag is there, as asked.
            Err(Error::Conflict(_)) => return Ok(()),
            other => other?,
        }
        tx.commit().await?;
        Ok(())
    }

    /// `DELETE /v2/images/{id}/tags/{tag}`: 404 when the image has no such tag.
    pub async fn tag_delete(&self, ctx: &RequestContext, id: &str, tag: &str) -> Result<()> {
        let (_, target) = self.get_with_target(ctx, id).await?;
        authorize(&self.enforcer, ctx, "modify_image", &target)?;
        let mut tx = self.db.begin().await?;
        db::image_touch(&mut tx, id, now_micros()).await?;
        if !db::tag_delete(&mut tx, id, tag).await? {
            return Err(Error::NotFound {
                kind: "tag",
                id: tag.to_string(),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// `POST /v2/images/{id}/actions/deactivate|reactivate`.
    pub async fn set_active(&self, ctx: &RequestContext, id: &str, active: bool) -> Result<()> {
        let (image, target) = self.get_with_target(ctx, id).await?;
        let (rule, from, to) = if active {
            ("reactivate", Status::Deactivated, Status::Active)
        } else {
            ("deactivate", Status::Active, Status::Deactivated)
        };
        authorize(&self.enforcer, ctx, rule, &target)?;
        if image.status == to {
            return Ok(());
        }
        // glance/domain: deactivate/reactivate raise Forbidden from any other status.
        if image.status != from
            || !db::image_cas_status(&mut &self.db, id, from, to, now_micros()).await?
        {
            return Err(Error::Forbidden(format!(
                "Not allowed to {rule} image in status '{}'",
                image.status.as_str()
            )));
        }
        Ok(())
    }

    /// The image behind a members request: visible, and shared (Glance answers 403 for
    /// members of any other visibility).
    async fn shared_image(&self, ctx: &RequestContext, id: &str) -> Result<(Image, Value)> {
        let (image, target) = self.get_with_target(ctx, id).await?;
        if image.visibility != "shared" {
            return Err(Error::Forbidden("Only shared images have members.".into()));
        }
        Ok((image, target))
    }

    /// `POST /v2/images/{id}/members`: shares the image with project `member` (pending).
    pub async fn member_create(
        &self,
        ctx: &RequestContext,
        id: &str,
        member: &str,
    ) -> Result<Member> {
        let (_, target) = self.shared_image(ctx, id).await?;
        authorize(&self.enforcer, ctx, "add_member", &target)?;
        if member.is_empty() || member.chars().count() > 255 {
            return Err(Error::bad_request("Member can't be empty"));
        }
        let now = now_micros();
        let m = Member {
            image_id: id.to_string(),
            member_id: member.to_string(),
            status: "pending".into(),
            created_at: now,
            updated_at: now,
        };
        db::member_insert(&mut &self.db, &m)
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => {
                    Error::conflict(format!("Member {member} is duplicated for image {id}"))
                }
                other => other,
            })?;
        Ok(m)
    }

    /// `GET /v2/images/{id}/members`: all members for the owner, one's own membership for a
    /// member.
    pub async fn member_list(&self, ctx: &RequestContext, id: &str) -> Result<Vec<Member>> {
        let (image, target) = self.shared_image(ctx, id).await?;
        authorize(&self.enforcer, ctx, "get_members", &target)?;
        let mut members = db::member_list(&mut &self.db, id).await?;
        let project = ctx.project_id.as_deref();
        if !self.is_admin(ctx) && project != Some(image.owner.as_str()) {
            members.retain(|m| Some(m.member_id.as_str()) == project);
        }
        Ok(members)
    }

    /// `GET /v2/images/{id}/members/{member}`: 404 unless the caller owns the image or is
    /// that member.
    pub async fn member_show(
        &self,
        ctx: &RequestContext,
        id: &str,
        member: &str,
    ) -> Result<Member> {
        let missing = || Error::NotFound {
            kind: "image member",
            id: member.to_string(),
        };
        let (image, target) = self.shared_image(ctx, id).await?;
        if !allowed(&self.enforcer, ctx, "get_member", &target) {
            return Err(missing());
        }
        let project = ctx.project_id.as_deref();
        if !self.is_admin(ctx) && project != Some(image.owner.as_str()) && project != Some(member) {
            return Err(missing());
        }
        db::member_get(&mut &self.db, id, member)
            .await?
            .ok_or_else(missing)
    }

    /// `PUT /v2/images/{id}/members/{member}`: the member accepts, rejects or defers.
    pub async fn member_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        member: &str,
        status: &str,
    ) -> Result<Member> {
        let (image, _) = self.shared_image(ctx, id).await?;
        let mut m = db::member_get(&mut &self.db, id, member)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "image member",
                id: member.to_string(),
            })?;
        // modify_member checks the caller against the member being changed.
        authorize(
            &self.enforcer,
            ctx,
            "modify_member",
            &image.target(Some(member)),
        )?;
        if !model::MEMBER_STATUSES.contains(&status) {
            return Err(Error::bad_request(format!(
                "Incorrect request: Invalid status {status:?}: it must be one of {}",
                model::MEMBER_STATUSES.join(", ")
            )));
        }
        m.status = status.to_string();
        m.updated_at = now_micros();
        db::member_set_status(&mut &self.db, &m).await?;
        Ok(m)
    }

    /// `DELETE /v2/images/{id}/members/{member}`: the owner stops sharing.
    pub async fn member_delete(&self, ctx: &RequestContext, id: &str, member: &str) -> Result<()> {
        let (_, target) = self.shared_image(ctx, id).await?;
        authorize(&self.enforcer, ctx, "delete_member", &target)?;
        if db::member_get(&mut &self.db, id, member).await?.is_none() {
            return Err(Error::NotFound {
                kind: "image member",
                id: member.to_string(),
            });
        }
        db::member_delete(&mut &self.db, id, member).await
    }

    /// `PUT /v2/images/{id}/file`: streams `body` into the store while computing md5 and
    /// sha512 and counting bytes; `queued -> saving -> active`, or back to `queued` with no
    /// data left behind when the upload fails.
    pub async fn upload<S, E>(&self, ctx: &RequestContext, id: &str, body: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let (image, target) = self.get_with_target(ctx, id).await?;
        authorize(&self.enforcer, ctx, "upload_image", &target)?;
        if image.disk_format.is_none() || image.container_format.is_none() {
            return Err(Error::bad_request(
                "Properties disk_format, container_format must be set prior to saving data.",
            ));
        }
        self.enforce(&image.owner, Resource::Size, 0).await?;
        if image.status != Status::Queued
            || !db::image_cas_status(
                &mut &self.db,
                id,
                Status::Queued,
                Status::Saving,
                now_micros(),
            )
            .await?
        {
            return Err(Error::conflict(format!(
                "Image status transition from {} to saving is not allowed",
                image.status.as_str()
            )));
        }
        let received = match self.enforce(&image.owner, Resource::Uploading, 0).await {
            Ok(()) => self.receive(id, &image.owner, body, Status::Saving).await,
            Err(e) => Err(e),
        };
        match received {
            Ok(()) => Ok(()),
            Err(e) => {
                // Back to queued so the client may try again; the store kept nothing.
                if let Err(e2) = db::image_cas_status(
                    &mut &self.db,
                    id,
                    Status::Saving,
                    Status::Queued,
                    now_micros(),
                )
                .await
                {
                    tracing::warn!(image = id, error = %e2, "could not return image to queued");
                }
                Err(e)
            }
        }
    }

    /// Streams `body` into the store as image `id`'s data, hashing as it goes, and makes the
    /// image `active` if it is still in `from`. Nothing is left in the store on failure.
    pub(crate) async fn receive<S, E>(
        &self,
        id: &str,
        owner: &str,
        body: S,
        from: Status,
    ) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let quota_left = self.bytes_left(owner).await?;
        let mut body = Box::pin(body);
        let mut upload = self.store.begin(id).await?;
        // md5 and sha512 each take a core's worth of time per byte: they run on threads of
        // their own, beside the writes, so the upload is bound by the slower of the two and
        // not by their sum. Chunks are shared (`Bytes`), and the channels are short, so
        // memory stays bounded.
        let md5 = Hasher::spawn(
            md5::Md5::default(),
            |h, b| md5::Digest::update(h, b),
            |h| hex(&md5::Digest::finalize(h)),
        );
        let sha = Hasher::spawn(
            sha2::Sha512::new(),
            |h, b| h.update(b),
            |h| hex(&h.finalize()),
        );
        let mut size: i64 = 0;
        while let Some(chunk) = body.next().await {
            let step = match chunk {
                Err(e) => Err(Error::bad_request(format!(
                    "Error reading the image data: {e}"
                ))),
                Ok(chunk) => {
                    size += chunk.len() as i64;
                    if size > self.config.size_cap {
                        Err(too_large(self.config.size_cap))
                    } else if let Some(left) = quota_left.filter(|left| size > *left) {
                        Err(crate::quota::storage_quota_full(left))
                    } else {
                        md5.feed(chunk.clone()).await;
                        sha.feed(chunk.clone()).await;
                        upload.write(&chunk).await
                    }
                }
            };
            if let Err(e) = step {
                upload.abort().await;
                return Err(e);
            }
        }
        upload.commit().await?;
        let checksum = md5.finish().await?;
        let hash = sha.finish().await?;
        if !db::image_set_data(
            &mut &self.db,
            id,
            from,
            size,
            &checksum,
            &hash,
            now_micros(),
        )
        .await?
        {
            // Deleted while we were writing: drop the data we just stored.
            self.store.delete(id).await?;
            return Err(Error::conflict(format!(
                "Image {id} could not be found after upload. The image may have been deleted during the upload."
            )));
        }
        Ok(())
    }

    /// The image behind `GET /v2/images/{id}/file` once the caller may download it, or
    /// `None` when it has no data (204).
    pub async fn download_image(&self, ctx: &RequestContext, id: &str) -> Result<Option<Image>> {
        let (image, target) = self.get_with_target(ctx, id).await?;
        authorize(&self.enforcer, ctx, "download_image", &target)?;
        if image.status == Status::Deactivated && !self.is_admin(ctx) {
            return Err(Error::Forbidden(
                "The requested image has been deactivated. Image data download is forbidden."
                    .into(),
            ));
        }
        if !matches!(image.status, Status::Active | Status::Deactivated) {
            return Ok(None);
        }
        Ok(Some(image))
    }

    /// The data of `image` (as returned by [`Images::download_image`]), from byte `offset`,
    /// `len` bytes of it or all.
    pub async fn download_data(
        &self,
        image: &Image,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Option<DataStream>> {
        self.store.get(&image.id, offset, len).await
    }
}

/// Applies one `/tags/N` change to `tags`; an index out of range is a 400, as JSON patch
/// (RFC 6902) makes it an error.
fn apply_tag_change(tags: &mut Vec<String>, change: &Change) -> Result<()> {
    let out_of_range = |i: usize| Error::bad_request(format!("Tag index {i} is out of range."));
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::bad_request(format!("Invalid tag {v}: not a string")))
    };
    match change {
        Change::TagAdd(None, v) => tags.push(text(v)?),
        Change::TagAdd(Some(i), v) if *i <= tags.len() => tags.insert(*i, text(v)?),
        Change::TagReplace(i, v) if *i < tags.len() => tags[*i] = text(v)?,
        Change::TagRemove(i) if *i < tags.len() => {
            tags.remove(*i);
        }
        Change::TagAdd(Some(i), _) | Change::TagReplace(i, _) | Change::TagRemove(i) => {
            return Err(out_of_range(*i));
        }
        Change::Add(..) | Change::Replace(..) | Change::Remove(_) => {}
    }
    Ok(())
}

/// Orders two images by the sort keys, then by id, as Glance pages them.
fn compare(a: &Image, b: &Image, sort: &[(String, bool)]) -> Ordering {
    for (key, desc) in sort {
        let o = match key.as_str() {
            "name" => a.name.cmp(&b.name),
            "status" => a.status.as_str().cmp(b.status.as_str()),
            "container_format" => a.container_format.cmp(&b.container_format),
            "disk_format" => a.disk_format.cmp(&b.disk_format),
            "size" => a.size.cmp(&b.size),
            "id" => a.id.cmp(&b.id),
            "created_at" => a.created_at.cmp(&b.created_at),
            "updated_at" => a.updated_at.cmp(&b.updated_at),
            _ => Ordering::Equal,
        };
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    let desc = sort.last().is_some_and(|(_, d)| *d);
    let o = a.id.cmp(&b.id);
    if desc { o.reverse() } else { o }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_items_follow_json_patch_indices() {
        let mut t = vec!["a".to_string()];
        apply_tag_change(&mut t, &Change::TagAdd(Some(0), json!("z"))).unwrap();
        apply_tag_change(&mut t, &Change::TagAdd(None, json!("b"))).unwrap();
        assert_eq!(t, ["z", "a", "b"]);
        apply_tag_change(&mut t, &Change::TagRemove(1)).unwrap();
        apply_tag_change(&mut t, &Change::TagReplace(0, json!("y"))).unwrap();
        assert_eq!(t, ["y", "b"]);
        assert!(apply_tag_change(&mut t, &Change::TagRemove(2)).is_err());
        assert!(apply_tag_change(&mut t, &Change::TagAdd(Some(3), json!("q"))).is_err());
    }

    #[test]
    fn hex_is_lowercase_two_digits() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }

    #[test]
    fn sort_falls_back_to_id() {
        let mut a = Image::new("a".into(), "p".into(), 1);
        let b = Image::new("b".into(), "p".into(), 1);
        let s = vec![("created_at".to_string(), true)];
        assert_eq!(compare(&a, &b, &s), Ordering::Greater);
        a.created_at = 2;
        assert_eq!(compare(&a, &b, &s), Ordering::Less);
        let s = vec![("name".to_string(), false)];
        a.name = Some("z".into());
        assert_eq!(compare(&a, &b, &s), Ordering::Greater);
    }
}
