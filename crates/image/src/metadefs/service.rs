//! The work behind the metadef API: visibility, policy, uniqueness and cascades, worded as
//! Glance words its answers.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use ferro_common::time::now_micros;
use ferro_common::{Error, RequestContext};
use ferro_db::Tx;
use ferro_policy::Enforcer;
use serde_json::{Map, Value, json};

use super::db::{self, Content, NamespaceFilter};
use super::model::{
    Association, MdObject, MdProperty, MdTag, Namespace, NamespaceInput, ResourceType, name_key,
};
use super::{DEFAULT_NOT_FOUND, Fault, MdResult, Metadefs};

/// Resource types Glance's `db load_metadefs` creates from etc/metadefs (every
/// `resource_type_associations` name there), protected from deletion.
pub const SEEDED_RESOURCE_TYPES: &[&str] = &[
    "OS::Glance::Image",
    "OS::Cinder::Volume",
    "OS::Nova::Flavor",
    "OS::Nova::Aggregate",
    "OS::Nova::Server",
    "OS::Trove::Instance",
];

/// Namespace attributes a list may sort on.
pub const NAMESPACE_SORT_KEYS: &[&str] = &[
    "namespace",
    "display_name",
    "description",
    "visibility",
    "protected",
    "owner",
    "created_at",
    "updated_at",
    "id",
];

/// Tag attributes a list may sort on.
pub const TAG_SORT_KEYS: &[&str] = &["name", "created_at", "updated_at", "id"];

/// How a missing or hidden namespace is reported: Glance's controllers word it differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// "Namespace X not found" whether missing or hidden (properties, tags, resource types,
    /// namespace update and delete).
    Controller,
    /// The database's words when missing, the controller's when hidden (objects).
    Objects,
    /// The database's words when missing, webob's bare 404 when hidden (namespace show).
    Show,
}

/// Paging and filters of a namespace list.
#[derive(Clone, Debug)]
pub struct NamespaceQuery {
    pub limit: usize,
    pub marker: Option<String>,
    pub sort_key: String,
    pub descending: bool,
    pub visibility: Option<String>,
    pub resource_types: Option<Vec<String>>,
}

/// Paging of a tag list.
#[derive(Clone, Debug)]
pub struct TagQuery {
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub sort_key: String,
    pub descending: bool,
}

fn ns_missing(name: &str) -> Fault {
    Fault::NotFound(format!("Namespace {name} not found"))
}

fn protected(what: &str, name: &str) -> Fault {
    Fault::Domain(Error::Forbidden(format!(
        "Metadata definition {what} {name} is protected and cannot be deleted."
    )))
}

/// Words a unique-key refusal as `message`; passes any other error through.
fn duplicate(message: impl FnOnce() -> String) -> impl FnOnce(Error) -> Fault {
    move |e| match e {
        Error::Conflict(_) => Fault::Domain(Error::Conflict(message())),
        other => Fault::Domain(other),
    }
}

fn tag_duplicate(name: &str, ns: &str) -> String {
    format!(
        "A metadata tag with name={name} already exists in namespace={ns}. (Please note that \
         metadata tag names are case insensitive)."
    )
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn cmp_opt<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
    a.cmp(b)
}

/// Orders namespaces by `key` then `created_at` and `id`, all in one direction, as
/// oslo.db's `paginate_query` does.
fn compare_namespaces(a: &Namespace, b: &Namespace, key: &str, descending: bool) -> Ordering {
    let primary = match key {
        "namespace" => a.name.cmp(&b.name),
        "display_name" => cmp_opt(&a.display_name, &b.display_name),
        "description" => cmp_opt(&a.description, &b.description),
        "visibility" => a.visibility.cmp(&b.visibility),
        "protected" => a.protected.cmp(&b.protected),
        "owner" => a.owner.cmp(&b.owner),
        "updated_at" => a.updated_at.cmp(&b.updated_at),
        "id" => a.id.cmp(&b.id),
        _ => Ordering::Equal,
    };
    let o = primary
        .then(a.created_at.cmp(&b.created_at))
        .then(a.id.cmp(&b.id));
    if descending { o.reverse() } else { o }
}

fn compare_tags(a: &MdTag, b: &MdTag, key: &str, descending: bool) -> Ordering {
    let primary = match key {
        "name" => a.name.cmp(&b.name),
        "updated_at" => a.updated_at.cmp(&b.updated_at),
        "id" => a.id.cmp(&b.id),
        _ => Ordering::Equal,
    };
    let o = primary
        .then(a.created_at.cmp(&b.created_at))
        .then(a.id.cmp(&b.id));
    if descending { o.reverse() } else { o }
}

