//! Image's queries: `gl_images`, `gl_image_tags` and `gl_image_members`. No SQL elsewhere in
//! this crate.

use std::collections::BTreeMap;

use ferro_common::{Error, Result};
use ferro_db::{Executor, Sql};
use sqlx::FromRow;

use crate::model::{Image, Member, Status, Task};

const COLUMNS: &str = "id, name, status, visibility, owner_id, disk_format, container_format, \
    image_size, virtual_size, checksum, os_hash_algo, os_hash_value, min_disk, min_ram, \
    is_protected, os_hidden, extra_properties, created_at, updated_at";

/// One `gl_images` row.
#[derive(FromRow, Clone, Debug)]
pub struct ImageRow {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub visibility: String,
    pub owner_id: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub image_size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub is_protected: bool,
    pub os_hidden: bool,
    pub extra_properties: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(FromRow)]
struct TagRow {
    image_id: String,
    tag: String,
}

impl ImageRow {
    /// The image this row holds, without its tags.
    pub fn into_image(self) -> Result<Image> {
        let status = Status::parse(&self.status)
            .ok_or_else(|| Error::internal(format!("image {}: status {}", self.id, self.status)))?;
        let properties: BTreeMap<String, String> = serde_json::from_str(&self.extra_properties)
            .map_err(|e| Error::internal(format!("image {} properties: {e}", self.id)))?;
        Ok(Image {
            id: self.id,
            name: self.name,
            status,
            visibility: self.visibility,
            owner: self.owner_id,
            disk_format: self.disk_format,
            container_format: self.container_format,
            size: self.image_size,
            virtual_size: self.virtual_size,
            checksum: self.checksum,
            os_hash_algo: self.os_hash_algo,
            os_hash_value: self.os_hash_value,
            min_disk: self.min_disk,
            min_ram: self.min_ram,
            protected: self.is_protected,
            os_hidden: self.os_hidden,
            tags: Vec::new(),
            properties,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn properties_json(image: &Image) -> Result<String> {
    serde_json::to_string(&image.properties).map_err(Error::internal)
}

/// Inserts a new image and its tags.
pub async fn image_insert(ex: &mut impl Executor, image: &Image) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO gl_images ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&image.id)
        .arg(image.name.as_ref())
        .arg(image.status.as_str())
        .arg(&image.visibility)
        .arg(&image.owner)
        .arg(image.disk_format.as_ref())
        .arg(image.container_format.as_ref())
        .arg(image.size)
        .arg(image.virtual_size)
        .arg(image.checksum.as_ref())
        .arg(image.os_hash_algo.as_ref())
        .arg(image.os_hash_value.as_ref())
        .arg(image.min_disk)
        .arg(image.min_ram)
        .arg(image.protected)
        .arg(image.os_hidden)
        .arg(properties_json(image)?)
        .arg(image.created_at)
        .arg(image.updated_at),
    )
    .await?;
    tags_replace(ex, &image.id, &image.tags).await
}

/// The image `id` with its tags, if it exists.
pub async fn image_get(ex: &mut impl Executor, id: &str) -> Result<Option<Image>> {
    let row: Option<ImageRow> = ex
        .fetch_optional(&Sql::new(&format!("SELECT {COLUMNS} FROM gl_images WHERE id = ?")).arg(id))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut image = row.into_image()?;
    image.tags = tags_of(ex, &[image.id.clone()])
        .await?
        .remove(&image.id)
        .unwrap_or_default();
    Ok(Some(image))
}

/// Writes the client-changeable columns of `image` (not status or data fields) and its tags,
/// if the row's `updated_at` is still `seen` (compare-and-swap); returns whether it was.
pub async fn image_update(ex: &mut impl Executor, image: &Image, seen: i64) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new(
                "UPDATE gl_images SET name = ?, visibility = ?, owner_id = ?, disk_format = ?, \
             container_format = ?, min_disk = ?, min_ram = ?, is_protected = ?, os_hidden = ?, \
             extra_properties = ?, updated_at = ? WHERE id = ? AND updated_at = ?",
            )
            .arg(image.name.as_ref())
            .arg(&image.visibility)
            .arg(&image.owner)
            .arg(image.disk_format.as_ref())
            .arg(image.container_format.as_ref())
            .arg(image.min_disk)
            .arg(image.min_ram)
            .arg(image.protected)
            .arg(image.os_hidden)
            .arg(properties_json(image)?)
            .arg(image.updated_at)
            .arg(&image.id)
            .arg(seen),
        )
        .await?;
    if n != 1 {
        return Ok(false);
    }
    tags_replace(ex, &image.id, &image.tags).await?;
    Ok(true)
}

