//! Metadef queries: the `gl_md_` tables. No other SQL touches them.
//!
//! Names are matched on their lower-cased `name_key` (see the migration); a unique-key
//! refusal comes back as `Error::Conflict` for the caller to word as Glance does.

use std::collections::BTreeMap;

use ferro_common::{Error, Result};
use ferro_db::{Executor, Sql};
use serde_json::{Map, Value};
use sqlx::FromRow;

use super::model::{Association, MdObject, MdProperty, MdTag, Namespace, ResourceType, name_key};

const NS_COLUMNS: &str = "id, name, display_name, description, visibility, owner_id, is_protected, created_at, updated_at";

#[derive(FromRow)]
struct NsRow {
    id: String,
    name: String,
    display_name: Option<String>,
    description: Option<String>,
    visibility: String,
    owner_id: String,
    is_protected: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<NsRow> for Namespace {
    fn from(r: NsRow) -> Self {
        Namespace {
            id: r.id,
            name: r.name,
            display_name: r.display_name,
            description: r.description,
            visibility: r.visibility,
            owner: r.owner_id,
            protected: r.is_protected,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The namespace called `name`, visible or not.
pub async fn namespace_get(ex: &mut impl Executor, name: &str) -> Result<Option<Namespace>> {
    let row: Option<NsRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {NS_COLUMNS} FROM gl_md_namespaces WHERE name_key = ?"
            ))
            .arg(name_key(name)),
        )
        .await?;
    Ok(row.map(Namespace::from))
}

/// Which namespaces a list selects, before paging.
#[derive(Clone, Debug, Default)]
pub struct NamespaceFilter {
    /// Admins see every namespace; others public ones and their project's.
    pub is_admin: bool,
    pub project: Option<String>,
    pub visibility: Option<String>,
    /// Only namespaces associated with any of these resource types.
    pub resource_types: Option<Vec<String>>,
}

/// The namespaces `f` selects, in no particular order.
pub async fn namespace_list(ex: &mut impl Executor, f: &NamespaceFilter) -> Result<Vec<Namespace>> {
    let mut sql = Sql::new(&format!(
        "SELECT {NS_COLUMNS} FROM gl_md_namespaces WHERE 1 = 1"
    ));
    if !f.is_admin {
        match &f.project {
            Some(p) => {
                sql.push(" AND (visibility = 'public' OR owner_id = ");
                sql.bind(p.as_str());
                sql.push(")");
            }
            None => {
                sql.push(" AND visibility = 'public'");
            }
        }
    }
    if let Some(v) = &f.visibility {
        sql.push(" AND visibility = ");
        sql.bind(v.as_str());
    }
    if let Some(types) = &f.resource_types {
        sql.push(
            " AND id IN (SELECT a.namespace_id FROM gl_md_ns_resource_types a \
             JOIN gl_md_resource_types r ON r.id = a.resource_type_id WHERE r.name_key IN ",
        );
        sql.bind_list(types.iter().map(|t| name_key(t)));
        sql.push(")");
    }
    let rows: Vec<NsRow> = ex.fetch_all(&sql).await?;
    Ok(rows.into_iter().map(Namespace::from).collect())
}

pub async fn namespace_insert(ex: &mut impl Executor, ns: &Namespace) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO gl_md_namespaces ({NS_COLUMNS}, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&ns.id)
        .arg(&ns.name)
        .arg(ns.display_name.as_ref())
        .arg(ns.description.as_ref())
        .arg(&ns.visibility)
        .arg(&ns.owner)
        .arg(ns.protected)
        .arg(ns.created_at)
        .arg(ns.updated_at)
        .arg(name_key(&ns.name)),
    )
    .await?;
    Ok(())
}

pub async fn namespace_update(ex: &mut impl Executor, ns: &Namespace) -> Result<()> {
    ex.execute(
        &Sql::new(
            "UPDATE gl_md_namespaces SET name = ?, name_key = ?, display_name = ?, description = ?, \
             visibility = ?, owner_id = ?, is_protected = ?, updated_at = ? WHERE id = ?",
        )
        .arg(&ns.name)
        .arg(name_key(&ns.name))
        .arg(ns.display_name.as_ref())
        .arg(ns.description.as_ref())
        .arg(&ns.visibility)
        .arg(&ns.owner)
        .arg(ns.protected)
        .arg(ns.updated_at)
        .arg(&ns.id),
    )
    .await?;
    Ok(())
}