/// Prefixes every property name (and required name) with `prefix`, as a namespace is shown
/// for one resource type (`_prefix_property_name`).
fn apply_prefix(body: &mut Map<String, Value>, prefix: &str) {
    if let Some(Value::Object(props)) = body.get_mut("properties") {
        let renamed: Map<String, Value> = std::mem::take(props)
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .collect();
        *props = renamed;
    }
    if let Some(Value::Array(objects)) = body.get_mut("objects") {
        for o in objects {
            if let Some(Value::Object(props)) = o.get_mut("properties") {
                let renamed: Map<String, Value> = std::mem::take(props)
                    .into_iter()
                    .map(|(k, v)| (format!("{prefix}{k}"), v))
                    .collect();
                *props = renamed;
            }
            if let Some(Value::Array(req)) = o.get_mut("required") {
                for r in req.iter_mut() {
                    if let Some(s) = r.as_str() {
                        *r = json!(format!("{prefix}{s}"));
                    }
                }
            }
        }
    }
}

impl Metadefs {
    fn enforcer(&self) -> MdResult<&Enforcer> {
        self.enforcer
            .as_ref()
            .ok_or_else(|| Fault::Domain(Error::internal("metadef policy rules unavailable")))
    }

    fn db(&self) -> &ferro_db::Db {
        &self.images.db
    }

    fn allowed(&self, ctx: &RequestContext, rule: &str, target: &Value) -> MdResult<bool> {
        Ok(ferro_http::policy::allowed(
            self.enforcer()?,
            ctx,
            rule,
            target,
        ))
    }

    fn is_admin(&self, ctx: &RequestContext) -> MdResult<bool> {
        self.allowed(ctx, "context_is_admin", &json!({}))
    }

    /// Checks `rule` for the caller against `ns` (or the caller's own project). Like
    /// Glance's `MetadefAPIPolicy`, a refusal about a namespace the caller cannot see is a
    /// bare 404, so that hidden namespaces do not show through a 403.
    fn enforce(&self, ctx: &RequestContext, rule: &str, ns: Option<&Namespace>) -> MdResult<()> {
        let target = match ns {
            Some(ns) => ns.target(),
            None => json!({"project_id": ctx.project_id}),
        };
        if self.allowed(ctx, rule, &target)? {
            return Ok(());
        }
        if rule == "get_metadef_namespace"
            || !self.allowed(ctx, "get_metadef_namespace", &target)?
        {
            return Err(Fault::NotFound(DEFAULT_NOT_FOUND.into()));
        }
        Err(Fault::Domain(Error::Forbidden(format!(
            "You are not authorized to complete {rule} action."
        ))))
    }

    /// The namespace `name` if the caller may see it, else a 404 worded per `miss`.
    async fn namespace(&self, ctx: &RequestContext, name: &str, miss: Miss) -> MdResult<Namespace> {
        let found = db::namespace_get(&mut self.db(), name).await?;
        let Some(ns) = found else {
            return Err(match miss {
                Miss::Controller => ns_missing(name),
                Miss::Objects | Miss::Show => Fault::NotFound(format!(
                    "Metadata definition namespace={name} was not found."
                )),
            });
        };
        if !ns.visible_to(ctx.project_id.as_deref(), self.is_admin(ctx)?) {
            return Err(match miss {
                Miss::Show => Fault::NotFound(DEFAULT_NOT_FOUND.into()),
                _ => ns_missing(name),
            });
        }
        Ok(ns)
    }