/// Moves image `id` from status `from` to `to` if it is still in `from` (compare-and-swap);
/// returns whether it moved.
pub async fn image_cas_status(
    ex: &mut impl Executor,
    id: &str,
    from: Status,
    to: Status,
    now: i64,
) -> Result<bool> {
    debug_assert!(from.valid_transition(to));
    let n = ex
        .execute(
            &Sql::new(
                "UPDATE gl_images SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
            )
            .arg(to.as_str())
            .arg(now)
            .arg(id)
            .arg(from.as_str()),
        )
        .await?;
    Ok(n == 1)
}

/// Records uploaded data and makes an image in `from` (`saving` or `importing`) `active`;
/// returns whether it was still in `from`.
pub async fn image_set_data(
    ex: &mut impl Executor,
    id: &str,
    from: Status,
    size: i64,
    checksum: &str,
    os_hash_value: &str,
    now: i64,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new(
                "UPDATE gl_images SET status = ?, image_size = ?, checksum = ?, os_hash_algo = ?, \
                 os_hash_value = ?, updated_at = ? WHERE id = ? AND status = ?",
            )
            .arg(Status::Active.as_str())
            .arg(size)
            .arg(checksum)
            .arg("sha512")
            .arg(os_hash_value)
            .arg(now)
            .arg(id)
            .arg(from.as_str()),
        )
        .await?;
    Ok(n == 1)
}

/// Deletes image `id`, its tags and its members.
pub async fn image_delete(ex: &mut impl Executor, id: &str) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM gl_image_tags WHERE image_id = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM gl_image_members WHERE image_id = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM gl_images WHERE id = ?").arg(id))
        .await?;
    Ok(())
}

/// Replaces the tags of image `id`.
pub async fn tags_replace(ex: &mut impl Executor, id: &str, tags: &[String]) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM gl_image_tags WHERE image_id = ?").arg(id))
        .await?;
    for t in tags {
        ex.execute(
            &Sql::new("INSERT INTO gl_image_tags (image_id, tag) VALUES (?, ?)")
                .arg(id)
                .arg(t),
        )
        .await?;
    }
    Ok(())
}

/// Adds one tag to image `id`; a tag it already has is a conflict.
pub async fn tag_insert(ex: &mut impl Executor, id: &str, tag: &str) -> Result<()> {
    ex.execute(
        &Sql::new("INSERT INTO gl_image_tags (image_id, tag) VALUES (?, ?)")
            .arg(id)
            .arg(tag),
    )
    .await?;
    Ok(())
}

/// Removes one tag from image `id`; returns whether it had it.
pub async fn tag_delete(ex: &mut impl Executor, id: &str, tag: &str) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new("DELETE FROM gl_image_tags WHERE image_id = ? AND tag = ?")
                .arg(id)
                .arg(tag),
        )
        .await?;
    Ok(n == 1)
}

/// Touches `updated_at` of image `id`.
pub async fn image_touch(ex: &mut impl Executor, id: &str, now: i64) -> Result<()> {
    ex.execute(
        &Sql::new("UPDATE gl_images SET updated_at = ? WHERE id = ?")
            .arg(now)
            .arg(id),
    )
    .await?;
    Ok(())
}

/// The tags of each of `ids`, in tag order.
pub async fn tags_of(
    ex: &mut impl Executor,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new("SELECT image_id, tag FROM gl_image_tags WHERE image_id IN ");
    sql.bind_list(ids.iter());
    sql.push(" ORDER BY image_id, tag");
    let rows: Vec<TagRow> = ex.fetch_all(&sql).await?;
    for r in rows {
        out.entry(r.image_id).or_default().push(r.tag);
    }
    Ok(out)
}

