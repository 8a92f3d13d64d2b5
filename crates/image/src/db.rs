//! Image's queries: `gl_images`, `gl_image_tags` and `gl_image_members`. No SQL elsewhere in
//! this crate.

use std::collections::BTreeMap;

use ferro_common::{Error, Result};
use ferro_db::{Executor, Sql};
use sqlx::FromRow;

use crate::model::{Image, Member, Status};

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

/// Writes the client-changeable columns of `image` (not status or data fields) and its tags.
pub async fn image_update(ex: &mut impl Executor, image: &Image) -> Result<()> {
    ex.execute(
        &Sql::new(
            "UPDATE gl_images SET name = ?, visibility = ?, owner_id = ?, disk_format = ?, \
             container_format = ?, min_disk = ?, min_ram = ?, is_protected = ?, os_hidden = ?, \
             extra_properties = ?, updated_at = ? WHERE id = ?",
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
        .arg(&image.id),
    )
    .await?;
    tags_replace(ex, &image.id, &image.tags).await
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

/// Records uploaded data and makes a `saving` image `active`; returns whether it was still
/// saving.
pub async fn image_set_data(
    ex: &mut impl Executor,
    id: &str,
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
            .arg(Status::Saving.as_str()),
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
    pub name: Option<String>,
    pub status: Option<String>,
    pub owner: Option<String>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
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
    for (col, v) in [
        ("name", &f.name),
        ("status", &f.status),
        ("owner_id", &f.owner),
        ("disk_format", &f.disk_format),
        ("container_format", &f.container_format),
    ] {
        if let Some(v) = v {
            sql.push(&format!(" AND {col} = ")).bind(v);
        }
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
