//! The work behind the compute API: flavors and their access, key pairs, quotas and limits,
//! availability zones and the service registry. Policy is checked here, against targets
//! built as upstream builds them; the API layer has already validated request shapes.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use ferro_common::time::now_micros;
use ferro_common::{Error, RequestContext};
use ferro_db::Db;
use ferro_policy::Enforcer;
use serde_json::{Value, json};

use crate::ComputeConfig;
use crate::db::{self, FlavorFilter};
use crate::fault::{Fault, Result};
use crate::keys;
use crate::microversion::ApiVersion;
use crate::model::{Flavor, INTERNAL_ZONE, KeyPair, KeyType, Service};
use crate::policy::{allowed, authorize};
use crate::quota::{Detail, Limits, Quotas, Resource};

/// Nova's `[api] max_limit`: the largest page any list returns.
pub const MAX_LIMIT: i64 = 1000;

/// The compute service: its database, policy, quota engine and settings.
pub struct Compute {
    pub db: Db,
    pub enforcer: Enforcer,
    pub quotas: Quotas,
    pub config: ComputeConfig,
    /// The bus, credentials and peer APIs servers need ([`Compute::connect`]).
    pub links: std::sync::OnceLock<crate::servers::Links>,
    /// One lock per server group: this conductor places a group's members one at a time.
    pub(crate) group_locks: crate::server_groups::GroupLocks,
    /// The scheduler's view of the compute hosts.
    pub(crate) hosts: crate::scheduler::HostView,
    /// Each host's compute node as this conductor last wrote it.
    pub(crate) node_reports: std::sync::Mutex<std::collections::HashMap<String, db::ComputeNode>>,
    /// Heartbeats waiting to be written.
    pub(crate) beats: std::sync::Mutex<crate::conductor::Heartbeats>,
    /// Clients of placement, the image and the network API, made once.
    pub(crate) peers: crate::servers::PeerClients,
}

fn flavor_not_found(id: &str) -> Fault {
    Fault::not_found(format!("Flavor {id} could not be found."))
}

/// oslo `bool_from_string(strict=True)`.
pub fn parse_bool_strict(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An integer from a validated number-or-numeric-string value.
fn int_of(v: Option<&Value>, default: i64) -> Result<i64> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| {
                Fault::bad_request(format!("Invalid input received: {n} is not an integer."))
            }),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| {
            Fault::bad_request(format!("Invalid input received: {s} is not an integer."))
        }),
        Some(other) => Err(Fault::bad_request(format!(
            "Invalid input received: {other} is not an integer."
        ))),
    }
}

/// Python's `str()` of a JSON scalar (flavor ids and extra spec values given as numbers).
fn py_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => crate::validation::py_str(other),
    }
}

/// The filters, order and page of a flavor list (already validated).
#[derive(Clone, Debug, Default)]
pub struct FlavorQuery {
    pub is_public: Option<String>,
    pub min_ram: Option<String>,
    pub min_disk: Option<String>,
    /// 2.102+: a regular expression the name must match (searched, as the database's REGEXP).
    pub name: Option<String>,
    pub sort_key: Option<String>,
    pub sort_dir: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

/// A comparable value of a flavor's sort column (NULL sorts first, as MySQL and SQLite do).
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum SortValue {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

fn sort_value(f: &Flavor, key: &str) -> SortValue {
    match key {
        "created_at" | "id" => SortValue::Int(f.created_at),
        "description" => f
            .description
            .clone()
            .map_or(SortValue::Null, SortValue::Text),
        "disabled" => SortValue::Int(i64::from(f.disabled)),
        "ephemeral_gb" => SortValue::Int(f.ephemeral_gb),
        "flavorid" => SortValue::Text(f.id.clone()),
        "is_public" => SortValue::Int(i64::from(f.is_public)),
        "memory_mb" => SortValue::Int(f.memory_mb),
        "name" => SortValue::Text(f.name.clone()),
        "root_gb" => SortValue::Int(f.root_gb),
        "rxtx_factor" => SortValue::Float(f.rxtx_factor),
        "swap" => SortValue::Int(f.swap),
        "updated_at" => f.updated_at.map_or(SortValue::Null, SortValue::Int),
        "vcpus" => SortValue::Int(f.vcpus),
        // vcpu_weight is never set through the API.
        _ => SortValue::Null,
    }
}

/// Orders flavors by `key`, then by creation (upstream's internal id), then flavor id.
fn flavor_order(a: &Flavor, b: &Flavor, key: &str, desc: bool) -> Ordering {
    let o = sort_value(a, key)
        .partial_cmp(&sort_value(b, key))
        .unwrap_or(Ordering::Equal)
        .then(a.created_at.cmp(&b.created_at))
        .then_with(|| a.id.cmp(&b.id));
    if desc { o.reverse() } else { o }
}

/// One service of a host in the zone detail: whether it is up, whether it is enabled, and
/// its last update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostService {
    pub available: bool,
    pub active: bool,
    pub updated_at: Option<i64>,
}

/// A zone's hosts: host -> binary -> state.
pub type ZoneHosts = BTreeMap<String, BTreeMap<String, HostService>>;

/// How `PUT /os-services` names a service.
pub enum ServiceKey<'a> {
    /// `(host, binary)` in the body, before 2.53.
    HostBinary(&'a str, &'a str),
    /// The service's uuid in the path, from 2.53.
    Uuid(&'a str),
}

/// What `PUT /os-services` changes: scheduling (`disabled` with its reason) and/or
/// `forced_down`.
#[derive(Default)]
pub struct ServiceChange {
    pub disabled: Option<(bool, Option<String>)>,
    pub forced_down: Option<bool>,
}

/// What `GET /os-availability-zone` reports of one zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub name: String,
    pub available: bool,
    /// Detail only: the hosts of the zone and their services.
    pub hosts: Option<ZoneHosts>,
}