/// One `gl_image_members` row.
#[derive(FromRow, Clone, Debug)]
struct MemberRow {
    image_id: String,
    member_id: String,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl From<MemberRow> for Member {
    fn from(r: MemberRow) -> Member {
        Member {
            image_id: r.image_id,
            member_id: r.member_id,
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const MEMBER_COLUMNS: &str = "image_id, member_id, status, created_at, updated_at";

/// The membership of project `member` in image `image`, if any.
pub async fn member_get(
    ex: &mut impl Executor,
    image: &str,
    member: &str,
) -> Result<Option<Member>> {
    let row: Option<MemberRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {MEMBER_COLUMNS} FROM gl_image_members WHERE image_id = ? AND member_id = ?"
            ))
            .arg(image)
            .arg(member),
        )
        .await?;
    Ok(row.map(Member::from))
}

/// Every member of image `image`, by member id.
pub async fn member_list(ex: &mut impl Executor, image: &str) -> Result<Vec<Member>> {
    let rows: Vec<MemberRow> = ex
        .fetch_all(
            &Sql::new(&format!(
                "SELECT {MEMBER_COLUMNS} FROM gl_image_members WHERE image_id = ? ORDER BY member_id"
            ))
            .arg(image),
        )
        .await?;
    Ok(rows.into_iter().map(Member::from).collect())
}

/// Adds a member; an existing one is a conflict.
pub async fn member_insert(ex: &mut impl Executor, m: &Member) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO gl_image_members ({MEMBER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
        ))
        .arg(&m.image_id)
        .arg(&m.member_id)
        .arg(&m.status)
        .arg(m.created_at)
        .arg(m.updated_at),
    )
    .await?;
    Ok(())
}

/// Sets a member's status.
pub async fn member_set_status(ex: &mut impl Executor, m: &Member) -> Result<()> {
    ex.execute(
        &Sql::new(
            "UPDATE gl_image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member_id = ?",
        )
        .arg(&m.status)
        .arg(m.updated_at)
        .arg(&m.image_id)
        .arg(&m.member_id),
    )
    .await?;
    Ok(())
}

/// Removes a member.
pub async fn member_delete(ex: &mut impl Executor, image: &str, member: &str) -> Result<()> {
    ex.execute(
        &Sql::new("DELETE FROM gl_image_members WHERE image_id = ? AND member_id = ?")
            .arg(image)
            .arg(member),
    )
    .await?;
    Ok(())
}

/// What an image list selects (glance `GET /v2/images` filters, visibility resolved).
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// `(column, any of these values)`: `name`, `id`, `status`, `disk_format`,
    /// `container_format` (Glance's `eq` and `in:` operators).
    pub any_of: Vec<(&'static str, Vec<String>)>,
    pub owner: Option<String>,
    /// `(column, operator, micros)`: `created_at`/`updated_at` compared by Glance's `gt`,
    /// `gte`, `lt`, `lte`, `eq` or `neq`.
    pub times: Vec<(&'static str, &'static str, i64)>,
    /// `public`, `private`, `shared`, `community` or `all`; `None` is Glance's default view.
    pub visibility: Option<String>,
    pub protected: Option<bool>,
    pub os_hidden: bool,
    pub size_min: Option<i64>,
    pub size_max: Option<i64>,
    /// Every one of these tags must be on the image.
    pub tags: Vec<String>,
    /// The caller's project.
    pub project: Option<String>,
    /// Admins see every image.
    pub is_admin: bool,
    /// Which memberships make another project's shared image listed: `accepted` (Glance's
    /// default), `pending`, `rejected` or `all`.
    pub member_status: String,
}

/// `id IN (images the project is a member of, in the wanted status)`.
fn push_membership(sql: &mut Sql, project: &str, status: &str) {
    sql.push("(visibility = 'shared' AND id IN (SELECT image_id FROM gl_image_members WHERE member_id = ")
        .bind(project);
    if status != "all" {
        sql.push(" AND status = ").bind(status);
    }
    sql.push("))");
}