    /// Creates the seeded resource types once per process (and once per database: a type
    /// already there, or created by another process meanwhile, is left alone).
    async fn seed(&self) -> MdResult<()> {
        self.seeded
            .get_or_try_init(|| async {
                let now = now_micros();
                for name in SEEDED_RESOURCE_TYPES {
                    if db::resource_type_get(&mut self.db(), name).await?.is_some() {
                        continue;
                    }
                    let rt = ResourceType {
                        id: new_id(),
                        name: name.to_string(),
                        protected: true,
                        created_at: now,
                        updated_at: now,
                    };
                    match db::resource_type_insert(&mut self.db(), &rt).await {
                        Ok(()) | Err(Error::Conflict(_)) => {}
                        Err(e) => return Err(Fault::Domain(e)),
                    }
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// The resource type `name`, created (unprotected) if it does not exist yet, as Glance
    /// does on a first association.
    async fn resource_type_ensure(
        &self,
        tx: &mut Tx,
        name: &str,
        now: i64,
    ) -> MdResult<ResourceType> {
        if let Some(rt) = db::resource_type_get(tx, name).await? {
            return Ok(rt);
        }
        let rt = ResourceType {
            id: new_id(),
            name: name.to_string(),
            protected: false,
            created_at: now,
            updated_at: now,
        };
        db::resource_type_insert(tx, &rt)
            .await
            .map_err(duplicate(|| {
                format!("A metadata definition resource-type with name={name} already exists.")
            }))?;
        Ok(rt)
    }

    async fn associate(
        &self,
        tx: &mut Tx,
        ns: &Namespace,
        a: &Association,
        now: i64,
    ) -> MdResult<()> {
        let rt = self.resource_type_ensure(tx, &a.name, now).await?;
        db::association_insert(tx, &ns.id, &rt.id, a, now)
            .await
            .map_err(duplicate(|| {
                format!(
                    "The metadata definition resource-type association of resource-type={} to \
                     namespace={} already exists.",
                    a.name, ns.name
                )
            }))
    }

    // ---- namespaces ----------------------------------------------------------------------

    /// `GET /v2/metadefs/namespaces`: one page of visible namespaces and the next marker.
    pub async fn namespace_list(
        &self,
        ctx: &RequestContext,
        q: &NamespaceQuery,
    ) -> MdResult<(Vec<Value>, Option<String>)> {
        self.enforce(ctx, "get_metadef_namespaces", None)?;
        self.enforce(ctx, "list_metadef_resource_types", None)?;
        let is_admin = self.is_admin(ctx)?;
        if let Some(m) = &q.marker {
            let found = db::namespace_get(&mut self.db(), m).await?;
            match found {
                None => {
                    return Err(Fault::NotFound(format!(
                        "Metadata definition namespace={m} was not found."
                    )));
                }
                Some(ns) if !ns.visible_to(ctx.project_id.as_deref(), is_admin) => {
                    return Err(Fault::Domain(Error::Forbidden(format!(
                        "Forbidding request, metadata definition namespace={m} is not visible."
                    ))));
                }
                Some(_) => {}
            }
        }
        let filter = NamespaceFilter {
            is_admin,
            project: ctx.project_id.clone(),
            visibility: q.visibility.clone(),
            resource_types: q.resource_types.clone(),
        };
        let mut all = db::namespace_list(&mut self.db(), &filter).await?;
        let mut visible = Vec::with_capacity(all.len());
        for ns in all.drain(..) {
            if self.allowed(ctx, "get_metadef_namespace", &ns.target())? {
                visible.push(ns);
            }
        }
        visible.sort_by(|a, b| compare_namespaces(a, b, &q.sort_key, q.descending));
        let start = match &q.marker {
            // A marker filtered out of this list (say by `visibility`) starts nothing.
            Some(m) => match visible
                .iter()
                .position(|n| name_key(&n.name) == name_key(m))
            {
                Some(i) => i + 1,
                None => visible.len(),
            },
            None => 0,
        };
        let page: Vec<Namespace> = visible.into_iter().skip(start).take(q.limit).collect();
        let ids: Vec<String> = page.iter().map(|n| n.id.clone()).collect();
        let mut assocs = db::associations_of(&mut self.db(), &ids).await?;
        let next = if !page.is_empty() && page.len() == q.limit {
            page.last().map(|n| n.name.clone())
        } else {
            None
        };
        let body = page
            .iter()
            .map(|ns| {
                let mut m = ns.to_json();
                if let Some(a) = assocs.remove(&ns.id) {
                    m.insert(
                        "resource_type_associations".into(),
                        Value::Array(a.iter().map(Association::to_json).collect()),
                    );
                }
                Value::Object(m)
            })
            .collect();
        Ok((body, next))
    }

    /// `POST /v2/metadefs/namespaces`: a namespace and its inline contents, all or nothing.
    pub async fn namespace_create(
        &self,
        ctx: &RequestContext,
        input: NamespaceInput,
    ) -> MdResult<Value> {
        self.enforce(ctx, "add_metadef_namespace", None)?;
        let non_empty = |o: Option<usize>| o.is_some_and(|n| n > 0);
        if non_empty(input.resource_type_associations.as_ref().map(Vec::len)) {
            self.enforce(ctx, "add_metadef_resource_type_association", None)?;
        }
        if non_empty(input.objects.as_ref().map(Vec::len)) {
            self.enforce(ctx, "add_metadef_object", None)?;
        }
        if non_empty(input.properties.as_ref().map(Map::len)) {
            self.enforce(ctx, "add_metadef_property", None)?;
        }
        if non_empty(input.tags.as_ref().map(Vec::len)) {
            self.enforce(ctx, "add_metadef_tag", None)?;
        }
        if input.resource_type_associations.is_some() {
            self.seed().await?;
        }
        let now = now_micros();
        let ns = Namespace {
            id: new_id(),
            name: input.namespace.clone(),
            display_name: input.display_name.clone(),
            description: input.description.clone(),
            visibility: input.visibility.clone().unwrap_or_else(|| "private".into()),
            owner: input
                .owner
                .clone()
                .or_else(|| ctx.project_id.clone())
                .unwrap_or_default(),
            protected: input.protected.unwrap_or(false),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db().begin().await?;
        db::namespace_insert(&mut tx, &ns)
            .await
            .map_err(duplicate(|| {
                format!(
                    "The metadata definition namespace={} already exists.",
                    ns.name
                )
            }))?;
        for a in input.resource_type_associations.iter().flatten() {
            self.associate(&mut tx, &ns, a, now).await?;
        }
        for o in input.objects.iter().flatten() {
            let mut o = o.clone();
            o.id = new_id();
            db::object_insert(&mut tx, &ns.id, &o, now)
                .await
                .map_err(duplicate(|| {
                    format!(
                        "A metadata definition object with name={} already exists in namespace={}.",
                        o.name, ns.name
                    )
                }))?;
        }
        for t in input.tags.iter().flatten() {
            let tag = MdTag {
                id: new_id(),
                name: t.clone(),
                created_at: now,
                updated_at: now,
            };
            db::tag_insert(&mut tx, &ns.id, &tag)
                .await
                .map_err(duplicate(|| tag_duplicate(t, &ns.name)))?;
        }
        for (name, schema) in input.properties.iter().flatten() {
            let p = MdProperty {
                id: new_id(),
                name: name.clone(),
                schema: schema.as_object().cloned().unwrap_or_default(),
            };
            db::property_insert(&mut tx, &ns.id, &p, now)
                .await
                .map_err(duplicate(|| {
                    format!(
                        "A metadata definition property with name={name} already exists in namespace={}.",
                        ns.name
                    )
                }))?;
        }
        tx.commit().await?;
        // Glance answers with the request's contents as it parsed them.
        let mut body = ns.to_json();
        if let Some(p) = input.properties {
            body.insert("properties".into(), Value::Object(p));
        }
        if let Some(objects) = input.objects {
            body.insert(
                "objects".into(),
                Value::Array(objects.iter().map(|o| o.to_json(None)).collect()),
            );
        }
        if let Some(a) = input.resource_type_associations {
            body.insert(
                "resource_type_associations".into(),
                Value::Array(a.iter().map(Association::to_json).collect()),
            );
        }
        if let Some(tags) = input.tags {
            body.insert(
                "tags".into(),
                Value::Array(tags.iter().map(|t| json!({"name": t})).collect()),
            );
        }
        Ok(Value::Object(body))
    }

    /// `GET /v2/metadefs/namespaces/{name}`: the namespace with its contents, property
    /// names prefixed for `resource_type` when given.
    pub async fn namespace_show(
        &self,
        ctx: &RequestContext,
        name: &str,
        resource_type: Option<&str>,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, name, Miss::Show).await?;
        self.enforce(ctx, "get_metadef_namespace", Some(&ns))?;
        for rule in [
            "list_metadef_resource_types",
            "get_metadef_objects",
            "get_metadef_properties",
            "get_metadef_tags",
        ] {
            self.enforce(ctx, rule, Some(&ns))?;
        }
        let mut body = ns.to_json();
        let objects = db::object_list(&mut self.db(), &ns.id).await?;
        if !objects.is_empty() {
            body.insert(
                "objects".into(),
                Value::Array(objects.iter().map(|o| o.to_json(Some(&ns.name))).collect()),
            );
        }
        let assocs = db::associations_of(&mut self.db(), std::slice::from_ref(&ns.id))
            .await?
            .remove(&ns.id)
            .unwrap_or_default();
        if !assocs.is_empty() {
            body.insert(
                "resource_type_associations".into(),
                Value::Array(assocs.iter().map(Association::to_json).collect()),
            );
        }
        let props = db::property_list(&mut self.db(), &ns.id).await?;
        if !props.is_empty() {
            let m: Map<String, Value> = props
                .into_iter()
                .map(|p| (p.name, Value::Object(p.schema)))
                .collect();
            body.insert("properties".into(), Value::Object(m));
        }
        if let Some(rt) = resource_type.filter(|r| !r.is_empty())
            && let Some(prefix) = assocs
                .iter()
                .find(|a| a.name == rt)
                .and_then(|a| a.prefix.as_deref())
                .filter(|p| !p.is_empty())
        {
            apply_prefix(&mut body, prefix);
        }
        let mut tags = db::tag_list(&mut self.db(), &ns.id).await?;
        if !tags.is_empty() {
            tags.sort_by(|a, b| compare_tags(a, b, "created_at", true));
            body.insert(
                "tags".into(),
                Value::Array(tags.iter().map(|t| json!({"name": t.name})).collect()),
            );
        }
        Ok(Value::Object(body))
    }

    /// `PUT /v2/metadefs/namespaces/{name}`: replaces the namespace's own fields; absent
    /// optional fields fall back to their create-time defaults, as Glance does.
    pub async fn namespace_update(
        &self,
        ctx: &RequestContext,
        name: &str,
        input: NamespaceInput,
    ) -> MdResult<Value> {
        let mut ns = self.namespace(ctx, name, Miss::Controller).await?;
        self.enforce(ctx, "modify_metadef_namespace", Some(&ns))?;
        ns.name = input.namespace;
        ns.display_name = input.display_name;
        ns.description = input.description;
        ns.visibility = input.visibility.unwrap_or_else(|| "private".into());
        ns.protected = input.protected.unwrap_or(false);
        ns.owner = input
            .owner
            .or_else(|| ctx.project_id.clone())
            .unwrap_or_default();
        ns.updated_at = now_micros();
        let mut tx = self.db().begin().await?;
        db::namespace_update(&mut tx, &ns)
            .await
            .map_err(duplicate(|| {
                format!(
                    "Invalid update. It would result in a duplicate metadata definition namespace \
                     with the same name of {}",
                    ns.name
                )
            }))?;
        tx.commit().await?;
        Ok(Value::Object(ns.to_json()))
    }

    /// `DELETE /v2/metadefs/namespaces/{name}`: the namespace and all it holds.
    pub async fn namespace_delete(&self, ctx: &RequestContext, name: &str) -> MdResult<()> {
        let ns = self.namespace(ctx, name, Miss::Controller).await?;
        self.enforce(ctx, "delete_metadef_namespace", Some(&ns))?;
        if ns.protected {
            return Err(protected("namespace", &ns.name));
        }
        let mut tx = self.db().begin().await?;
        db::namespace_delete(&mut tx, &ns.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `DELETE .../objects`, `.../properties`, `.../tags`: every item of one kind. Glance
    /// asks for the right to delete the namespace, and refuses for a protected one.
    pub async fn namespace_clear(
        &self,
        ctx: &RequestContext,
        name: &str,
        what: Content,
    ) -> MdResult<()> {
        let ns = self.namespace(ctx, name, Miss::Controller).await?;
        self.enforce(ctx, "delete_metadef_namespace", Some(&ns))?;
        if what == Content::Tags {
            self.enforce(ctx, "delete_metadef_tags", Some(&ns))?;
        }
        if ns.protected {
            return Err(protected("namespace", &ns.name));
        }
        db::namespace_clear(&mut self.db(), &ns.id, what).await?;
        Ok(())
    }

    // ---- objects -------------------------------------------------------------------------

    fn object_missing(name: &str) -> Fault {
        Fault::NotFound(format!("Could not find metadata object {name}"))
    }

    pub async fn object_list(&self, ctx: &RequestContext, ns_name: &str) -> MdResult<Vec<Value>> {
        let ns = self.namespace(ctx, ns_name, Miss::Objects).await?;
        self.enforce(ctx, "get_metadef_objects", Some(&ns))?;
        if !self.allowed(ctx, "get_metadef_object", &ns.target())? {
            return Ok(Vec::new());
        }
        let objects = db::object_list(&mut self.db(), &ns.id).await?;
        Ok(objects.iter().map(|o| o.to_json(Some(&ns.name))).collect())
    }

    pub async fn object_create(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        mut o: MdObject,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Objects).await?;
        self.enforce(ctx, "add_metadef_object", Some(&ns))?;
        let now = now_micros();
        o.id = new_id();
        o.created_at = Some(now);
        o.updated_at = Some(now);
        db::object_insert(&mut self.db(), &ns.id, &o, now)
            .await
            .map_err(duplicate(|| {
                format!(
                    "A metadata definition object with name={} already exists in namespace={}.",
                    o.name, ns.name
                )
            }))?;
        Ok(o.to_json(Some(&ns.name)))
    }

    pub async fn object_show(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Objects).await?;
        self.enforce(ctx, "get_metadef_object", Some(&ns))?;
        let o = db::object_get(&mut self.db(), &ns.id, name)
            .await?
            .ok_or_else(|| Self::object_missing(name))?;
        Ok(o.to_json(Some(&ns.name)))
    }

    /// `PUT .../objects/{name}`: replaces the object; absent fields are cleared.
    pub async fn object_update(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
        input: MdObject,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Objects).await?;
        self.enforce(ctx, "modify_metadef_object", Some(&ns))?;
        let old = db::object_get(&mut self.db(), &ns.id, name)
            .await?
            .ok_or_else(|| Self::object_missing(name))?;
        let now = now_micros();
        let o = MdObject {
            id: old.id,
            created_at: old.created_at,
            updated_at: Some(now),
            ..input
        };
        db::object_update(&mut self.db(), &o, now)
            .await
            .map_err(duplicate(|| {
                format!(
                    "Invalid update. It would result in a duplicate metadata definition object \
                     with the same name={} in namespace={}.",
                    o.name, ns.name
                )
            }))?;
        Ok(o.to_json(Some(&ns.name)))
    }

    pub async fn object_delete(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
    ) -> MdResult<()> {
        let ns = self.namespace(ctx, ns_name, Miss::Objects).await?;
        self.enforce(ctx, "delete_metadef_object", Some(&ns))?;
        let o = db::object_get(&mut self.db(), &ns.id, name)
            .await?
            .ok_or_else(|| Self::object_missing(name))?;
        if ns.protected {
            return Err(protected("object", &o.name));
        }
        db::object_delete(&mut self.db(), &o.id).await?;
        Ok(())
    }

    // ---- properties ----------------------------------------------------------------------

    fn property_missing(name: &str) -> Fault {
        Fault::NotFound(format!("Could not find property {name}"))
    }

    pub async fn property_list(&self, ctx: &RequestContext, ns_name: &str) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "get_metadef_properties", Some(&ns))?;
        let props = db::property_list(&mut self.db(), &ns.id).await?;
        let m: Map<String, Value> = props
            .into_iter()
            .map(|p| (p.name, Value::Object(p.schema)))
            .collect();
        Ok(Value::Object(m))
    }

    /// `GET .../properties/{name}`; with `resource_type`, `name` carries that association's
    /// prefix, which is stripped before the lookup.
    pub async fn property_show(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
        resource_type: Option<&str>,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "get_metadef_property", Some(&ns))?;
        let mut lookup = name.to_string();
        if let Some(rt) = resource_type.filter(|r| !r.is_empty()) {
            self.enforce(ctx, "get_metadef_resource_type", Some(&ns))?;
            if db::resource_type_get(&mut self.db(), rt).await?.is_none() {
                return Err(Fault::NotFound(format!(
                    "The metadata definition resource-type with name={rt}, was not found."
                )));
            }
            let assoc = db::associations_of(&mut self.db(), std::slice::from_ref(&ns.id))
                .await?
                .remove(&ns.id)
                .unwrap_or_default()
                .into_iter()
                .find(|a| name_key(&a.name) == name_key(rt))
                .ok_or_else(|| {
                    Fault::NotFound(format!(
                        "The metadata definition resource-type association of resource-type={rt} \
                         to namespace={}, was not found.",
                        ns.name
                    ))
                })?;
            match assoc.prefix.as_deref().filter(|p| !p.is_empty()) {
                Some(p) if name.starts_with(p) => lookup = name[p.len()..].to_string(),
                other => {
                    return Err(Fault::NotFound(format!(
                        "Property {name} does not start with the expected resource type \
                         association prefix of '{}'.",
                        other.unwrap_or("None")
                    )));
                }
            }
        }
        let p = db::property_get(&mut self.db(), &ns.id, &lookup)
            .await?
            .ok_or_else(|| Self::property_missing(&lookup))?;
        Ok(p.to_json())
    }