impl Compute {
    /// The compute service on `db`.
    pub fn open(db: Db, config: ComputeConfig) -> ferro_common::Result<Arc<Compute>> {
        let enforcer = crate::policy::enforcer(config.policy_file.as_deref())?;
        let hosts =
            crate::scheduler::HostView::new(config.scheduler_view_ttl, config.host_subset_size);
        Ok(Arc::new(Compute {
            db,
            enforcer,
            quotas: Quotas {
                defaults: config.quota_defaults.clone(),
            },
            config,
            links: std::sync::OnceLock::new(),
            group_locks: Default::default(),
            hosts,
            node_reports: Default::default(),
            beats: Default::default(),
            peers: Default::default(),
        }))
    }

    /// Whether the caller is an admin (`context.is_admin`).
    pub fn is_admin(&self, ctx: &RequestContext) -> bool {
        allowed(&self.enforcer, ctx, "context_is_admin", &json!({}))
    }

    pub(crate) fn authorize(&self, ctx: &RequestContext, rule: &str, target: Value) -> Result<()> {
        Ok(authorize(&self.enforcer, ctx, rule, &target)?)
    }

    /// The target oslo.policy gets when a Nova handler passes none: the caller's own ids.
    pub(crate) fn default_target(ctx: &RequestContext) -> Value {
        json!({"project_id": ctx.project_id, "user_id": ctx.user_id})
    }

    // ---- flavors ------------------------------------------------------------------------