/// Every image `f` selects, without tags, in no particular order.
pub async fn image_list(ex: &mut impl Executor, f: &ListFilter) -> Result<Vec<Image>> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM gl_images WHERE os_hidden = "
    ));
    sql.bind(f.os_hidden);
    for (col, values) in &f.any_of {
        sql.push(&format!(" AND {col} IN "));
        sql.bind_list(values.iter());
    }
    if let Some(v) = &f.owner {
        sql.push(" AND owner_id = ").bind(v);
    }
    // Glance compares at whole seconds (its timestamps have no fraction): `t` is the
    // threshold's second, `u` the next one.
    for (col, op, micros) in &f.times {
        let t = micros - micros.rem_euclid(1_000_000);
        let u = t + 1_000_000;
        match *op {
            "gt" => sql.push(&format!(" AND {col} >= ")).bind(u),
            "gte" => sql.push(&format!(" AND {col} >= ")).bind(t),
            "lt" => sql.push(&format!(" AND {col} < ")).bind(t),
            "lte" => sql.push(&format!(" AND {col} < ")).bind(u),
            "neq" => sql
                .push(&format!(" AND ({col} < "))
                .bind(t)
                .push(&format!(" OR {col} >= "))
                .bind(u)
                .push(")"),
            _ => sql
                .push(&format!(" AND {col} >= "))
                .bind(t)
                .push(&format!(" AND {col} < "))
                .bind(u),
        };
    }
    if let Some(p) = f.protected {
        sql.push(" AND is_protected = ").bind(p);
    }
    if let Some(n) = f.size_min {
        sql.push(" AND image_size >= ").bind(n);
    }
    if let Some(n) = f.size_max {
        sql.push(" AND image_size <= ").bind(n);
    }
    for t in &f.tags {
        sql.push(" AND id IN (SELECT image_id FROM gl_image_tags WHERE tag = ")
            .bind(t)
            .push(")");
    }
    let project = f.project.clone().unwrap_or_default();
    let member_status = if f.member_status.is_empty() {
        "accepted"
    } else {
        f.member_status.as_str()
    };
    match (f.visibility.as_deref(), f.is_admin) {
        (None | Some("all"), true) => {}
        (Some(v), true) => {
            sql.push(" AND visibility = ").bind(v);
        }
        // Glance's default view: the project's own images, public ones and shared images
        // whose membership is in the wanted status (accepted unless asked otherwise).
        (None, false) => {
            sql.push(" AND (owner_id = ")
                .bind(&project)
                .push(" OR visibility = 'public' OR ");
            push_membership(&mut sql, &project, member_status);
            sql.push(")");
        }
        (Some("all"), false) => {
            sql.push(" AND (owner_id = ")
                .bind(&project)
                .push(" OR visibility IN ('public', 'community') OR ");
            push_membership(&mut sql, &project, member_status);
            sql.push(")");
        }
        (Some(v @ ("public" | "community")), false) => {
            sql.push(" AND visibility = ").bind(v);
        }
        (Some("shared"), false) => {
            sql.push(" AND ((visibility = 'shared' AND owner_id = ")
                .bind(&project)
                .push(") OR ");
            push_membership(&mut sql, &project, member_status);
            sql.push(")");
        }
        (Some(v), false) => {
            sql.push(" AND visibility = ")
                .bind(v)
                .push(" AND owner_id = ")
                .bind(&project);
        }
    }
    let rows: Vec<ImageRow> = ex.fetch_all(&sql).await?;
    rows.into_iter().map(ImageRow::into_image).collect()
}

/// Sets the `size` of a staged image (status `uploading`); returns whether it still was.
pub async fn image_set_staged_size(
    ex: &mut impl Executor,
    id: &str,
    size: i64,
    now: i64,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new(
                "UPDATE gl_images SET image_size = ?, updated_at = ? WHERE id = ? AND status = ?",
            )
            .arg(size)
            .arg(now)
            .arg(id)
            .arg(Status::Uploading.as_str()),
        )
        .await?;
    Ok(n == 1)
}

/// Replaces the custom properties of image `id` (Glance's own `os_glance_*` bookkeeping),
/// leaving every other column alone.
pub async fn image_set_properties(ex: &mut impl Executor, image: &Image) -> Result<()> {
    ex.execute(
        &Sql::new("UPDATE gl_images SET extra_properties = ?, updated_at = ? WHERE id = ?")
            .arg(properties_json(image)?)
            .arg(image.updated_at)
            .arg(&image.id),
    )
    .await?;
    Ok(())
}

/// Every image in `status`, for the start-up sweep of interrupted imports.
pub async fn images_in_status(ex: &mut impl Executor, status: Status) -> Result<Vec<Image>> {
    let rows: Vec<ImageRow> = ex
        .fetch_all(
            &Sql::new(&format!("SELECT {COLUMNS} FROM gl_images WHERE status = ?"))
                .arg(status.as_str()),
        )
        .await?;
    rows.into_iter().map(ImageRow::into_image).collect()
}

const TASK_COLUMNS: &str = "id, task_type, status, owner_id, user_id, request_id, image_id, \
    task_input, task_result, message, created_at, updated_at, expires_at";

/// One `gl_tasks` row.
#[derive(FromRow, Clone, Debug)]
struct TaskRow {
    id: String,
    task_type: String,
    status: String,
    owner_id: String,
    user_id: Option<String>,
    request_id: Option<String>,
    image_id: Option<String>,
    task_input: String,
    task_result: Option<String>,
    message: String,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
}

impl TaskRow {
    fn into_task(self) -> Result<Task> {
        let json = |what: &str, s: &str| {
            serde_json::from_str(s)
                .map_err(|e| Error::internal(format!("task {} {what}: {e}", self.id)))
        };
        Ok(Task {
            input: json("input", &self.task_input)?,
            result: match &self.task_result {
                Some(r) => Some(json("result", r)?),
                None => None,
            },
            id: self.id,
            task_type: self.task_type,
            status: self.status,
            owner: self.owner_id,
            user_id: self.user_id,
            request_id: self.request_id,
            image_id: self.image_id,
            message: self.message,
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
        })
    }
}