/// Deletes a namespace and everything in it (glance `delete_cascade`).
pub async fn namespace_delete(ex: &mut impl Executor, id: &str) -> Result<()> {
    for table in [
        "gl_md_tags",
        "gl_md_objects",
        "gl_md_properties",
        "gl_md_ns_resource_types",
    ] {
        ex.execute(&Sql::new(&format!("DELETE FROM {table} WHERE namespace_id = ?")).arg(id))
            .await?;
    }
    ex.execute(&Sql::new("DELETE FROM gl_md_namespaces WHERE id = ?").arg(id))
        .await?;
    Ok(())
}

/// The tables holding a namespace's contents, for deleting one kind at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    Objects,
    Properties,
    Tags,
}

/// Deletes every object, property or tag of a namespace.
pub async fn namespace_clear(ex: &mut impl Executor, id: &str, what: Content) -> Result<()> {
    let table = match what {
        Content::Objects => "gl_md_objects",
        Content::Properties => "gl_md_properties",
        Content::Tags => "gl_md_tags",
    };
    ex.execute(&Sql::new(&format!("DELETE FROM {table} WHERE namespace_id = ?")).arg(id))
        .await?;
    Ok(())
}

// ---- objects -----------------------------------------------------------------------------

#[derive(FromRow)]
struct ObjectRow {
    id: String,
    name: String,
    description: Option<String>,
    required_list: String,
    properties_json: String,
    created_at: i64,
    updated_at: i64,
}

impl ObjectRow {
    fn into_object(self) -> Result<MdObject> {
        let required: Vec<String> = serde_json::from_str(&self.required_list)
            .map_err(|e| Error::internal(format!("metadef object {} required: {e}", self.id)))?;
        let properties: Map<String, Value> = serde_json::from_str(&self.properties_json)
            .map_err(|e| Error::internal(format!("metadef object {} properties: {e}", self.id)))?;
        Ok(MdObject {
            id: self.id,
            name: self.name,
            description: self.description,
            required: Some(required),
            properties: Some(properties),
            created_at: Some(self.created_at),
            updated_at: Some(self.updated_at),
        })
    }
}

const OBJECT_COLUMNS: &str =
    "id, name, description, required_list, properties_json, created_at, updated_at";

/// A namespace's objects, oldest first.
pub async fn object_list(ex: &mut impl Executor, ns_id: &str) -> Result<Vec<MdObject>> {
    let rows: Vec<ObjectRow> = ex
        .fetch_all(
            &Sql::new(&format!(
                "SELECT {OBJECT_COLUMNS} FROM gl_md_objects WHERE namespace_id = ? ORDER BY created_at, id"
            ))
            .arg(ns_id),
        )
        .await?;
    rows.into_iter().map(ObjectRow::into_object).collect()
}

pub async fn object_get(
    ex: &mut impl Executor,
    ns_id: &str,
    name: &str,
) -> Result<Option<MdObject>> {
    let row: Option<ObjectRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {OBJECT_COLUMNS} FROM gl_md_objects WHERE namespace_id = ? AND name_key = ?"
            ))
            .arg(ns_id)
            .arg(name_key(name)),
        )
        .await?;
    row.map(ObjectRow::into_object).transpose()
}

fn object_json(o: &MdObject) -> Result<(String, String)> {
    let required = serde_json::to_string(o.required.as_deref().unwrap_or_default())
        .map_err(Error::internal)?;
    let props = serde_json::to_string(&o.properties.clone().unwrap_or_default())
        .map_err(Error::internal)?;
    Ok((required, props))
}

pub async fn object_insert(
    ex: &mut impl Executor,
    ns_id: &str,
    o: &MdObject,
    now: i64,
) -> Result<()> {
    let (required, props) = object_json(o)?;
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO gl_md_objects ({OBJECT_COLUMNS}, namespace_id, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&o.id)
        .arg(&o.name)
        .arg(o.description.as_ref())
        .arg(required)
        .arg(props)
        .arg(now)
        .arg(now)
        .arg(ns_id)
        .arg(name_key(&o.name)),
    )
    .await?;
    Ok(())
}

pub async fn object_update(ex: &mut impl Executor, o: &MdObject, now: i64) -> Result<()> {
    let (required, props) = object_json(o)?;
    ex.execute(
        &Sql::new(
            "UPDATE gl_md_objects SET name = ?, name_key = ?, description = ?, required_list = ?, \
             properties_json = ?, updated_at = ? WHERE id = ?",
        )
        .arg(&o.name)
        .arg(name_key(&o.name))
        .arg(o.description.as_ref())
        .arg(required)
        .arg(props)
        .arg(now)
        .arg(&o.id),
    )
    .await?;
    Ok(())
}