    /// Flavor `id` if the caller may see it: admins see all, others public flavors and
    /// private ones granted to their project (404 otherwise, as upstream).
    pub async fn flavor_get(&self, ctx: &RequestContext, id: &str) -> Result<Flavor> {
        let f = db::flavor_get(&mut &self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))?;
        if f.is_public || self.is_admin(ctx) {
            return Ok(f);
        }
        let project = ctx.project_id.as_deref().unwrap_or("");
        if db::flavor_granted(&mut &self.db, id, project).await? {
            Ok(f)
        } else {
            Err(flavor_not_found(id))
        }
    }

    /// Whether the caller may see extra specs in flavor bodies (2.61+).
    pub fn may_see_extra_specs(&self, ctx: &RequestContext) -> bool {
        allowed(
            &self.enforcer,
            ctx,
            "os_compute_api:os-flavor-extra-specs:index",
            &Self::default_target(ctx),
        )
    }

    /// `GET /flavors[/detail]`: one page of the flavors the query selects.
    pub async fn flavor_list(&self, ctx: &RequestContext, q: &FlavorQuery) -> Result<Vec<Flavor>> {
        let is_admin = self.is_admin(ctx);
        let mut filter = FlavorFilter {
            is_admin,
            project: ctx.project_id.clone(),
            ..Default::default()
        };
        if is_admin {
            // `_parse_is_public`: absent means public only, "none" means all.
            filter.is_public = match q.is_public.as_deref() {
                None => Some(true),
                Some(s) if s.eq_ignore_ascii_case("none") => None,
                Some(s) => Some(parse_bool_strict(&json!(s)).ok_or_else(|| {
                    Fault::bad_request(format!("Invalid is_public filter [{s}]"))
                })?),
            };
        } else {
            filter.is_public = Some(true);
            filter.enabled_only = true;
        }
        if let Some(s) = &q.min_ram {
            filter.min_memory_mb = Some(
                s.trim()
                    .parse()
                    .map_err(|_| Fault::bad_request(format!("Invalid minRam filter [{s}]")))?,
            );
        }
        if let Some(s) = &q.min_disk {
            filter.min_root_gb = Some(
                s.trim()
                    .parse()
                    .map_err(|_| Fault::bad_request(format!("Invalid minDisk filter [{s}]")))?,
            );
        }
        let key = q
            .sort_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or("flavorid");
        let desc = q.sort_dir.as_deref() == Some("desc");
        let mut flavors = db::flavor_list(&mut &self.db, &filter).await?;
        if let Some(pattern) = &q.name {
            if fancy_regex::Regex::new(pattern).is_err() {
                return Err(Fault::bad_request(format!(
                    "Invalid regular expression for name filter: {pattern}"
                )));
            }
            flavors.retain(|f| crate::validation::search(pattern, &f.name));
        }
        flavors.sort_by(|a, b| flavor_order(a, b, key, desc));
        if let Some(marker) = &q.marker {
            // The marker must be a flavor the caller can see, whatever the other filters.
            let m = match db::flavor_get(&mut &self.db, marker).await? {
                Some(m) if m.is_public || is_admin => Some(m),
                Some(m) => {
                    let project = ctx.project_id.as_deref().unwrap_or("");
                    db::flavor_granted(&mut &self.db, marker, project)
                        .await?
                        .then_some(m)
                }
                None => None,
            };
            let m = m.ok_or_else(|| Fault::bad_request(format!("marker [{marker}] not found")))?;
            flavors.retain(|f| flavor_order(f, &m, key, desc) == Ordering::Greater);
        }
        let limit = q.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
        flavors.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(flavors)
    }

    /// `POST /flavors` from a validated body.
    pub async fn flavor_create(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        body: &Value,
    ) -> Result<Flavor> {
        self.authorize(ctx, "os_compute_api:os-flavor-manage:create", json!({}))?;
        let vals = &body["flavor"];
        let name = vals["name"].as_str().unwrap_or_default().trim().to_string();
        // `if not flavorid`: absent, null, 0 and "" all mean "make one up".
        let id = match vals.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(other) => Some(py_scalar(other)),
        }
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let rxtx_factor = match vals.get("rxtx_factor") {
            None => 1.0,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            Some(Value::String(s)) => s.parse().unwrap_or(0.0),
            Some(_) => 0.0,
        };
        if rxtx_factor <= 0.0 || rxtx_factor > 3.40282e38 {
            return Err(Fault::bad_request(
                "Invalid input received: 'rxtx_factor' argument must be a float between 0 and 3.40282e+38",
            ));
        }
        let is_public = match vals.get("os-flavor-access:is_public") {
            None => true,
            Some(v) => parse_bool_strict(v).ok_or_else(|| {
                Fault::bad_request("Invalid input received: is_public must be a boolean")
            })?,
        };
        let description = if v.at_least(2, 55) {
            vals.get("description")
                .and_then(Value::as_str)
                .map(str::to_string)
        } else {
            None
        };
        let flavor = Flavor {
            id,
            name,
            memory_mb: int_of(vals.get("ram"), 0)?,
            vcpus: int_of(vals.get("vcpus"), 0)?,
            root_gb: int_of(vals.get("disk"), 0)?,
            ephemeral_gb: int_of(vals.get("OS-FLV-EXT-DATA:ephemeral"), 0)?,
            swap: int_of(vals.get("swap"), 0)?,
            rxtx_factor,
            disabled: false,
            is_public,
            description,
            extra_specs: BTreeMap::new(),
            created_at: now_micros(),
            updated_at: None,
        };
        let id_taken = || Fault::conflict(format!("Flavor with ID {} already exists.", flavor.id));
        let name_taken =
            || Fault::conflict(format!("Flavor with name {} already exists.", flavor.name));
        let mut tx = self.db.begin().await?;
        if db::flavor_get(&mut tx, &flavor.id).await?.is_some() {
            return Err(id_taken());
        }
        if db::flavor_name_taken(&mut tx, &flavor.name).await? {
            return Err(name_taken());
        }
        match db::flavor_insert(&mut tx, &flavor).await {
            Ok(()) => {}
            // A concurrent create won the race for the id or the name.
            Err(Error::Conflict(_)) => return Err(name_taken()),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(flavor)
    }

    /// `PUT /flavors/{id}` (2.55): sets the description.
    pub async fn flavor_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        description: Option<&str>,
    ) -> Result<Flavor> {
        self.authorize(ctx, "os_compute_api:os-flavor-manage:update", json!({}))?;
        if !db::flavor_set_description(&mut &self.db, id, description, now_micros()).await? {
            return Err(flavor_not_found(id));
        }
        db::flavor_get(&mut &self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))
    }

    /// `DELETE /flavors/{id}`.
    pub async fn flavor_delete(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        self.authorize(ctx, "os_compute_api:os-flavor-manage:delete", json!({}))?;
        let mut tx = self.db.begin().await?;
        if !db::flavor_delete(&mut tx, id).await? {
            return Err(flavor_not_found(id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// `GET /flavors/{id}/os-extra_specs`.
    pub async fn extra_specs(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<BTreeMap<String, String>> {
        self.authorize(
            ctx,
            "os_compute_api:os-flavor-extra-specs:index",
            json!({"project_id": ctx.project_id}),
        )?;
        Ok(self.flavor_get(ctx, id).await?.extra_specs)
    }

    /// `GET /flavors/{id}/os-extra_specs/{key}`.
    pub async fn extra_spec(&self, ctx: &RequestContext, id: &str, key: &str) -> Result<String> {
        self.authorize(
            ctx,
            "os_compute_api:os-flavor-extra-specs:show",
            json!({"project_id": ctx.project_id}),
        )?;
        let f = self.flavor_get(ctx, id).await?;
        f.extra_specs.get(key).cloned().ok_or_else(|| {
            Fault::not_found(format!("Flavor {id} has no extra specs with key {key}."))
        })
    }

    /// `POST /flavors/{id}/os-extra_specs` and `PUT .../{key}`: merges `specs` (validated;
    /// numbers are stored as their text, as upstream's string column does).
    pub async fn extra_specs_set(
        &self,
        ctx: &RequestContext,
        rule: &str,
        id: &str,
        specs: &serde_json::Map<String, Value>,
    ) -> Result<()> {
        self.authorize(ctx, rule, json!({}))?;
        let mut values = BTreeMap::new();
        for (k, v) in specs {
            let text = py_scalar(v);
            if v.is_number() && text.chars().count() > 255 {
                return Err(Fault::bad_request(format!(
                    "Invalid input received: extra_specs value has {} characters, more than 255.",
                    text.chars().count()
                )));
            }
            values.insert(k.clone(), text);
        }
        self.flavor_get(ctx, id).await?;
        let mut tx = self.db.begin().await?;
        if db::flavor_get(&mut tx, id).await?.is_none() {
            return Err(flavor_not_found(id));
        }
        db::extra_specs_set(&mut tx, id, &values).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `DELETE /flavors/{id}/os-extra_specs/{key}`.
    pub async fn extra_spec_delete(&self, ctx: &RequestContext, id: &str, key: &str) -> Result<()> {
        self.authorize(
            ctx,
            "os_compute_api:os-flavor-extra-specs:delete",
            json!({}),
        )?;
        self.flavor_get(ctx, id).await?;
        if !db::extra_spec_delete(&mut &self.db, id, key).await? {
            return Err(Fault::not_found(format!(
                "Flavor {id} has no extra specs with key {key}."
            )));
        }
        Ok(())
    }

    /// `GET /flavors/{id}/os-flavor-access`.
    pub async fn flavor_access(&self, ctx: &RequestContext, id: &str) -> Result<Vec<String>> {
        self.authorize(
            ctx,
            "os_compute_api:os-flavor-access",
            Self::default_target(ctx),
        )?;
        let f = self.flavor_get(ctx, id).await?;
        if f.is_public {
            return Err(Fault::not_found(
                "Access list not available for public flavors.",
            ));
        }
        Ok(db::flavor_projects(&mut &self.db, id).await?)
    }

    /// `addTenantAccess`: grants `project` private flavor `id`.
    pub async fn flavor_access_add(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        id: &str,
        project: &str,
    ) -> Result<Vec<String>> {
        self.authorize(
            ctx,
            "os_compute_api:os-flavor-access:add_tenant_access",
            json!({}),
        )?;
        self.verify_project_id(ctx, project).await?;
        let f = self.flavor_get(ctx, id).await?;
        if v.at_least(2, 7) && f.is_public {
            return Err(Fault::conflict("Can not add access to a public flavor."));
        }
        match db::flavor_project_add(&mut &self.db, id, project).await {
            Ok(()) => {}
            Err(Error::Conflict(_)) => {
                return Err(Fault::conflict(format!(
                    "Flavor access already exists for flavor {id} and project {project} combination."
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(db::flavor_projects(&mut &self.db, id).await?)
    }

    /// `removeTenantAccess`: revokes a grant (the project need not exist any more).
    pub async fn flavor_access_remove(
        &self,
        ctx: &RequestContext,
        id: &str,
        project: &str,
    ) -> Result<Vec<String>> {
        self.authorize(
            ctx,
            "os_compute_api:os-flavor-access:remove_tenant_access",
            json!({}),
        )?;
        match self.verify_project_id(ctx, project).await {
            Ok(()) => {}
            Err(e) if e.message() == format!("Project ID {project} is not a valid project.") => {}
            Err(e) => return Err(e),
        }
        self.flavor_get(ctx, id).await?;
        if !db::flavor_project_remove(&mut &self.db, id, project).await? {
            return Err(Fault::not_found(format!(
                "Flavor access not found for {id} / {project} combination."
            )));
        }
        Ok(db::flavor_projects(&mut &self.db, id).await?)
    }

    /// nova/api/openstack/identity.py `verify_project_id`: asks identity, with the caller's
    /// token, whether the project exists. Only a 404 refuses; anything else lets it pass,
    /// as upstream does when it cannot tell.
    pub async fn verify_project_id(&self, ctx: &RequestContext, project: &str) -> Result<()> {
        let Some(url) = &self.config.identity_url else {
            return Ok(());
        };
        let client = ferro_client::Client::new(url).with_token(&ctx.token);
        let path = format!("/v3/projects/{}", percent_encode(project));
        match client.get(&path).await {
            Ok(r) if r.status == 404 => Err(Fault::bad_request(format!(
                "Project ID {project} is not a valid project."
            ))),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::info!(error = %e, "unable to contact keystone to verify project_id");
                Ok(())
            }
        }
    }

    // ---- key pairs ----------------------------------------------------------------------

    /// `POST /os-keypairs` from a validated body: imports the given public key, or (before
    /// 2.92) generates an RSA pair and returns its private key once.
    pub async fn keypair_create(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        body: &Value,
    ) -> Result<(KeyPair, Option<String>)> {
        let params = &body["keypair"];
        let name = params["name"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let key_type = params
            .get("type")
            .and_then(Value::as_str)
            .and_then(KeyType::parse)
            .unwrap_or(KeyType::Ssh);
        let user_id = match params.get("user_id").and_then(Value::as_str) {
            Some(u) if v.at_least(2, 10) && !u.is_empty() => u.to_string(),
            _ => ctx.user_id.clone(),
        };
        self.authorize(
            ctx,
            "os_compute_api:os-keypairs:create",
            json!({"user_id": user_id}),
        )?;
        if user_id.chars().count() > 255 {
            return Err(Fault::bad_request(
                "Invalid input received: user_id has more than 255 characters.",
            ));
        }
        let invalid =
            |e: keys::Invalid| Fault::bad_request(format!("Keypair data is invalid: {}", e.0));
        let (public_key, fingerprint, private_key) = match params
            .get("public_key")
            .and_then(Value::as_str)
        {
            Some(pk) => {
                let fp = match key_type {
                    KeyType::Ssh => keys::ssh_fingerprint(pk),
                    KeyType::X509 => keys::x509_fingerprint(pk),
                }
                .map_err(invalid)?;
                (pk.to_string(), fp, None)
            }
            None => {
                if key_type == KeyType::X509 {
                    // TODO-compat: upstream makes a self-signed certificate and a PKCS#12
                    // private key with openssl here.
                    return Err(Fault::bad_request(
                        "Keypair data is invalid: generating x509 key pairs is not supported; import a certificate with public_key",
                    ));
                }
                let g = tokio::task::spawn_blocking(|| keys::generate_rsa(2048))
                    .await
                    .map_err(Fault::internal)?
                    .map_err(Fault::internal)?;
                (g.public_key, g.fingerprint, Some(g.private_key))
            }
        };
        let project = ctx.project_id.clone().unwrap_or_default();
        self.quotas.prepare(&self.db, &project, &user_id).await?;
        let mut tx = self.db.begin().await?;
        if self
            .quotas
            .check_deltas(&mut tx, &project, &user_id, &[(Resource::KeyPairs, 1)])
            .await?
            .is_err()
        {
            return Err(Fault::forbidden("Quota exceeded, too many key pairs."));
        }
        let exists = || Fault::conflict(format!("Key pair '{name}' already exists."));
        if db::keypair_get(&mut tx, &user_id, &name).await?.is_some() {
            return Err(exists());
        }
        let keypair = KeyPair {
            id: db::next_id(&mut tx, "key_pairs").await?,
            user_id,
            name: name.clone(),
            fingerprint,
            public_key,
            key_type,
            created_at: now_micros(),
        };
        match db::keypair_insert(&mut tx, &keypair).await {
            Ok(()) => {}
            Err(Error::Conflict(_)) => return Err(exists()),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok((keypair, private_key))
    }

    fn keypair_user(ctx: &RequestContext, v: ApiVersion, user_id: Option<&str>) -> String {
        match user_id {
            Some(u) if v.at_least(2, 10) && !u.is_empty() => u.to_string(),
            _ => ctx.user_id.clone(),
        }
    }

    /// `GET /os-keypairs`: a user's key pairs by name; paged from 2.35.
    pub async fn keypair_list(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        user_id: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Vec<KeyPair>> {
        let user = Self::keypair_user(ctx, v, user_id);
        self.authorize(
            ctx,
            "os_compute_api:os-keypairs:index",
            json!({"user_id": user}),
        )?;
        if !v.at_least(2, 35) {
            return Ok(db::keypair_list(&mut &self.db, &user, None, None).await?);
        }
        let limit = limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
        if let Some(m) = marker
            && db::keypair_get(&mut &self.db, &user, m).await?.is_none()
        {
            return Err(Fault::bad_request(format!(
                "Marker {m} could not be found."
            )));
        }
        Ok(db::keypair_list(&mut &self.db, &user, marker, Some(limit)).await?)
    }

    /// `GET /os-keypairs/{name}`.
    pub async fn keypair_get(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        name: &str,
        user_id: Option<&str>,
    ) -> Result<KeyPair> {
        let user = Self::keypair_user(ctx, v, user_id);
        self.authorize(
            ctx,
            "os_compute_api:os-keypairs:show",
            json!({"user_id": user}),
        )?;
        db::keypair_get(&mut &self.db, &user, name)
            .await?
            .ok_or_else(|| Fault::not_found(format!("Keypair {name} not found for user {user}")))
    }

    /// `DELETE /os-keypairs/{name}`.
    pub async fn keypair_delete(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        name: &str,
        user_id: Option<&str>,
    ) -> Result<()> {
        let user = Self::keypair_user(ctx, v, user_id);
        self.authorize(
            ctx,
            "os_compute_api:os-keypairs:delete",
            json!({"user_id": user}),
        )?;
        if !db::keypair_delete(&mut &self.db, &user, name).await? {
            return Err(Fault::not_found(format!(
                "Keypair {name} not found for user {user}"
            )));
        }
        Ok(())
    }

    // ---- quotas -------------------------------------------------------------------------

    /// `GET /os-quota-sets/{project}`: limits of the project, or of `user` in it.
    pub async fn quota_show(
        &self,
        ctx: &RequestContext,
        project: &str,
        user: Option<&str>,
    ) -> Result<Limits> {
        self.authorize(
            ctx,
            "os_compute_api:os-quota-sets:show",
            json!({"project_id": project}),
        )?;
        self.verify_project_id(ctx, project).await?;
        Ok(match user {
            Some(u) => self.quotas.user(&mut &self.db, project, u).await?,
            None => self.quotas.project(&mut &self.db, project).await?,
        })
    }

    /// `GET /os-quota-sets/{project}/detail`: limits with usage.
    pub async fn quota_detail(
        &self,
        ctx: &RequestContext,
        project: &str,
        user: Option<&str>,
    ) -> Result<BTreeMap<Resource, Detail>> {
        self.authorize(
            ctx,
            "os_compute_api:os-quota-sets:detail",
            json!({"project_id": project}),
        )?;
        self.verify_project_id(ctx, project).await?;
        Ok(self.quotas.detail(&mut &self.db, project, user).await?)
    }

    /// `GET /os-quota-sets/{project}/defaults`.
    pub async fn quota_defaults(&self, ctx: &RequestContext, project: &str) -> Result<Limits> {
        self.authorize(
            ctx,
            "os_compute_api:os-quota-sets:defaults",
            json!({"project_id": project}),
        )?;
        self.verify_project_id(ctx, project).await?;
        Ok(self.quotas.defaults(&mut &self.db).await?)
    }

    /// `PUT /os-quota-sets/{project}` from a validated body: checks every new limit against
    /// what is used and handed out (unless `force`), then writes them all.
    pub async fn quota_update(
        &self,
        ctx: &RequestContext,
        project: &str,
        user: Option<&str>,
        body: &Value,
    ) -> Result<Limits> {
        self.authorize(
            ctx,
            "os_compute_api:os-quota-sets:update",
            json!({"project_id": project}),
        )?;
        self.verify_project_id(ctx, project).await?;
        let Some(set) = body["quota_set"].as_object() else {
            return Err(Fault::bad_request(
                "Invalid input for field/attribute quota_set.",
            ));
        };
        let force = set
            .get("force")
            .and_then(parse_bool_strict)
            .unwrap_or(false);
        let mut tx = self.db.begin().await?;
        let settable = self.quotas.settable(&mut tx, project, user).await?;
        let mut valid = Vec::new();
        for (key, value) in set {
            if key == "force" {
                continue;
            }
            let Some(r) = Resource::parse(key) else {
                continue;
            };
            let limit = int_of(Some(value), 0)?;
            if !force && let Some(&(minimum, maximum)) = settable.get(&r) {
                let inf = |x: i64| if x == -1 { f64::INFINITY } else { x as f64 };
                if inf(limit) < inf(minimum) {
                    return Err(Fault::bad_request(format!(
                        "Quota limit {limit} for {key} must be greater than or equal to already used and reserved {minimum}."
                    )));
                }
                if inf(limit) > inf(maximum) {
                    return Err(Fault::bad_request(format!(
                        "Quota limit {limit} for {key} must be less than or equal to {maximum}."
                    )));
                }
            }
            valid.push((r, limit));
        }
        for (r, limit) in valid {
            db::quota_set(&mut tx, project, user.unwrap_or(""), r.name(), limit).await?;
        }
        tx.commit().await?;
        Ok(match user {
            Some(u) => self.quotas.user(&mut &self.db, project, u).await?,
            None => self.quotas.project(&mut &self.db, project).await?,
        })
    }

    /// `DELETE /os-quota-sets/{project}`: back to the defaults.
    pub async fn quota_delete(
        &self,
        ctx: &RequestContext,
        project: &str,
        user: Option<&str>,
    ) -> Result<()> {
        self.authorize(
            ctx,
            "os_compute_api:os-quota-sets:delete",
            json!({"project_id": project}),
        )?;
        Ok(db::quota_delete(&mut &self.db, project, user).await?)
    }

    /// `GET /os-quota-class-sets/{class}`.
    pub async fn quota_class_show(&self, ctx: &RequestContext, class: &str) -> Result<Limits> {
        self.authorize(ctx, "os_compute_api:os-quota-class-sets:show", json!({}))?;
        Ok(self.quotas.class(&mut &self.db, class).await?)
    }

    /// `PUT /os-quota-class-sets/{class}` from a validated body.
    pub async fn quota_class_update(
        &self,
        ctx: &RequestContext,
        class: &str,
        body: &Value,
    ) -> Result<Limits> {
        self.authorize(ctx, "os_compute_api:os-quota-class-sets:update", json!({}))?;
        let len = class.chars().count();
        if len > 255 {
            return Err(Fault::bad_request(format!(
                "quota_class_name has {len} characters, more than 255."
            )));
        }
        let mut tx = self.db.begin().await?;
        if let Some(set) = body["quota_class_set"].as_object() {
            for (key, value) in set {
                if let Some(r) = Resource::parse(key) {
                    db::quota_class_set(&mut tx, class, r.name(), int_of(Some(value), 0)?).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(self.quotas.class(&mut &self.db, class).await?)
    }

    /// `GET /limits`: the limits and usage of the caller's project, or (admins) of
    /// `tenant_id`.
    pub async fn limits(
        &self,
        ctx: &RequestContext,
        tenant_id: Option<&str>,
    ) -> Result<BTreeMap<Resource, Detail>> {
        self.authorize(ctx, "os_compute_api:limits", json!({}))?;
        let project = match tenant_id {
            Some(t) => {
                self.authorize(
                    ctx,
                    "os_compute_api:limits:other_project",
                    Self::default_target(ctx),
                )?;
                t.to_string()
            }
            None => ctx.project_id.clone().unwrap_or_default(),
        };
        Ok(self.quotas.detail(&mut &self.db, &project, None).await?)
    }

    // ---- availability zones and services ------------------------------------------------

    /// `GET /os-availability-zone[/detail]`: zones of the registered services, available
    /// when an enabled service is in them. The plain list hides the `internal` zone of
    /// non-compute services; the detail lists the hosts of each available zone.
    pub async fn availability_zones(
        &self,
        ctx: &RequestContext,
        detail: bool,
    ) -> Result<Vec<Zone>> {
        let rule = if detail {
            "os_compute_api:os-availability-zone:detail"
        } else {
            "os_compute_api:os-availability-zone:list"
        };
        self.authorize(ctx, rule, json!({}))?;
        let services = db::service_list(&mut &self.db).await?;
        let now = now_micros();
        let mut available: BTreeMap<String, Vec<&Service>> = BTreeMap::new();
        for s in services.iter().filter(|s| !s.disabled) {
            available.entry(s.zone().to_string()).or_default().push(s);
        }
        let mut unavailable: Vec<String> = services
            .iter()
            .filter(|s| s.disabled && !available.contains_key(s.zone()))
            .map(|s| s.zone().to_string())
            .collect();
        unavailable.sort();
        unavailable.dedup();
        let mut zones = Vec::new();
        for (name, members) in &available {
            if !detail && name == INTERNAL_ZONE {
                continue;
            }
            let hosts = detail.then(|| {
                let mut hosts = ZoneHosts::new();
                for s in members {
                    if matches!(s.binary.as_str(), "nova-osapi_compute" | "nova-metadata") {
                        continue;
                    }
                    hosts.entry(s.host.clone()).or_default().insert(
                        s.binary.clone(),
                        HostService {
                            available: s.is_up(now),
                            active: !s.disabled,
                            updated_at: s.updated_at,
                        },
                    );
                }
                hosts
            });
            zones.push(Zone {
                name: name.clone(),
                available: true,
                hosts,
            });
        }
        for name in unavailable {
            if !detail && name == INTERNAL_ZONE {
                continue;
            }
            zones.push(Zone {
                name,
                available: false,
                hosts: None,
            });
        }
        Ok(zones)
    }

    /// Whether an enabled service is in zone `name` (upstream's available zones, which a
    /// create's `availability_zone` must name).
    pub(crate) async fn zone_available(&self, name: &str) -> Result<bool> {
        Ok(db::service_list(&mut &self.db)
            .await?
            .iter()
            .any(|s| !s.disabled && s.zone() == name))
    }

    /// `GET /os-services`: the registered services (API services are not registered, as
    /// upstream filters them out), optionally by host and binary.
    pub async fn services(
        &self,
        ctx: &RequestContext,
        host: Option<&str>,
        binary: Option<&str>,
    ) -> Result<Vec<Service>> {
        self.authorize(ctx, "os_compute_api:os-services:list", json!({}))?;
        let mut list = db::service_list(&mut &self.db).await?;
        list.retain(|s| !matches!(s.binary.as_str(), "nova-osapi_compute" | "nova-metadata"));
        if let Some(h) = host.filter(|h| !h.is_empty()) {
            list.retain(|s| s.host == h);
        }
        if let Some(b) = binary.filter(|b| !b.is_empty()) {
            list.retain(|s| s.binary == b);
        }
        Ok(list)
    }

    /// `PUT /os-services/...`: enables or disables a compute service for scheduling or
    /// forces it down (a forced-down host counts as down at once: deletes of its servers
    /// are local, the scheduler skips it). `key` names the service — `(host, binary)` before
    /// 2.53, its uuid from 2.53 —; only `nova-compute` services may change, as upstream.
    pub async fn service_update(
        &self,
        ctx: &RequestContext,
        key: ServiceKey<'_>,
        change: &ServiceChange,
    ) -> Result<Service> {
        self.authorize(ctx, "os_compute_api:os-services:update", json!({}))?;
        let compute_only = |binary: &str| {
            Fault::bad_request(format!(
                "Updating a {binary} service is not supported. Only nova-compute services \
                 can be updated."
            ))
        };
        let mut svc = match key {
            ServiceKey::HostBinary(host, binary) => {
                if binary != crate::conductor::COMPUTE_BINARY {
                    return Err(compute_only(binary));
                }
                db::service_get(&mut &self.db, host, binary)
                    .await?
                    .ok_or_else(|| {
                        Fault::not_found(format!("Could not find binary {binary} on host {host}."))
                    })?
            }
            ServiceKey::Uuid(uuid) => {
                let svc = db::service_by_uuid(&mut &self.db, uuid)
                    .await?
                    .ok_or_else(|| {
                        Fault::not_found(format!("Service {uuid} could not be found."))
                    })?;
                if svc.binary != crate::conductor::COMPUTE_BINARY {
                    return Err(compute_only(&svc.binary));
                }
                svc
            }
        };
        if change.disabled.is_none() && change.forced_down.is_none() {
            return Err(Fault::bad_request(
                "No updates were requested. Fields 'status' or 'forced_down' should be \
                 specified.",
            ));
        }
        if let Some((disabled, reason)) = &change.disabled {
            svc.disabled = *disabled;
            svc.disabled_reason = reason.clone();
        }
        if let Some(down) = change.forced_down {
            svc.forced_down = down;
        }
        let now = now_micros();
        db::service_set_state(&mut &self.db, &svc, now).await?;
        svc.aggregate_zone = db::host_zone(&mut &self.db, &svc.host).await?;
        svc.updated_at = Some(now);
        self.hosts.service_changed(&svc);
        Ok(svc)
    }

    /// `DELETE /os-services/{id}` (an integer id before 2.53, the uuid from 2.53): a
    /// compute service goes only when its host holds no server and no migration is under
    /// way to or from it, with its compute nodes and their resource providers; the host's
    /// agent, if it still runs, registers again at its next heartbeat (as upstream's).
    pub async fn service_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        by_uuid: bool,
    ) -> Result<()> {
        self.authorize(ctx, "os_compute_api:os-services:delete", json!({}))?;
        let svc = db::service_by_id(&mut &self.db, id, by_uuid)
            .await?
            .ok_or_else(|| Fault::not_found(format!("Service {id} not found.")))?;
        if svc.binary == crate::conductor::COMPUTE_BINARY {
            let (instances, migrations) = db::host_usage(&mut &self.db, &svc.host).await?;
            if instances > 0 {
                return Err(Fault::conflict(
                    "Unable to delete compute service that is hosting instances. Migrate or \
                     delete the instances first.",
                ));
            }
            if migrations > 0 {
                return Err(Fault::conflict(
                    "Unable to delete compute service that has in-progress migrations. \
                     Complete the migrations or delete the instances first.",
                ));
            }
            // Upstream takes the host out of its aggregates (and their placement mirror).
            for a in db::aggregate_list(&mut &self.db, None).await? {
                if a.hosts.iter().any(|h| h == &svc.host) {
                    self.aggregate_remove_host(ctx, &a.id.to_string(), &svc.host)
                        .await?;
                }
            }
            let nodes = db::node_list(&mut &self.db).await?;
            let placement = self.placement().await?;
            for n in nodes.iter().filter(|n| n.host == svc.host) {
                match placement
                    .delete(&format!("/resource_providers/{}", n.uuid))
                    .await
                {
                    Ok(r) if matches!(r.status, 204 | 404) => {}
                    // Upstream logs and goes on: the provider is left to the operator.
                    Ok(r) => tracing::error!(provider = %n.uuid, status = r.status, body = %r.body,
                        "the deleted compute service's provider stays"),
                    Err(e) => tracing::error!(provider = %n.uuid, error = %e,
                        "the deleted compute service's provider stays"),
                }
            }
        }
        db::service_delete(&mut &self.db, &svc).await?;
        self.forget_host(&svc.host);
        Ok(())
    }

    /// Registers `binary` on `host` (first report) or records its heartbeat: what a compute
    /// agent, conductor or scheduler calls every `report_interval` (the conductor will
    /// relay agents' reports over the bus; agents never touch the database).
    pub async fn service_report(&self, host: &str, binary: &str, topic: &str) -> Result<Service> {
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        match db::service_get(&mut tx, host, binary).await? {
            Some(s) => db::service_heartbeat(&mut tx, s.id, now).await?,
            None => {
                let s = Service {
                    id: db::next_id(&mut tx, "services").await?,
                    uuid: uuid::Uuid::new_v4().to_string(),
                    host: host.to_string(),
                    binary: binary.to_string(),
                    topic: topic.to_string(),
                    report_count: 1,
                    disabled: false,
                    disabled_reason: None,
                    forced_down: false,
                    last_seen_up: Some(now),
                    created_at: now,
                    updated_at: Some(now),
                    aggregate_zone: None,
                };
                db::service_insert(&mut tx, &s).await?;
            }
        }
        let s = db::service_get(&mut tx, host, binary)
            .await?
            .ok_or_else(|| Fault::internal(format!("service {binary} on {host} vanished")))?;
        tx.commit().await?;
        Ok(s)
    }
}

/// Percent-encodes a path segment.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_booleans() {
        assert_eq!(parse_bool_strict(&json!("YES")), Some(true));
        assert_eq!(parse_bool_strict(&json!("off")), Some(false));
        assert_eq!(parse_bool_strict(&json!(true)), Some(true));
        assert_eq!(parse_bool_strict(&json!("maybe")), None);
        assert_eq!(parse_bool_strict(&json!(1)), None);
    }

    fn f(id: &str, name: &str, ram: i64, at: i64) -> Flavor {
        Flavor {
            id: id.into(),
            name: name.into(),
            memory_mb: ram,
            vcpus: 1,
            root_gb: 0,
            ephemeral_gb: 0,
            swap: 0,
            rxtx_factor: 1.0,
            disabled: false,
            is_public: true,
            description: None,
            extra_specs: BTreeMap::new(),
            created_at: at,
            updated_at: None,
        }
    }

    #[test]
    fn flavor_order_breaks_ties_by_creation() {
        let a = f("b", "x", 64, 1);
        let b = f("a", "y", 64, 2);
        assert_eq!(flavor_order(&a, &b, "memory_mb", false), Ordering::Less);
        assert_eq!(flavor_order(&a, &b, "memory_mb", true), Ordering::Greater);
        assert_eq!(flavor_order(&a, &b, "flavorid", false), Ordering::Greater);
    }
}