    pub async fn property_create(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: String,
        schema: Map<String, Value>,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "add_metadef_property", Some(&ns))?;
        let p = MdProperty {
            id: new_id(),
            name,
            schema,
        };
        db::property_insert(&mut self.db(), &ns.id, &p, now_micros())
            .await
            .map_err(duplicate(|| {
                format!(
                    "A metadata definition property with name={} already exists in namespace={}.",
                    p.name, ns.name
                )
            }))?;
        Ok(p.to_json())
    }

    /// `PUT .../properties/{name}`: replaces the definition; the body's `name` renames it.
    pub async fn property_update(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
        new_name: String,
        schema: Map<String, Value>,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "modify_metadef_property", Some(&ns))?;
        let old = db::property_get(&mut self.db(), &ns.id, name)
            .await?
            .ok_or_else(|| Self::property_missing(name))?;
        let p = MdProperty {
            id: old.id,
            name: new_name,
            schema,
        };
        db::property_update(&mut self.db(), &p, now_micros())
            .await
            .map_err(duplicate(|| {
                format!(
                    "Invalid update. It would result in a duplicate metadata definition property \
                     with the same name={} in namespace={}.",
                    p.name, ns.name
                )
            }))?;
        Ok(p.to_json())
    }

    pub async fn property_delete(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
    ) -> MdResult<()> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "remove_metadef_property", Some(&ns))?;
        let p = db::property_get(&mut self.db(), &ns.id, name)
            .await?
            .ok_or_else(|| Self::property_missing(name))?;
        if ns.protected {
            return Err(protected("property", &p.name));
        }
        db::property_delete(&mut self.db(), &p.id).await?;
        Ok(())
    }

    // ---- tags ----------------------------------------------------------------------------

    fn tag_missing(name: &str) -> Fault {
        Fault::NotFound(format!("Could not find metadata tag {name}"))
    }

    pub async fn tag_list(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        q: &TagQuery,
    ) -> MdResult<Vec<Value>> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "get_metadef_tags", Some(&ns))?;
        let mut tags = db::tag_list(&mut self.db(), &ns.id).await?;
        tags.sort_by(|a, b| compare_tags(a, b, &q.sort_key, q.descending));
        let start = match &q.marker {
            Some(m) => {
                let i = tags
                    .iter()
                    .position(|t| name_key(&t.name) == name_key(m))
                    .ok_or_else(|| Self::tag_missing(m))?;
                i + 1
            }
            None => 0,
        };
        let limit = q.limit.unwrap_or(usize::MAX);
        Ok(tags
            .iter()
            .skip(start)
            .take(limit)
            .map(|t| json!({"name": t.name}))
            .collect())
    }

    /// `POST .../tags/{name}`: one tag.
    pub async fn tag_create(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: String,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        let name = super::model::tag_name(&name)?;
        self.enforce(ctx, "add_metadef_tag", Some(&ns))?;
        super::model::no_4byte(&json!({"name": name}), "create metadata tag")?;
        let now = now_micros();
        let tag = MdTag {
            id: new_id(),
            name,
            created_at: now,
            updated_at: now,
        };
        db::tag_insert(&mut self.db(), &ns.id, &tag)
            .await
            .map_err(duplicate(|| tag_duplicate(&tag.name, &ns.name)))?;
        Ok(tag.to_json())
    }

    /// `POST .../tags`: several tags, replacing the namespace's tags unless `append`. An
    /// empty list changes nothing, as in Glance.
    pub async fn tags_create(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        names: Vec<String>,
        append: bool,
    ) -> MdResult<Vec<Value>> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "add_metadef_tags", Some(&ns))?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(name_key(n))) {
            return Err(Fault::Domain(Error::Conflict(tag_duplicate(dup, &ns.name))));
        }
        let now = now_micros();
        let mut tx = self.db().begin().await?;
        if !append {
            db::namespace_clear(&mut tx, &ns.id, Content::Tags).await?;
        }
        for (i, name) in names.iter().enumerate() {
            // Distinct instants keep the batch's order under the default sort.
            let at = now + i as i64;
            let tag = MdTag {
                id: new_id(),
                name: name.clone(),
                created_at: at,
                updated_at: at,
            };
            db::tag_insert(&mut tx, &ns.id, &tag)
                .await
                .map_err(duplicate(|| tag_duplicate(name, &ns.name)))?;
        }
        tx.commit().await?;
        Ok(names.iter().map(|n| json!({"name": n})).collect())
    }

    pub async fn tag_show(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "get_metadef_tag", Some(&ns))?;
        let tag = db::tag_get(&mut self.db(), &ns.id, name)
            .await?
            .ok_or_else(|| Self::tag_missing(name))?;
        Ok(tag.to_json())
    }

    pub async fn tag_update(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
        new_name: String,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "modify_metadef_tag", Some(&ns))?;
        let mut tag = db::tag_get(&mut self.db(), &ns.id, name)
            .await?
            .ok_or_else(|| Self::tag_missing(name))?;
        tag.name = new_name;
        tag.updated_at = now_micros();
        db::tag_update(&mut self.db(), &tag)
            .await
            .map_err(duplicate(|| tag_duplicate(&tag.name, &ns.name)))?;
        Ok(tag.to_json())
    }

    pub async fn tag_delete(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        name: &str,
    ) -> MdResult<()> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "delete_metadef_tag", Some(&ns))?;
        let tag = db::tag_get(&mut self.db(), &ns.id, name)
            .await?
            .ok_or_else(|| Self::tag_missing(name))?;
        if ns.protected {
            return Err(protected("tag", &tag.name));
        }
        db::tag_delete(&mut self.db(), &tag.id).await?;
        Ok(())
    }

    // ---- resource types ------------------------------------------------------------------

    /// `GET /v2/metadefs/resource_types`: every resource type, seeded ones included.
    pub async fn resource_type_list(&self, ctx: &RequestContext) -> MdResult<Vec<Value>> {
        self.enforce(ctx, "list_metadef_resource_types", None)?;
        self.seed().await?;
        let types = db::resource_type_list(&mut self.db()).await?;
        Ok(types.iter().map(ResourceType::to_json).collect())
    }

    pub async fn association_list(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
    ) -> MdResult<Vec<Value>> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "list_metadef_resource_types", Some(&ns))?;
        if !self.allowed(ctx, "get_metadef_resource_type", &ns.target())? {
            return Ok(Vec::new());
        }
        let assocs = db::associations_of(&mut self.db(), std::slice::from_ref(&ns.id))
            .await?
            .remove(&ns.id)
            .unwrap_or_default();
        Ok(assocs.iter().map(Association::to_json).collect())
    }

    pub async fn association_create(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        mut a: Association,
    ) -> MdResult<Value> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "add_metadef_resource_type_association", Some(&ns))?;
        self.seed().await?;
        let now = now_micros();
        let mut tx = self.db().begin().await?;
        self.associate(&mut tx, &ns, &a, now).await?;
        tx.commit().await?;
        a.created_at = Some(now);
        a.updated_at = Some(now);
        Ok(a.to_json())
    }

    pub async fn association_delete(
        &self,
        ctx: &RequestContext,
        ns_name: &str,
        rt_name: &str,
    ) -> MdResult<()> {
        let ns = self.namespace(ctx, ns_name, Miss::Controller).await?;
        self.enforce(ctx, "remove_metadef_resource_type_association", Some(&ns))?;
        let missing =
            || Fault::NotFound(format!("Failed to find resource type {rt_name} to delete"));
        let rt = db::resource_type_get(&mut self.db(), rt_name)
            .await?
            .ok_or_else(missing)?;
        let assocs = db::associations_of(&mut self.db(), std::slice::from_ref(&ns.id))
            .await?
            .remove(&ns.id)
            .unwrap_or_default();
        if !assocs.iter().any(|a| a.name == rt.name) {
            return Err(missing());
        }
        if ns.protected {
            return Err(protected("resource-type-association", &rt.name));
        }
        if !db::association_delete(&mut self.db(), &ns.id, &rt.id).await? {
            return Err(missing());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str, created: i64, display: Option<&str>) -> Namespace {
        Namespace {
            id: format!("id-{name}"),
            name: name.into(),
            display_name: display.map(str::to_string),
            description: None,
            visibility: "public".into(),
            owner: "p".into(),
            protected: false,
            created_at: created,
            updated_at: created,
        }
    }

    #[test]
    fn namespaces_sort_by_key_then_creation() {
        let mut v = [
            ns("b", 1, Some("z")),
            ns("a", 2, None),
            ns("c", 3, Some("a")),
        ];
        v.sort_by(|a, b| compare_namespaces(a, b, "created_at", true));
        assert_eq!(
            v.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["c", "a", "b"]
        );
        v.sort_by(|a, b| compare_namespaces(a, b, "namespace", false));
        assert_eq!(
            v.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        // A missing display name sorts first ascending, as NULL does in MySQL.
        v.sort_by(|a, b| compare_namespaces(a, b, "display_name", false));
        assert_eq!(
            v.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["a", "c", "b"]
        );
    }

    #[test]
    fn prefix_reaches_namespace_and_object_properties() {
        let mut body = json!({
            "properties": {"cpu": {"title": "C", "type": "string"}},
            "objects": [{"name": "o", "required": ["cpu"], "properties": {"cpu": {}}}],
        });
        apply_prefix(body.as_object_mut().unwrap(), "hw_");
        assert!(body["properties"]["hw_cpu"].is_object());
        assert_eq!(body["objects"][0]["required"], json!(["hw_cpu"]));
        assert!(body["objects"][0]["properties"]["hw_cpu"].is_object());
    }
}