pub async fn object_delete(ex: &mut impl Executor, id: &str) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM gl_md_objects WHERE id = ?").arg(id))
        .await?;
    Ok(())
}

// ---- properties --------------------------------------------------------------------------

#[derive(FromRow)]
struct PropertyRow {
    id: String,
    name: String,
    schema_json: String,
}

impl PropertyRow {
    fn into_property(self) -> Result<MdProperty> {
        let schema: Map<String, Value> = serde_json::from_str(&self.schema_json)
            .map_err(|e| Error::internal(format!("metadef property {}: {e}", self.id)))?;
        Ok(MdProperty {
            id: self.id,
            name: self.name,
            schema,
        })
    }
}

/// A namespace's properties, oldest first.
pub async fn property_list(ex: &mut impl Executor, ns_id: &str) -> Result<Vec<MdProperty>> {
    let rows: Vec<PropertyRow> = ex
        .fetch_all(
            &Sql::new(
                "SELECT id, name, schema_json FROM gl_md_properties WHERE namespace_id = ? \
                 ORDER BY created_at, id",
            )
            .arg(ns_id),
        )
        .await?;
    rows.into_iter().map(PropertyRow::into_property).collect()
}

pub async fn property_get(
    ex: &mut impl Executor,
    ns_id: &str,
    name: &str,
) -> Result<Option<MdProperty>> {
    let row: Option<PropertyRow> = ex
        .fetch_optional(
            &Sql::new(
                "SELECT id, name, schema_json FROM gl_md_properties WHERE namespace_id = ? AND name_key = ?",
            )
            .arg(ns_id)
            .arg(name_key(name)),
        )
        .await?;
    row.map(PropertyRow::into_property).transpose()
}

pub async fn property_insert(
    ex: &mut impl Executor,
    ns_id: &str,
    p: &MdProperty,
    now: i64,
) -> Result<()> {
    let schema = serde_json::to_string(&p.schema).map_err(Error::internal)?;
    ex.execute(
        &Sql::new(
            "INSERT INTO gl_md_properties (id, namespace_id, name, name_key, schema_json, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(&p.id)
        .arg(ns_id)
        .arg(&p.name)
        .arg(name_key(&p.name))
        .arg(schema)
        .arg(now)
        .arg(now),
    )
    .await?;
    Ok(())
}

pub async fn property_update(ex: &mut impl Executor, p: &MdProperty, now: i64) -> Result<()> {
    let schema = serde_json::to_string(&p.schema).map_err(Error::internal)?;
    ex.execute(
        &Sql::new(
            "UPDATE gl_md_properties SET name = ?, name_key = ?, schema_json = ?, updated_at = ? WHERE id = ?",
        )
        .arg(&p.name)
        .arg(name_key(&p.name))
        .arg(schema)
        .arg(now)
        .arg(&p.id),
    )
    .await?;
    Ok(())
}

pub async fn property_delete(ex: &mut impl Executor, id: &str) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM gl_md_properties WHERE id = ?").arg(id))
        .await?;
    Ok(())
}

// ---- tags --------------------------------------------------------------------------------

#[derive(FromRow)]
struct TagRow {
    id: String,
    name: String,
    created_at: i64,
    updated_at: i64,
}