/// Inserts a new task.
pub async fn task_insert(ex: &mut impl Executor, t: &Task) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO gl_tasks ({TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&t.id)
        .arg(&t.task_type)
        .arg(&t.status)
        .arg(&t.owner)
        .arg(t.user_id.as_ref())
        .arg(t.request_id.as_ref())
        .arg(t.image_id.as_ref())
        .arg(t.input.to_string())
        .arg(t.result.as_ref().map(|r| r.to_string()))
        .arg(&t.message)
        .arg(t.created_at)
        .arg(t.updated_at)
        .arg(t.expires_at),
    )
    .await?;
    Ok(())
}

/// Writes a task's status, result, message, image and times.
pub async fn task_update(ex: &mut impl Executor, t: &Task) -> Result<()> {
    ex.execute(
        &Sql::new(
            "UPDATE gl_tasks SET status = ?, task_result = ?, message = ?, image_id = ?, \
             updated_at = ?, expires_at = ? WHERE id = ?",
        )
        .arg(&t.status)
        .arg(t.result.as_ref().map(|r| r.to_string()))
        .arg(&t.message)
        .arg(t.image_id.as_ref())
        .arg(t.updated_at)
        .arg(t.expires_at)
        .arg(&t.id),
    )
    .await?;
    Ok(())
}

/// Task `id`, if it exists.
pub async fn task_get(ex: &mut impl Executor, id: &str) -> Result<Option<Task>> {
    let row: Option<TaskRow> = ex
        .fetch_optional(
            &Sql::new(&format!("SELECT {TASK_COLUMNS} FROM gl_tasks WHERE id = ?")).arg(id),
        )
        .await?;
    row.map(TaskRow::into_task).transpose()
}

/// What a task list selects.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub task_type: Option<String>,
    pub status: Option<String>,
    pub image_id: Option<String>,
    /// Only tasks whose last update is older than this (micros), for the stale-task sweep.
    pub updated_before: Option<i64>,
    /// Any of these statuses.
    pub statuses: Vec<String>,
}

/// Every task `f` selects, oldest first.
pub async fn task_list(ex: &mut impl Executor, f: &TaskFilter) -> Result<Vec<Task>> {
    let mut sql = Sql::new(&format!("SELECT {TASK_COLUMNS} FROM gl_tasks WHERE 1 = 1"));
    for (col, v) in [
        ("task_type", &f.task_type),
        ("status", &f.status),
        ("image_id", &f.image_id),
    ] {
        if let Some(v) = v {
            sql.push(&format!(" AND {col} = ")).bind(v);
        }
    }
    if let Some(t) = f.updated_before {
        sql.push(" AND updated_at < ").bind(t);
    }
    if !f.statuses.is_empty() {
        sql.push(" AND status IN ");
        sql.bind_list(f.statuses.iter());
    }
    sql.push(" ORDER BY created_at, id");
    let rows: Vec<TaskRow> = ex.fetch_all(&sql).await?;
    rows.into_iter().map(TaskRow::into_task).collect()
}

/// A project's image usage, as Glance's unified-limit resources count it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Images the project owns (`image_count_total`).
    pub images: i64,
    /// Bytes of the project's images that hold data (`image_size_total`).
    pub bytes: i64,
    /// Bytes staged for import (`image_stage_total`).
    pub staged_bytes: i64,
    /// Images taking data now: saving, uploading or importing (`image_count_uploading`).
    pub uploading: i64,
}

#[derive(FromRow)]
struct SizeRow {
    status: String,
    image_size: Option<i64>,
}

/// What project `owner`'s images use. Summed here, not in SQL: `SUM` of a BIGINT is a
/// NUMERIC/DECIMAL on PostgreSQL and MariaDB.
pub async fn usage(ex: &mut impl Executor, owner: &str) -> Result<Usage> {
    let rows: Vec<SizeRow> = ex
        .fetch_all(
            &Sql::new("SELECT status, image_size FROM gl_images WHERE owner_id = ?").arg(owner),
        )
        .await?;
    let mut u = Usage::default();
    for r in rows {
        let size = r.image_size.unwrap_or(0);
        u.images += 1;
        match r.status.as_str() {
            "active" | "deactivated" => u.bytes += size,
            "uploading" | "importing" => {
                u.staged_bytes += size;
                u.uploading += 1;
            }
            "saving" => u.uploading += 1,
            _ => {}
        }
    }
    Ok(u)
}