impl From<TagRow> for MdTag {
    fn from(r: TagRow) -> Self {
        MdTag {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A namespace's tags, in no particular order (the caller sorts and pages).
pub async fn tag_list(ex: &mut impl Executor, ns_id: &str) -> Result<Vec<MdTag>> {
    let rows: Vec<TagRow> = ex
        .fetch_all(
            &Sql::new(
                "SELECT id, name, created_at, updated_at FROM gl_md_tags WHERE namespace_id = ?",
            )
            .arg(ns_id),
        )
        .await?;
    Ok(rows.into_iter().map(MdTag::from).collect())
}

pub async fn tag_get(ex: &mut impl Executor, ns_id: &str, name: &str) -> Result<Option<MdTag>> {
    let row: Option<TagRow> = ex
        .fetch_optional(
            &Sql::new(
                "SELECT id, name, created_at, updated_at FROM gl_md_tags WHERE namespace_id = ? AND name_key = ?",
            )
            .arg(ns_id)
            .arg(name_key(name)),
        )
        .await?;
    Ok(row.map(MdTag::from))
}

pub async fn tag_insert(ex: &mut impl Executor, ns_id: &str, t: &MdTag) -> Result<()> {
    ex.execute(
        &Sql::new(
            "INSERT INTO gl_md_tags (id, namespace_id, name, name_key, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .arg(&t.id)
        .arg(ns_id)
        .arg(&t.name)
        .arg(name_key(&t.name))
        .arg(t.created_at)
        .arg(t.updated_at),
    )
    .await?;
    Ok(())
}

pub async fn tag_update(ex: &mut impl Executor, t: &MdTag) -> Result<()> {
    ex.execute(
        &Sql::new("UPDATE gl_md_tags SET name = ?, name_key = ?, updated_at = ? WHERE id = ?")
            .arg(&t.name)
            .arg(name_key(&t.name))
            .arg(t.updated_at)
            .arg(&t.id),
    )
    .await?;
    Ok(())
}

pub async fn tag_delete(ex: &mut impl Executor, id: &str) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM gl_md_tags WHERE id = ?").arg(id))
        .await?;
    Ok(())
}

// ---- resource types and associations -----------------------------------------------------

#[derive(FromRow)]
struct RtRow {
    id: String,
    name: String,
    is_protected: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<RtRow> for ResourceType {
    fn from(r: RtRow) -> Self {
        ResourceType {
            id: r.id,
            name: r.name,
            protected: r.is_protected,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Every resource type, oldest first.
pub async fn resource_type_list(ex: &mut impl Executor) -> Result<Vec<ResourceType>> {
    let rows: Vec<RtRow> = ex
        .fetch_all(&Sql::new(
            "SELECT id, name, is_protected, created_at, updated_at FROM gl_md_resource_types \
             ORDER BY created_at, name",
        ))
        .await?;
    Ok(rows.into_iter().map(ResourceType::from).collect())
}

pub async fn resource_type_get(ex: &mut impl Executor, name: &str) -> Result<Option<ResourceType>> {
    let row: Option<RtRow> = ex
        .fetch_optional(
            &Sql::new(
                "SELECT id, name, is_protected, created_at, updated_at FROM gl_md_resource_types \
                 WHERE name_key = ?",
            )
            .arg(name_key(name)),
        )
        .await?;
    Ok(row.map(ResourceType::from))
}

pub async fn resource_type_insert(ex: &mut impl Executor, rt: &ResourceType) -> Result<()> {
    ex.execute(
        &Sql::new(
            "INSERT INTO gl_md_resource_types (id, name, name_key, is_protected, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .arg(&rt.id)
        .arg(&rt.name)
        .arg(name_key(&rt.name))
        .arg(rt.protected)
        .arg(rt.created_at)
        .arg(rt.updated_at),
    )
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct AssocRow {
    namespace_id: String,
    name: String,
    prefix: Option<String>,
    properties_target: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// The resource type associations of each of `ns_ids`, oldest first.
pub async fn associations_of(
    ex: &mut impl Executor,
    ns_ids: &[String],
) -> Result<BTreeMap<String, Vec<Association>>> {
    let mut sql = Sql::new(
        "SELECT a.namespace_id, r.name, a.prefix, a.properties_target, a.created_at, a.updated_at \
         FROM gl_md_ns_resource_types a JOIN gl_md_resource_types r ON r.id = a.resource_type_id \
         WHERE a.namespace_id IN ",
    );
    sql.bind_list(ns_ids.iter().map(String::as_str));
    sql.push(" ORDER BY a.created_at, r.name");
    let rows: Vec<AssocRow> = ex.fetch_all(&sql).await?;
    let mut out: BTreeMap<String, Vec<Association>> = BTreeMap::new();
    for r in rows {
        out.entry(r.namespace_id).or_default().push(Association {
            name: r.name,
            prefix: r.prefix,
            properties_target: r.properties_target,
            created_at: Some(r.created_at),
            updated_at: Some(r.updated_at),
        });
    }
    Ok(out)
}

pub async fn association_insert(
    ex: &mut impl Executor,
    ns_id: &str,
    rt_id: &str,
    a: &Association,
    now: i64,
) -> Result<()> {
    ex.execute(
        &Sql::new(
            "INSERT INTO gl_md_ns_resource_types (namespace_id, resource_type_id, prefix, properties_target, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .arg(ns_id)
        .arg(rt_id)
        .arg(a.prefix.as_ref())
        .arg(a.properties_target.as_ref())
        .arg(now)
        .arg(now),
    )
    .await?;
    Ok(())
}

/// Removes an association; whether there was one.
pub async fn association_delete(ex: &mut impl Executor, ns_id: &str, rt_id: &str) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new(
                "DELETE FROM gl_md_ns_resource_types WHERE namespace_id = ? AND resource_type_id = ?",
            )
            .arg(ns_id)
            .arg(rt_id),
        )
        .await?;
    Ok(n > 0)
}
