//! Compute's queries over its `nv_` tables. No SQL elsewhere in this crate.

use std::collections::{BTreeMap, BTreeSet};

use ferro_common::{Error, Result};
use ferro_db::{Db, Executor, Sql};
use sqlx::FromRow;

use crate::model::{
    Flavor, Instance, InstanceFault, InstanceFlavor, KeyPair, KeyType, PowerState, Service, VmState,
};

// ---- sequences ------------------------------------------------------------------------------

#[derive(FromRow)]
struct NextValue {
    next_value: i64,
}

/// The next integer of sequence `name` (seeded by the migration). The UPDATE takes the row
/// lock first, so concurrent transactions hand out distinct values.
pub async fn next_id(ex: &mut impl Executor, name: &str) -> Result<i64> {
    let n = ex
        .execute(
            &Sql::new("UPDATE nv_sequences SET next_value = next_value + 1 WHERE seq_name = ?")
                .arg(name),
        )
        .await?;
    if n != 1 {
        return Err(Error::internal(format!("sequence {name} is missing")));
    }
    let row: Option<NextValue> = ex
        .fetch_optional(
            &Sql::new("SELECT next_value FROM nv_sequences WHERE seq_name = ?").arg(name),
        )
        .await?;
    row.map(|r| r.next_value - 1)
        .ok_or_else(|| Error::internal(format!("sequence {name} is missing")))
}

// ---- flavors --------------------------------------------------------------------------------

const FLAVOR_COLUMNS: &str = "flavorid, name, memory_mb, vcpus, root_gb, ephemeral_gb, swap_mb, \
    rxtx_factor, disabled, is_public, description, created_at, updated_at";

#[derive(FromRow)]
struct FlavorRow {
    flavorid: String,
    name: String,
    memory_mb: i64,
    vcpus: i64,
    root_gb: i64,
    ephemeral_gb: i64,
    swap_mb: i64,
    rxtx_factor: String,
    disabled: bool,
    is_public: bool,
    description: Option<String>,
    created_at: i64,
    updated_at: Option<i64>,
}

impl FlavorRow {
    fn into_flavor(self) -> Flavor {
        Flavor {
            id: self.flavorid,
            name: self.name,
            memory_mb: self.memory_mb,
            vcpus: self.vcpus,
            root_gb: self.root_gb,
            ephemeral_gb: self.ephemeral_gb,
            swap: self.swap_mb,
            rxtx_factor: self.rxtx_factor.parse().unwrap_or(1.0),
            disabled: self.disabled,
            is_public: self.is_public,
            description: self.description,
            extra_specs: BTreeMap::new(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(FromRow)]
struct SpecRow {
    flavorid: String,
    spec_key: String,
    spec_value: String,
}

/// Inserts a flavor and its extra specs.
pub async fn flavor_insert(ex: &mut impl Executor, f: &Flavor) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO nv_flavors ({FLAVOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&f.id)
        .arg(&f.name)
        .arg(f.memory_mb)
        .arg(f.vcpus)
        .arg(f.root_gb)
        .arg(f.ephemeral_gb)
        .arg(f.swap)
        .arg(format!("{:?}", f.rxtx_factor))
        .arg(f.disabled)
        .arg(f.is_public)
        .arg(f.description.as_ref())
        .arg(f.created_at)
        .arg(f.updated_at),
    )
    .await?;
    extra_specs_set(ex, &f.id, &f.extra_specs).await
}

/// Whether a flavor named `name` exists.
pub async fn flavor_name_taken(ex: &mut impl Executor, name: &str) -> Result<bool> {
    #[derive(FromRow)]
    struct One {
        flavorid: String,
    }
    let row: Option<One> = ex
        .fetch_optional(&Sql::new("SELECT flavorid FROM nv_flavors WHERE name = ?").arg(name))
        .await?;
    Ok(row.map(|r| r.flavorid).is_some())
}

/// Flavor `id` with its extra specs, whoever may see it.
pub async fn flavor_get(ex: &mut impl Executor, id: &str) -> Result<Option<Flavor>> {
    let row: Option<FlavorRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {FLAVOR_COLUMNS} FROM nv_flavors WHERE flavorid = ?"
            ))
            .arg(id),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut f = row.into_flavor();
    f.extra_specs = specs_of(ex, std::slice::from_ref(&f.id))
        .await?
        .remove(&f.id)
        .unwrap_or_default();
    Ok(Some(f))
}

async fn specs_of(
    ex: &mut impl Executor,
    ids: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new(
        "SELECT flavorid, spec_key, spec_value FROM nv_flavor_extra_specs WHERE flavorid IN ",
    );
    sql.bind_list(ids.iter());
    let rows: Vec<SpecRow> = ex.fetch_all(&sql).await?;
    for r in rows {
        out.entry(r.flavorid)
            .or_default()
            .insert(r.spec_key, r.spec_value);
    }
    Ok(out)
}

/// Which flavors a list selects (before sorting and paging, which the manager does).
#[derive(Clone, Debug, Default)]
pub struct FlavorFilter {
    /// Whether the caller sees every flavor (`context.is_admin`).
    pub is_admin: bool,
    /// The caller's project: private flavors it was granted count as visible.
    pub project: Option<String>,
    /// `Some(true)`: public flavors and those granted to `project`; `Some(false)`: private
    /// ones only; `None`: no filter.
    pub is_public: Option<bool>,
    pub min_memory_mb: Option<i64>,
    pub min_root_gb: Option<i64>,
    /// Only enabled flavors (always so for non-admins).
    pub enabled_only: bool,
}

fn push_granted(sql: &mut Sql, project: &str) {
    sql.push("flavorid IN (SELECT flavorid FROM nv_flavor_projects WHERE project_id = ")
        .bind(project)
        .push(")");
}

/// Every flavor `f` selects, with extra specs, in no particular order.
pub async fn flavor_list(ex: &mut impl Executor, f: &FlavorFilter) -> Result<Vec<Flavor>> {
    let mut sql = Sql::new(&format!(
        "SELECT {FLAVOR_COLUMNS} FROM nv_flavors WHERE 1 = 1"
    ));
    if !f.is_admin {
        // flavor.py `_flavor_get_query_from_db`: public, or granted to the caller's project.
        sql.push(" AND (is_public = ").bind(true).push(" OR ");
        push_granted(&mut sql, f.project.as_deref().unwrap_or(""));
        sql.push(")");
    }
    if let Some(n) = f.min_memory_mb {
        sql.push(" AND memory_mb >= ").bind(n);
    }
    if let Some(n) = f.min_root_gb {
        sql.push(" AND root_gb >= ").bind(n);
    }
    if f.enabled_only {
        sql.push(" AND disabled = ").bind(false);
    }
    match (f.is_public, f.project.as_deref()) {
        (Some(true), Some(project)) => {
            sql.push(" AND (is_public = ").bind(true).push(" OR ");
            push_granted(&mut sql, project);
            sql.push(")");
        }
        (Some(p), _) => {
            sql.push(" AND is_public = ").bind(p);
        }
        (None, _) => {}
    }
    let rows: Vec<FlavorRow> = ex.fetch_all(&sql).await?;
    let mut flavors: Vec<Flavor> = rows.into_iter().map(FlavorRow::into_flavor).collect();
    let ids: Vec<String> = flavors.iter().map(|f| f.id.clone()).collect();
    let mut specs = specs_of(ex, &ids).await?;
    for f in &mut flavors {
        f.extra_specs = specs.remove(&f.id).unwrap_or_default();
    }
    Ok(flavors)
}

/// Sets a flavor's description.
pub async fn flavor_set_description(
    ex: &mut impl Executor,
    id: &str,
    description: Option<&str>,
    now: i64,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new("UPDATE nv_flavors SET description = ?, updated_at = ? WHERE flavorid = ?")
                .arg(description)
                .arg(now)
                .arg(id),
        )
        .await?;
    Ok(n == 1)
}

/// Deletes a flavor with its extra specs and access list; false if it did not exist.
pub async fn flavor_delete(ex: &mut impl Executor, id: &str) -> Result<bool> {
    ex.execute(&Sql::new("DELETE FROM nv_flavor_extra_specs WHERE flavorid = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM nv_flavor_projects WHERE flavorid = ?").arg(id))
        .await?;
    let n = ex
        .execute(&Sql::new("DELETE FROM nv_flavors WHERE flavorid = ?").arg(id))
        .await?;
    Ok(n == 1)
}

/// Creates or overwrites extra specs of flavor `id` (delete-then-insert: portable, and the
/// caller's transaction makes it atomic).
pub async fn extra_specs_set(
    ex: &mut impl Executor,
    id: &str,
    specs: &BTreeMap<String, String>,
) -> Result<()> {
    for (k, v) in specs {
        ex.execute(
            &Sql::new("DELETE FROM nv_flavor_extra_specs WHERE flavorid = ? AND spec_key = ?")
                .arg(id)
                .arg(k),
        )
        .await?;
        ex.execute(
            &Sql::new(
                "INSERT INTO nv_flavor_extra_specs (flavorid, spec_key, spec_value) VALUES (?, ?, ?)",
            )
            .arg(id)
            .arg(k)
            .arg(v),
        )
        .await?;
    }
    Ok(())
}

/// Removes extra spec `key` of flavor `id`; false if it was not set.
pub async fn extra_spec_delete(ex: &mut impl Executor, id: &str, key: &str) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new("DELETE FROM nv_flavor_extra_specs WHERE flavorid = ? AND spec_key = ?")
                .arg(id)
                .arg(key),
        )
        .await?;
    Ok(n == 1)
}

#[derive(FromRow)]
struct ProjectRow {
    project_id: String,
}

/// The projects granted private flavor `id`, in order.
pub async fn flavor_projects(ex: &mut impl Executor, id: &str) -> Result<Vec<String>> {
    let rows: Vec<ProjectRow> = ex
        .fetch_all(
            &Sql::new(
                "SELECT project_id FROM nv_flavor_projects WHERE flavorid = ? ORDER BY project_id",
            )
            .arg(id),
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.project_id).collect())
}

/// Whether `project` was granted flavor `id`.
pub async fn flavor_granted(ex: &mut impl Executor, id: &str, project: &str) -> Result<bool> {
    let rows: Vec<ProjectRow> = ex
        .fetch_all(
            &Sql::new(
                "SELECT project_id FROM nv_flavor_projects WHERE flavorid = ? AND project_id = ?",
            )
            .arg(id)
            .arg(project),
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Grants `project` flavor `id`; an existing grant is a conflict (`Error::Conflict`).
pub async fn flavor_project_add(ex: &mut impl Executor, id: &str, project: &str) -> Result<()> {
    ex.execute(
        &Sql::new("INSERT INTO nv_flavor_projects (flavorid, project_id) VALUES (?, ?)")
            .arg(id)
            .arg(project),
    )
    .await?;
    Ok(())
}

/// Revokes a grant; false if there was none.
pub async fn flavor_project_remove(
    ex: &mut impl Executor,
    id: &str,
    project: &str,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new("DELETE FROM nv_flavor_projects WHERE flavorid = ? AND project_id = ?")
                .arg(id)
                .arg(project),
        )
        .await?;
    Ok(n == 1)
}

// ---- key pairs ------------------------------------------------------------------------------

const KEYPAIR_COLUMNS: &str = "id, user_id, name, fingerprint, public_key, key_type, created_at";

#[derive(FromRow)]
struct KeyPairRow {
    id: i64,
    user_id: String,
    name: String,
    fingerprint: String,
    public_key: String,
    key_type: String,
    created_at: i64,
}

impl KeyPairRow {
    fn into_keypair(self) -> KeyPair {
        KeyPair {
            id: self.id,
            user_id: self.user_id,
            name: self.name,
            fingerprint: self.fingerprint,
            public_key: self.public_key,
            key_type: KeyType::parse(&self.key_type).unwrap_or(KeyType::Ssh),
            created_at: self.created_at,
        }
    }
}

/// Inserts a key pair (its `id` already drawn from the `key_pairs` sequence); an existing
/// name of the same user is `Error::Conflict`.
pub async fn keypair_insert(ex: &mut impl Executor, k: &KeyPair) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO nv_key_pairs ({KEYPAIR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(k.id)
        .arg(&k.user_id)
        .arg(&k.name)
        .arg(&k.fingerprint)
        .arg(&k.public_key)
        .arg(k.key_type.as_str())
        .arg(k.created_at),
    )
    .await?;
    Ok(())
}

/// Key pair `name` of `user`.
pub async fn keypair_get(
    ex: &mut impl Executor,
    user: &str,
    name: &str,
) -> Result<Option<KeyPair>> {
    let row: Option<KeyPairRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {KEYPAIR_COLUMNS} FROM nv_key_pairs WHERE user_id = ? AND name = ?"
            ))
            .arg(user)
            .arg(name),
        )
        .await?;
    Ok(row.map(KeyPairRow::into_keypair))
}

/// A user's key pairs by name, after `after` (a name) if given, at most `limit`.
pub async fn keypair_list(
    ex: &mut impl Executor,
    user: &str,
    after: Option<&str>,
    limit: Option<i64>,
) -> Result<Vec<KeyPair>> {
    let mut sql = Sql::new(&format!(
        "SELECT {KEYPAIR_COLUMNS} FROM nv_key_pairs WHERE user_id = "
    ));
    sql.bind(user);
    if let Some(a) = after {
        sql.push(" AND name > ").bind(a);
    }
    sql.push(" ORDER BY name");
    if let Some(n) = limit {
        sql.push(" LIMIT ").bind(n);
    }
    let rows: Vec<KeyPairRow> = ex.fetch_all(&sql).await?;
    Ok(rows.into_iter().map(KeyPairRow::into_keypair).collect())
}

#[derive(FromRow)]
struct Count {
    n: i64,
}

/// How many key pairs `user` has.
pub async fn keypair_count(ex: &mut impl Executor, user: &str) -> Result<i64> {
    let row: Option<Count> = ex
        .fetch_optional(
            &Sql::new("SELECT COUNT(*) AS n FROM nv_key_pairs WHERE user_id = ?").arg(user),
        )
        .await?;
    Ok(row.map_or(0, |r| r.n))
}

/// Deletes key pair `name` of `user`; false if there was none.
pub async fn keypair_delete(ex: &mut impl Executor, user: &str, name: &str) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new("DELETE FROM nv_key_pairs WHERE user_id = ? AND name = ?")
                .arg(user)
                .arg(name),
        )
        .await?;
    Ok(n == 1)
}

// ---- quotas ---------------------------------------------------------------------------------

#[derive(FromRow)]
struct LimitRow {
    resource_name: String,
    hard_limit: i64,
}

#[derive(FromRow)]
struct UserLimitRow {
    user_id: String,
    resource_name: String,
    hard_limit: i64,
}

/// Limits set for `project` (`user` empty) or for `user` in `project`.
pub async fn quota_limits(
    ex: &mut impl Executor,
    project: &str,
    user: &str,
) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<LimitRow> = ex
        .fetch_all(
            &Sql::new(
                "SELECT resource_name, hard_limit FROM nv_quotas WHERE project_id = ? AND user_id = ?",
            )
            .arg(project)
            .arg(user),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.resource_name, r.hard_limit))
        .collect())
}

/// Every per-user limit set in `project`: `(user, resource, limit)`.
pub async fn quota_user_limits_in_project(
    ex: &mut impl Executor,
    project: &str,
) -> Result<Vec<(String, String, i64)>> {
    let rows: Vec<UserLimitRow> = ex
        .fetch_all(
            &Sql::new(
                "SELECT user_id, resource_name, hard_limit FROM nv_quotas WHERE project_id = ? AND user_id <> ''",
            )
            .arg(project),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.user_id, r.resource_name, r.hard_limit))
        .collect())
}

/// Sets one limit of `project` (`user` empty) or of `user` in `project`.
pub async fn quota_set(
    ex: &mut impl Executor,
    project: &str,
    user: &str,
    resource: &str,
    limit: i64,
) -> Result<()> {
    ex.execute(
        &Sql::new(
            "DELETE FROM nv_quotas WHERE project_id = ? AND user_id = ? AND resource_name = ?",
        )
        .arg(project)
        .arg(user)
        .arg(resource),
    )
    .await?;
    ex.execute(
        &Sql::new(
            "INSERT INTO nv_quotas (project_id, user_id, resource_name, hard_limit) VALUES (?, ?, ?, ?)",
        )
        .arg(project)
        .arg(user)
        .arg(resource)
        .arg(limit),
    )
    .await?;
    Ok(())
}

/// Removes the limits of `project` and all its users, or of one `user` in it.
pub async fn quota_delete(ex: &mut impl Executor, project: &str, user: Option<&str>) -> Result<()> {
    let sql = match user {
        Some(u) => Sql::new("DELETE FROM nv_quotas WHERE project_id = ? AND user_id = ?")
            .arg(project)
            .arg(u),
        None => Sql::new("DELETE FROM nv_quotas WHERE project_id = ?").arg(project),
    };
    ex.execute(&sql).await?;
    Ok(())
}

/// Limits set for quota class `class`.
pub async fn quota_class_limits(
    ex: &mut impl Executor,
    class: &str,
) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<LimitRow> = ex
        .fetch_all(
            &Sql::new(
                "SELECT resource_name, hard_limit FROM nv_quota_classes WHERE class_name = ?",
            )
            .arg(class),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.resource_name, r.hard_limit))
        .collect())
}

/// Sets one limit of quota class `class`.
pub async fn quota_class_set(
    ex: &mut impl Executor,
    class: &str,
    resource: &str,
    limit: i64,
) -> Result<()> {
    ex.execute(
        &Sql::new("DELETE FROM nv_quota_classes WHERE class_name = ? AND resource_name = ?")
            .arg(class)
            .arg(resource),
    )
    .await?;
    ex.execute(
        &Sql::new(
            "INSERT INTO nv_quota_classes (class_name, resource_name, hard_limit) VALUES (?, ?, ?)",
        )
        .arg(class)
        .arg(resource)
        .arg(limit),
    )
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct LockRow {
    scope_key: String,
}

/// Makes sure quota scope `key` has its lock row (outside any transaction: a duplicate from
/// a concurrent creator is fine).
pub async fn quota_lock_ensure(db: &ferro_db::Db, key: &str) -> Result<()> {
    let row: Option<LockRow> = db
        .fetch_optional(
            &Sql::new("SELECT scope_key FROM nv_quota_locks WHERE scope_key = ?").arg(key),
        )
        .await?;
    if row.map(|r| r.scope_key).is_some() {
        return Ok(());
    }
    match db
        .execute(
            &Sql::new("INSERT INTO nv_quota_locks (scope_key, generation) VALUES (?, 0)").arg(key),
        )
        .await
    {
        Ok(_) | Err(ferro_db::DbError::Duplicate(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Takes quota scope `key`'s row lock for the rest of the transaction.
pub async fn quota_lock(ex: &mut impl Executor, key: &str) -> Result<()> {
    let n = ex
        .execute(
            &Sql::new("UPDATE nv_quota_locks SET generation = generation + 1 WHERE scope_key = ?")
                .arg(key),
        )
        .await?;
    if n != 1 {
        return Err(Error::internal(format!("quota lock row {key} is missing")));
    }
    Ok(())
}

// ---- services -------------------------------------------------------------------------------

const SERVICE_COLUMNS: &str = "id, uuid, host, service_binary, topic, report_count, disabled, \
    disabled_reason, forced_down, last_seen_up, created_at, updated_at";

#[derive(FromRow)]
struct ServiceRow {
    id: i64,
    uuid: String,
    host: String,
    service_binary: String,
    topic: String,
    report_count: i64,
    disabled: bool,
    disabled_reason: Option<String>,
    forced_down: bool,
    last_seen_up: Option<i64>,
    created_at: i64,
    updated_at: Option<i64>,
}

impl From<ServiceRow> for Service {
    fn from(r: ServiceRow) -> Service {
        Service {
            id: r.id,
            uuid: r.uuid,
            host: r.host,
            binary: r.service_binary,
            topic: r.topic,
            report_count: r.report_count,
            disabled: r.disabled,
            disabled_reason: r.disabled_reason,
            forced_down: r.forced_down,
            last_seen_up: r.last_seen_up,
            created_at: r.created_at,
            updated_at: r.updated_at,
            aggregate_zone: None,
        }
    }
}

/// Every registered service, by id, with the zone its host's aggregates give it.
pub async fn service_list(ex: &mut impl Executor) -> Result<Vec<Service>> {
    let rows: Vec<ServiceRow> = ex
        .fetch_all(&Sql::new(&format!(
            "SELECT {SERVICE_COLUMNS} FROM nv_services ORDER BY id"
        )))
        .await?;
    let meta = host_aggregate_metadata(ex).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut s = Service::from(r);
            s.aggregate_zone = zone_of(meta.get(&s.host));
            s
        })
        .collect())
}

/// Service `binary` on `host`, if registered.
pub async fn service_get(
    ex: &mut impl Executor,
    host: &str,
    binary: &str,
) -> Result<Option<Service>> {
    let row: Option<ServiceRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {SERVICE_COLUMNS} FROM nv_services WHERE host = ? AND service_binary = ?"
            ))
            .arg(host)
            .arg(binary),
        )
        .await?;
    Ok(row.map(Service::from))
}

/// The service with `uuid`, if registered.
pub async fn service_by_uuid(ex: &mut impl Executor, uuid: &str) -> Result<Option<Service>> {
    let row: Option<ServiceRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {SERVICE_COLUMNS} FROM nv_services WHERE uuid = ?"
            ))
            .arg(uuid),
        )
        .await?;
    Ok(row.map(Service::from))
}

/// Writes a service's administrative state (`disabled`, its reason, `forced_down`).
pub async fn service_set_state(ex: &mut impl Executor, s: &Service, now: i64) -> Result<()> {
    ex.execute(
        &Sql::new(
            "UPDATE nv_services SET disabled = ?, disabled_reason = ?, forced_down = ?, \
             updated_at = ? WHERE id = ?",
        )
        .arg(s.disabled)
        .arg(s.disabled_reason.clone())
        .arg(s.forced_down)
        .arg(now)
        .arg(s.id),
    )
    .await?;
    Ok(())
}

/// The service with `id` (an integer id, or a uuid when `by_uuid`).
pub async fn service_by_id(
    ex: &mut impl Executor,
    id: &str,
    by_uuid: bool,
) -> Result<Option<Service>> {
    if by_uuid {
        return service_by_uuid(ex, id).await;
    }
    let Ok(n) = id.parse::<i64>() else {
        return Ok(None);
    };
    let row: Option<ServiceRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {SERVICE_COLUMNS} FROM nv_services WHERE id = ?"
            ))
            .arg(n),
        )
        .await?;
    Ok(row.map(Service::from))
}

/// Removes a service and, for a compute service, its host's compute nodes.
pub async fn service_delete(ex: &mut impl Executor, s: &Service) -> Result<()> {
    if s.binary == "nova-compute" {
        ex.execute(&Sql::new("DELETE FROM nv_compute_nodes WHERE host = ?").arg(&s.host))
            .await?;
    }
    ex.execute(&Sql::new("DELETE FROM nv_services WHERE id = ?").arg(s.id))
        .await?;
    Ok(())
}

/// How many live instances `host` holds, and how many migrations to or from it are under
/// way (not confirmed, reverted, failed or done).
pub async fn host_usage(ex: &mut impl Executor, host: &str) -> Result<(i64, i64)> {
    let instances: Option<Count> = ex
        .fetch_optional(
            &Sql::new("SELECT COUNT(*) AS n FROM nv_instances WHERE host = ? AND deleted = ?")
                .arg(host)
                .arg(false),
        )
        .await?;
    let migrations: Option<Count> = ex
        .fetch_optional(
            &Sql::new(
                "SELECT COUNT(*) AS n FROM nv_migrations WHERE (source_host = ? OR dest_host = ?) \
                 AND status NOT IN ('confirmed', 'reverted', 'error', 'failed', 'completed', \
                 'cancelled', 'done')",
            )
            .arg(host)
            .arg(host),
        )
        .await?;
    Ok((instances.map_or(0, |c| c.n), migrations.map_or(0, |c| c.n)))
}

/// Registers a new service.
pub async fn service_insert(ex: &mut impl Executor, s: &Service) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO nv_services ({SERVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(s.id)
        .arg(&s.uuid)
        .arg(&s.host)
        .arg(&s.binary)
        .arg(&s.topic)
        .arg(s.report_count)
        .arg(s.disabled)
        .arg(s.disabled_reason.as_ref())
        .arg(s.forced_down)
        .arg(s.last_seen_up)
        .arg(s.created_at)
        .arg(s.updated_at),
    )
    .await?;
    Ok(())
}

/// Records a heartbeat of service `binary` on `host` in one statement; whether it is
/// registered.
pub async fn service_heartbeat_of(
    ex: &mut impl Executor,
    host: &str,
    binary: &str,
    now: i64,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new(
                "UPDATE nv_services SET report_count = report_count + 1, last_seen_up = ?, \
                 updated_at = ? WHERE host = ? AND service_binary = ?",
            )
            .arg(now)
            .arg(now)
            .arg(host)
            .arg(binary),
        )
        .await?;
    Ok(n > 0)
}

/// Records a heartbeat of service `id`.
pub async fn service_heartbeat(ex: &mut impl Executor, id: i64, now: i64) -> Result<()> {
    ex.execute(
        &Sql::new(
            "UPDATE nv_services SET report_count = report_count + 1, last_seen_up = ?, updated_at = ? WHERE id = ?",
        )
        .arg(now)
        .arg(now)
        .arg(id),
    )
    .await?;
    Ok(())
}

// ---- instances ------------------------------------------------------------------------------

const INSTANCE_COLUMNS: &str = "uuid, internal_id, project_id, user_id, display_name, \
    display_description, hostname, host, node, availability_zone, flavor, vcpus, memory_mb, \
    image_ref, key_name, key_data, user_data, metadata, tags, vm_state, task_state, power_state, \
    locked_by, locked_reason, launch_index, reservation_id, config_drive, access_ip_v4, \
    access_ip_v6, auto_disk_config, attempts, tried_hosts, fault, created_at, updated_at, \
    launched_at, terminated_at, deleted_at, deleted, requested_networks, network_info, \
    requested_host, requested_zone, shelved_image_id, shelved_at";

#[derive(FromRow)]
struct InstanceRow {
    uuid: String,
    internal_id: i64,
    project_id: String,
    user_id: String,
    display_name: String,
    display_description: Option<String>,
    hostname: String,
    host: Option<String>,
    node: Option<String>,
    availability_zone: Option<String>,
    flavor: String,
    image_ref: String,
    key_name: Option<String>,
    key_data: Option<String>,
    user_data: Option<String>,
    metadata: String,
    tags: String,
    vm_state: String,
    task_state: Option<String>,
    power_state: i64,
    locked_by: Option<String>,
    locked_reason: Option<String>,
    launch_index: i64,
    reservation_id: String,
    config_drive: String,
    access_ip_v4: Option<String>,
    access_ip_v6: Option<String>,
    auto_disk_config: bool,
    attempts: i64,
    tried_hosts: String,
    fault: Option<String>,
    created_at: i64,
    updated_at: i64,
    launched_at: Option<i64>,
    terminated_at: Option<i64>,
    deleted_at: Option<i64>,
    deleted: bool,
    requested_networks: Option<String>,
    network_info: Option<String>,
    requested_host: Option<String>,
    requested_zone: Option<String>,
    shelved_image_id: Option<String>,
    shelved_at: Option<i64>,
}

impl InstanceRow {
    fn into_instance(self) -> Result<Instance> {
        let bad = |what: &str| Error::internal(format!("instance {}: bad {what}", self.uuid));
        let flavor: InstanceFlavor =
            serde_json::from_str(&self.flavor).map_err(|_| bad("flavor"))?;
        let fault: Option<InstanceFault> = match &self.fault {
            Some(f) => Some(serde_json::from_str(f).map_err(|_| bad("fault"))?),
            None => None,
        };
        let requested_networks = match &self.requested_networks {
            Some(t) => serde_json::from_str(t).map_err(|_| bad("requested networks"))?,
            None => Vec::new(),
        };
        let network_info = match &self.network_info {
            Some(t) => serde_json::from_str(t).map_err(|_| bad("network info"))?,
            None => Vec::new(),
        };
        Ok(Instance {
            flavor,
            fault,
            metadata: serde_json::from_str(&self.metadata).map_err(|_| bad("metadata"))?,
            tags: serde_json::from_str(&self.tags).map_err(|_| bad("tags"))?,
            tried_hosts: serde_json::from_str(&self.tried_hosts).map_err(|_| bad("tried hosts"))?,
            vm_state: VmState::parse(&self.vm_state).ok_or_else(|| bad("vm_state"))?,
            power_state: PowerState::from_code(self.power_state),
            uuid: self.uuid,
            internal_id: self.internal_id,
            project_id: self.project_id,
            user_id: self.user_id,
            display_name: self.display_name,
            display_description: self.display_description,
            hostname: self.hostname,
            host: self.host,
            node: self.node,
            availability_zone: self.availability_zone,
            image_ref: self.image_ref,
            key_name: self.key_name,
            key_data: self.key_data,
            user_data: self.user_data,
            task_state: self.task_state,
            locked_by: self.locked_by,
            locked_reason: self.locked_reason,
            launch_index: self.launch_index,
            reservation_id: self.reservation_id,
            config_drive: self.config_drive,
            access_ip_v4: self.access_ip_v4,
            access_ip_v6: self.access_ip_v6,
            auto_disk_config: self.auto_disk_config,
            attempts: self.attempts,
            created_at: self.created_at,
            updated_at: self.updated_at,
            launched_at: self.launched_at,
            terminated_at: self.terminated_at,
            deleted_at: self.deleted_at,
            deleted: self.deleted,
            requested_networks,
            network_info,
            requested_host: self.requested_host,
            requested_zone: self.requested_zone,
            shelved_image_id: self.shelved_image_id,
            shelved_at: self.shelved_at,
        })
    }
}

pub(crate) fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::internal(format!("encode: {e}")))
}

/// Inserts a new instance.
pub async fn instance_insert(ex: &mut impl Executor, i: &Instance) -> Result<()> {
    let fault = i.fault.as_ref().map(json_text).transpose()?;
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO nv_instances ({INSTANCE_COLUMNS}) VALUES \
             (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&i.uuid)
        .arg(i.internal_id)
        .arg(&i.project_id)
        .arg(&i.user_id)
        .arg(&i.display_name)
        .arg(i.display_description.as_ref())
        .arg(&i.hostname)
        .arg(i.host.as_ref())
        .arg(i.node.as_ref())
        .arg(i.availability_zone.as_ref())
        .arg(json_text(&i.flavor)?)
        .arg(i.flavor.vcpus)
        .arg(i.flavor.memory_mb)
        .arg(&i.image_ref)
        .arg(i.key_name.as_ref())
        .arg(i.key_data.as_ref())
        .arg(i.user_data.as_ref())
        .arg(json_text(&i.metadata)?)
        .arg(json_text(&i.tags)?)
        .arg(i.vm_state.as_str())
        .arg(i.task_state.as_ref())
        .arg(i.power_state.code())
        .arg(i.locked_by.as_ref())
        .arg(i.locked_reason.as_ref())
        .arg(i.launch_index)
        .arg(&i.reservation_id)
        .arg(&i.config_drive)
        .arg(i.access_ip_v4.as_ref())
        .arg(i.access_ip_v6.as_ref())
        .arg(i.auto_disk_config)
        .arg(i.attempts)
        .arg(json_text(&i.tried_hosts)?)
        .arg(fault)
        .arg(i.created_at)
        .arg(i.updated_at)
        .arg(i.launched_at)
        .arg(i.terminated_at)
        .arg(i.deleted_at)
        .arg(i.deleted)
        .arg(json_text(&i.requested_networks)?)
        .arg(json_text(&i.network_info)?)
        .arg(i.requested_host.as_ref())
        .arg(i.requested_zone.as_ref())
        .arg(i.shelved_image_id.as_ref())
        .arg(i.shelved_at),
    )
    .await?;
    Ok(())
}

/// Instance `uuid` unless deleted.
pub async fn instance_get(ex: &mut impl Executor, uuid: &str) -> Result<Option<Instance>> {
    let row: Option<InstanceRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM nv_instances WHERE uuid = ? AND deleted = ?"
            ))
            .arg(uuid)
            .arg(false),
        )
        .await?;
    row.map(InstanceRow::into_instance).transpose()
}

/// The password the guest of live instance `uuid` posted, if any (`None` also when the
/// instance does not exist).
pub async fn instance_password(ex: &mut impl Executor, uuid: &str) -> Result<Option<String>> {
    let row: Option<(Option<String>,)> = ex
        .fetch_optional(
            &Sql::new("SELECT password FROM nv_instances WHERE uuid = ? AND deleted = ?")
                .arg(uuid)
                .arg(false),
        )
        .await?;
    Ok(row.and_then(|(p,)| p).filter(|p| !p.is_empty()))
}

/// Stores the guest's password unless one is stored already: false when one was (or the
/// instance is gone). The check and the write are one statement, so two posts cannot
/// both win.
pub async fn instance_set_password(
    ex: &mut impl Executor,
    uuid: &str,
    password: &str,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new(
                "UPDATE nv_instances SET password = ? \
                 WHERE uuid = ? AND deleted = ? AND (password IS NULL OR password = '')",
            )
            .arg(password)
            .arg(uuid)
            .arg(false),
        )
        .await?;
    Ok(n == 1)
}

/// Forgets the guest's password (os-server-password clear); the guest may post again.
pub async fn instance_clear_password(ex: &mut impl Executor, uuid: &str) -> Result<()> {
    ex.execute(&Sql::new("UPDATE nv_instances SET password = NULL WHERE uuid = ?").arg(uuid))
        .await?;
    Ok(())
}

/// Instance `uuid`, deleted or not.
pub async fn instance_get_any(ex: &mut impl Executor, uuid: &str) -> Result<Option<Instance>> {
    let row: Option<InstanceRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM nv_instances WHERE uuid = ?"
            ))
            .arg(uuid),
        )
        .await?;
    row.map(InstanceRow::into_instance).transpose()
}

/// Instances, deleted or not, that ran at some time between `start` and `stop` (launched
/// before `stop`, not terminated before `start`), of `project` when given, oldest first.
pub async fn instances_in_window(
    ex: &mut impl Executor,
    start: i64,
    stop: i64,
    project: Option<&str>,
) -> Result<Vec<Instance>> {
    let mut sql = Sql::new(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM nv_instances \
         WHERE (terminated_at IS NULL OR terminated_at > ?) AND launched_at < ?"
    ))
    .arg(start)
    .arg(stop);
    if let Some(p) = project {
        sql.push(" AND project_id = ").bind(p);
    }
    sql.push(" ORDER BY created_at, uuid");
    let rows: Vec<InstanceRow> = ex.fetch_all(&sql).await?;
    rows.into_iter().map(InstanceRow::into_instance).collect()
}

/// Instances not deleted, of `project` when given, oldest first.
pub async fn instance_list(ex: &mut impl Executor, project: Option<&str>) -> Result<Vec<Instance>> {
    let mut sql = Sql::new(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM nv_instances WHERE deleted = ?"
    ))
    .arg(false);
    if let Some(p) = project {
        sql.push(" AND project_id = ").bind(p);
    }
    sql.push(" ORDER BY created_at, uuid");
    let rows: Vec<InstanceRow> = ex.fetch_all(&sql).await?;
    rows.into_iter().map(InstanceRow::into_instance).collect()
}

/// Sets the ports of `i` to `i.network_info` (an `os-interface` attach or detach) if the
/// row is unchanged since `i` was read (its `updated_at`, which this moves on) and has no
/// task under way: compare-and-swap, so two attaches to one server cannot lose either's
/// port. Whether the row was written.
pub async fn instance_save_network_info(
    ex: &mut impl Executor,
    i: &Instance,
    now: i64,
) -> Result<bool> {
    let sql = Sql::new(
        "UPDATE nv_instances SET network_info = ?, updated_at = ? \
         WHERE uuid = ? AND deleted = ? AND updated_at = ? AND task_state IS NULL",
    )
    .arg(json_text(&i.network_info)?)
    .arg(now.max(i.updated_at + 1))
    .arg(&i.uuid)
    .arg(false)
    .arg(i.updated_at);
    Ok(ex.execute(&sql).await? == 1)
}

/// Writes every mutable column of `i` if the row still has `expected` (vm_state and
/// task_state as read): compare-and-swap, as upstream's `save(expected_task_state=...)`.
/// Whether the row was written.
pub async fn instance_save(
    ex: &mut impl Executor,
    i: &Instance,
    expected: (VmState, Option<&str>),
) -> Result<bool> {
    let fault = i.fault.as_ref().map(json_text).transpose()?;
    // The ports change under a task (the conductor binds or releases them while building)
    // or through `instance_save_network_info` (os-interface, with no task). A save that
    // read the row with no task under way leaves them as they are now, so it cannot put
    // back what an attach or detach replaced after that read.
    let ports = if expected.1.is_some() {
        "network_info = ?"
    } else {
        "network_info = COALESCE(network_info, ?)"
    };
    let mut sql = Sql::new(&format!(
        "UPDATE nv_instances SET display_name = ?, display_description = ?, host = ?, node = ?, \
         availability_zone = ?, flavor = ?, vcpus = ?, memory_mb = ?, image_ref = ?, \
         key_name = ?, key_data = ?, user_data = ?, hostname = ?, access_ip_v4 = ?, \
         access_ip_v6 = ?, {ports}, metadata = ?, tags = ?, \
         vm_state = ?, task_state = ?, \
         power_state = ?, locked_by = ?, locked_reason = ?, attempts = ?, tried_hosts = ?, \
         fault = ?, updated_at = ?, launched_at = ?, terminated_at = ?, deleted_at = ?, \
         deleted = ?, requested_zone = ?, shelved_image_id = ?, shelved_at = ? \
         WHERE uuid = ? AND deleted = ? AND vm_state = ?"
    ))
    .arg(&i.display_name)
    .arg(i.display_description.as_ref())
    .arg(i.host.as_ref())
    .arg(i.node.as_ref())
    .arg(i.availability_zone.as_ref())
    .arg(json_text(&i.flavor)?)
    .arg(i.flavor.vcpus)
    .arg(i.flavor.memory_mb)
    .arg(&i.image_ref)
    .arg(i.key_name.as_ref())
    .arg(i.key_data.as_ref())
    .arg(i.user_data.as_ref())
    .arg(&i.hostname)
    .arg(i.access_ip_v4.as_ref())
    .arg(i.access_ip_v6.as_ref())
    .arg(json_text(&i.network_info)?)
    .arg(json_text(&i.metadata)?)
    .arg(json_text(&i.tags)?)
    .arg(i.vm_state.as_str())
    .arg(i.task_state.as_ref())
    .arg(i.power_state.code())
    .arg(i.locked_by.as_ref())
    .arg(i.locked_reason.as_ref())
    .arg(i.attempts)
    .arg(json_text(&i.tried_hosts)?)
    .arg(fault)
    .arg(i.updated_at)
    .arg(i.launched_at)
    .arg(i.terminated_at)
    .arg(i.deleted_at)
    .arg(i.deleted)
    .arg(i.requested_zone.as_ref())
    .arg(i.shelved_image_id.as_ref())
    .arg(i.shelved_at)
    .arg(&i.uuid)
    .arg(false)
    .arg(expected.0.as_str());
    match expected.1 {
        Some(t) => sql.push(" AND task_state = ").bind(t),
        None => sql.push(" AND task_state IS NULL"),
    };
    Ok(ex.execute(&sql).await? == 1)
}

#[derive(FromRow)]
struct UsageRow {
    n: i64,
    vcpus: i64,
    memory_mb: i64,
}

/// Instances, vCPUs and RAM of the non-deleted instances of `project` (and `user`), summed
/// in the database (one row, whatever the number of servers).
pub async fn instance_usage(
    ex: &mut impl Executor,
    project: &str,
    user: Option<&str>,
) -> Result<(i64, i64, i64)> {
    let e = ex.engine();
    let mut sql = Sql::new(&format!(
        "SELECT COUNT(*) AS n, {} AS vcpus, {} AS memory_mb FROM nv_instances \
         WHERE deleted = ? AND project_id = ?",
        ferro_db::int_sum(e, "vcpus"),
        ferro_db::int_sum(e, "memory_mb")
    ))
    .arg(false)
    .arg(project);
    if let Some(u) = user {
        sql.push(" AND user_id = ").bind(u);
    }
    let row: Option<UsageRow> = ex.fetch_optional(&sql).await?;
    Ok(row.map_or((0, 0, 0), |r| (r.n, r.vcpus, r.memory_mb)))
}

// ---- compute nodes --------------------------------------------------------------------------

/// A hypervisor as its agent last reported it.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct ComputeNode {
    pub host: String,
    pub id: i64,
    pub uuid: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub local_gb: i64,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The agent's `cpu_info` report, a JSON object's text (none before its first report
    /// with one).
    pub cpu_info: Option<String>,
}

const NODE_COLUMNS: &str = "host, id, uuid, vcpus, memory_mb, local_gb, hypervisor_type, \
    hypervisor_version, created_at, updated_at, cpu_info";

/// Every compute node, by id.
pub async fn node_list(ex: &mut impl Executor) -> Result<Vec<ComputeNode>> {
    ex.fetch_all(&Sql::new(&format!(
        "SELECT {NODE_COLUMNS} FROM nv_compute_nodes ORDER BY id"
    )))
    .await
    .map_err(Into::into)
}

/// Records a node's report (the first report registers it). Two first reports of one host
/// may race (the agent's report after registering and its periodic heartbeat): the loser's
/// insert fails (unique host, or a deadlock's victim on MySQL, whose gap locks on the missing
/// key make two such inserts deadlock), and the whole report runs again — as an update once
/// the winner committed.
pub async fn node_report(db: &Db, n: &ComputeNode) -> Result<()> {
    let mut attempt = 0;
    loop {
        match node_report_once(db, n).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= 4 => return Err(e),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
            }
        }
    }
}

async fn node_report_once(db: &Db, n: &ComputeNode) -> Result<()> {
    if node_update(&mut &*db, n).await? {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    if node_update(&mut tx, n).await? {
        return Ok(tx.commit().await?);
    }
    let id = next_id(&mut tx, "compute_nodes").await?;
    tx.execute(
        &Sql::new(&format!(
            "INSERT INTO nv_compute_nodes ({NODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&n.host)
        .arg(id)
        .arg(&n.uuid)
        .arg(n.vcpus)
        .arg(n.memory_mb)
        .arg(n.local_gb)
        .arg(&n.hypervisor_type)
        .arg(n.hypervisor_version)
        .arg(n.created_at)
        .arg(n.updated_at)
        .arg(n.cpu_info.clone()),
    )
    .await?;
    Ok(tx.commit().await?)
}

/// Updates a node's row; whether it exists.
async fn node_update(ex: &mut impl Executor, n: &ComputeNode) -> Result<bool> {
    let updated = ex
        .execute(
            &Sql::new(
                "UPDATE nv_compute_nodes SET vcpus = ?, memory_mb = ?, local_gb = ?, \
                 hypervisor_type = ?, hypervisor_version = ?, uuid = ?, updated_at = ?, \
                 cpu_info = ? WHERE host = ?",
            )
            .arg(n.vcpus)
            .arg(n.memory_mb)
            .arg(n.local_gb)
            .arg(&n.hypervisor_type)
            .arg(n.hypervisor_version)
            .arg(&n.uuid)
            .arg(n.updated_at)
            .arg(n.cpu_info.clone())
            .arg(&n.host),
        )
        .await?;
    Ok(updated > 0)
}

// ---- server groups --------------------------------------------------------------------------

/// A server group as stored; `rules` is its JSON object.
#[derive(Clone, Debug, FromRow)]
pub struct ServerGroup {
    pub uuid: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub policy: String,
    pub rules: String,
    pub created_at: i64,
}

const GROUP_COLUMNS: &str = "uuid, name, project_id, user_id, policy, rules, created_at";

pub async fn group_insert(ex: &mut impl Executor, g: &ServerGroup) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO nv_server_groups ({GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&g.uuid)
        .arg(&g.name)
        .arg(&g.project_id)
        .arg(&g.user_id)
        .arg(&g.policy)
        .arg(&g.rules)
        .arg(g.created_at),
    )
    .await?;
    Ok(())
}

pub async fn group_get(ex: &mut impl Executor, uuid: &str) -> Result<Option<ServerGroup>> {
    Ok(ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {GROUP_COLUMNS} FROM nv_server_groups WHERE uuid = ?"
            ))
            .arg(uuid),
        )
        .await?)
}

/// Server groups of `project` (all when `None`), oldest first.
pub async fn group_list(ex: &mut impl Executor, project: Option<&str>) -> Result<Vec<ServerGroup>> {
    let mut sql = Sql::new(&format!("SELECT {GROUP_COLUMNS} FROM nv_server_groups"));
    if let Some(p) = project {
        sql.push(" WHERE project_id = ").bind(p);
    }
    sql.push(" ORDER BY created_at, uuid");
    Ok(ex.fetch_all(&sql).await?)
}

/// How many server groups `project` has.
pub async fn group_count(ex: &mut impl Executor, project: &str) -> Result<i64> {
    let row: Option<Count> = ex
        .fetch_optional(
            &Sql::new("SELECT COUNT(*) AS n FROM nv_server_groups WHERE project_id = ?")
                .arg(project),
        )
        .await?;
    Ok(row.map_or(0, |r| r.n))
}

/// Deletes a group and its member rows; false if there was no such group.
pub async fn group_delete(ex: &mut impl Executor, uuid: &str) -> Result<bool> {
    ex.execute(&Sql::new("DELETE FROM nv_server_group_members WHERE group_uuid = ?").arg(uuid))
        .await?;
    let n = ex
        .execute(&Sql::new("DELETE FROM nv_server_groups WHERE uuid = ?").arg(uuid))
        .await?;
    Ok(n == 1)
}

pub async fn group_member_add(ex: &mut impl Executor, group: &str, instance: &str) -> Result<()> {
    ex.execute(
        &Sql::new("INSERT INTO nv_server_group_members (group_uuid, instance_uuid) VALUES (?, ?)")
            .arg(group)
            .arg(instance),
    )
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct MemberRow {
    group_uuid: String,
    instance_uuid: String,
    host: Option<String>,
}

/// A group member whose instance is not deleted, with the host it was placed on.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupMember {
    pub group: String,
    pub instance: String,
    pub host: Option<String>,
}

/// The live members of the given groups (all groups when `groups` is `None`).
pub async fn group_members(
    ex: &mut impl Executor,
    groups: Option<&[String]>,
) -> Result<Vec<GroupMember>> {
    let mut sql = Sql::new(
        "SELECT m.group_uuid, m.instance_uuid, i.host FROM nv_server_group_members m \
         JOIN nv_instances i ON i.uuid = m.instance_uuid WHERE i.deleted = ",
    );
    sql.bind(false);
    if let Some(g) = groups {
        sql.push(" AND m.group_uuid IN ")
            .bind_list(g.iter().map(String::as_str));
    }
    sql.push(" ORDER BY i.created_at, m.instance_uuid");
    let rows: Vec<MemberRow> = ex.fetch_all(&sql).await?;
    Ok(rows
        .into_iter()
        .map(|r| GroupMember {
            group: r.group_uuid,
            instance: r.instance_uuid,
            host: r.host,
        })
        .collect())
}

#[derive(FromRow)]
struct GroupOf {
    group_uuid: String,
}

/// The group instance `uuid` was created in, if any.
pub async fn group_of_instance(ex: &mut impl Executor, uuid: &str) -> Result<Option<String>> {
    let row: Option<GroupOf> = ex
        .fetch_optional(
            &Sql::new("SELECT group_uuid FROM nv_server_group_members WHERE instance_uuid = ?")
                .arg(uuid),
        )
        .await?;
    Ok(row.map(|r| r.group_uuid))
}

// ---- aggregates -----------------------------------------------------------------------------

/// A host aggregate with its hosts (by name) and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub hosts: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

impl Aggregate {
    /// Its `availability_zone` metadata, if any.
    pub fn zone(&self) -> Option<&str> {
        self.metadata.get(AZ_KEY).map(String::as_str)
    }
}

/// The metadata key that puts an aggregate's hosts in an availability zone.
pub const AZ_KEY: &str = "availability_zone";

#[derive(FromRow)]
struct AggregateRow {
    id: i64,
    uuid: String,
    name: String,
    created_at: i64,
    updated_at: Option<i64>,
}

#[derive(FromRow)]
struct AggregateHostRow {
    aggregate_id: i64,
    host: String,
}

#[derive(FromRow)]
struct AggregateMetaRow {
    aggregate_id: i64,
    meta_key: String,
    meta_value: String,
}

/// Every aggregate (or only aggregate `id`), by id, with hosts and metadata.
pub async fn aggregate_list(ex: &mut impl Executor, id: Option<i64>) -> Result<Vec<Aggregate>> {
    let mut rows_sql = Sql::new("SELECT id, uuid, name, created_at, updated_at FROM nv_aggregates");
    let mut hosts_sql = Sql::new("SELECT aggregate_id, host FROM nv_aggregate_hosts");
    let mut meta_sql =
        Sql::new("SELECT aggregate_id, meta_key, meta_value FROM nv_aggregate_metadata");
    if let Some(id) = id {
        rows_sql.push(" WHERE id = ").bind(id);
        hosts_sql.push(" WHERE aggregate_id = ").bind(id);
        meta_sql.push(" WHERE aggregate_id = ").bind(id);
    }
    rows_sql.push(" ORDER BY id");
    let rows: Vec<AggregateRow> = ex.fetch_all(&rows_sql).await?;
    hosts_sql.push(" ORDER BY host");
    let hosts: Vec<AggregateHostRow> = ex.fetch_all(&hosts_sql).await?;
    let meta: Vec<AggregateMetaRow> = ex.fetch_all(&meta_sql).await?;
    let mut out: BTreeMap<i64, Aggregate> = rows
        .into_iter()
        .map(|r| {
            let a = Aggregate {
                id: r.id,
                uuid: r.uuid,
                name: r.name,
                created_at: r.created_at,
                updated_at: r.updated_at,
                hosts: Vec::new(),
                metadata: BTreeMap::new(),
            };
            (r.id, a)
        })
        .collect();
    for h in hosts {
        if let Some(a) = out.get_mut(&h.aggregate_id) {
            a.hosts.push(h.host);
        }
    }
    for m in meta {
        if let Some(a) = out.get_mut(&m.aggregate_id) {
            a.metadata.insert(m.meta_key, m.meta_value);
        }
    }
    Ok(out.into_values().collect())
}

/// Aggregate `id`, if it exists.
pub async fn aggregate_get(ex: &mut impl Executor, id: i64) -> Result<Option<Aggregate>> {
    Ok(aggregate_list(ex, Some(id)).await?.pop())
}

/// Whether an aggregate other than `except` is named `name`.
pub async fn aggregate_name_taken(
    ex: &mut impl Executor,
    name: &str,
    except: Option<i64>,
) -> Result<bool> {
    let row: Option<Count> = ex
        .fetch_optional(
            &Sql::new("SELECT COUNT(*) AS n FROM nv_aggregates WHERE name = ? AND id <> ?")
                .arg(name)
                .arg(except.unwrap_or(-1)),
        )
        .await?;
    Ok(row.is_some_and(|r| r.n > 0))
}

/// Takes the aggregates' row lock for the rest of the transaction: changes that move hosts
/// between zones are checked and written one at a time, so two of them cannot each pass the
/// one-zone-per-host check against the state before the other.
pub async fn aggregate_lock(ex: &mut impl Executor) -> Result<()> {
    let n = ex
        .execute(
            &Sql::new("UPDATE nv_sequences SET next_value = next_value WHERE seq_name = ?")
                .arg("aggregates"),
        )
        .await?;
    if n != 1 {
        return Err(Error::internal("sequence aggregates is missing"));
    }
    Ok(())
}

/// Inserts a new aggregate and its metadata (it has no hosts yet).
pub async fn aggregate_insert(ex: &mut impl Executor, a: &Aggregate) -> Result<()> {
    ex.execute(
        &Sql::new(
            "INSERT INTO nv_aggregates (id, uuid, name, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .arg(a.id)
        .arg(&a.uuid)
        .arg(&a.name)
        .arg(a.created_at)
        .arg(a.updated_at),
    )
    .await?;
    for (k, v) in &a.metadata {
        aggregate_metadata_set(ex, a.id, k, Some(v)).await?;
    }
    Ok(())
}

/// Renames aggregate `id` and records the change at `now`; false if it does not exist.
pub async fn aggregate_update(
    ex: &mut impl Executor,
    id: i64,
    name: &str,
    now: i64,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new("UPDATE nv_aggregates SET name = ?, updated_at = ? WHERE id = ?")
                .arg(name)
                .arg(now)
                .arg(id),
        )
        .await?;
    Ok(n == 1)
}

/// Sets (`Some`) or removes (`None`) metadata key `key` of aggregate `id`.
pub async fn aggregate_metadata_set(
    ex: &mut impl Executor,
    id: i64,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    ex.execute(
        &Sql::new("DELETE FROM nv_aggregate_metadata WHERE aggregate_id = ? AND meta_key = ?")
            .arg(id)
            .arg(key),
    )
    .await?;
    if let Some(v) = value {
        ex.execute(
            &Sql::new(
                "INSERT INTO nv_aggregate_metadata (aggregate_id, meta_key, meta_value) \
                 VALUES (?, ?, ?)",
            )
            .arg(id)
            .arg(key)
            .arg(v),
        )
        .await?;
    }
    Ok(())
}

/// Deletes aggregate `id` with its metadata and host rows; false if it did not exist.
pub async fn aggregate_delete(ex: &mut impl Executor, id: i64) -> Result<bool> {
    for table in ["nv_aggregate_metadata", "nv_aggregate_hosts"] {
        ex.execute(&Sql::new(&format!("DELETE FROM {table} WHERE aggregate_id = ?")).arg(id))
            .await?;
    }
    let n = ex
        .execute(&Sql::new("DELETE FROM nv_aggregates WHERE id = ?").arg(id))
        .await?;
    Ok(n == 1)
}

/// Adds `host` to aggregate `id` (a host already there is a unique-key conflict).
pub async fn aggregate_host_add(ex: &mut impl Executor, id: i64, host: &str) -> Result<()> {
    ex.execute(
        &Sql::new("INSERT INTO nv_aggregate_hosts (aggregate_id, host) VALUES (?, ?)")
            .arg(id)
            .arg(host),
    )
    .await?;
    Ok(())
}

/// Removes `host` from aggregate `id`; false if it was not there.
pub async fn aggregate_host_remove(ex: &mut impl Executor, id: i64, host: &str) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new("DELETE FROM nv_aggregate_hosts WHERE aggregate_id = ? AND host = ?")
                .arg(id)
                .arg(host),
        )
        .await?;
    Ok(n == 1)
}

/// Each host's aggregate metadata: key -> the values its aggregates give it (upstream's
/// `aggregate_metadata_get_by_host`), for every host in an aggregate with metadata.
pub type HostMetadata = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// [`HostMetadata`] of every host.
pub async fn host_aggregate_metadata(ex: &mut impl Executor) -> Result<HostMetadata> {
    #[derive(FromRow)]
    struct Row {
        host: String,
        meta_key: String,
        meta_value: String,
    }
    let rows: Vec<Row> = ex
        .fetch_all(&Sql::new(
            "SELECT h.host, m.meta_key, m.meta_value FROM nv_aggregate_hosts h \
             JOIN nv_aggregate_metadata m ON m.aggregate_id = h.aggregate_id",
        ))
        .await?;
    let mut out = HostMetadata::new();
    for r in rows {
        out.entry(r.host)
            .or_default()
            .entry(r.meta_key)
            .or_default()
            .insert(r.meta_value);
    }
    Ok(out)
}

/// The availability zone aggregates give `meta`'s host: its zones joined by `,` as upstream's
/// `set_availability_zones` does (the API keeps a host in at most one), `None` outside zoned
/// aggregates.
pub fn zone_of(meta: Option<&BTreeMap<String, BTreeSet<String>>>) -> Option<String> {
    let zones = meta?.get(AZ_KEY)?;
    (!zones.is_empty()).then(|| zones.iter().cloned().collect::<Vec<_>>().join(","))
}

/// The zone aggregates give `host` ([`zone_of`]).
pub async fn host_zone(ex: &mut impl Executor, host: &str) -> Result<Option<String>> {
    #[derive(FromRow)]
    struct Row {
        meta_value: String,
    }
    let rows: Vec<Row> = ex
        .fetch_all(
            &Sql::new(
                "SELECT DISTINCT m.meta_value FROM nv_aggregate_hosts h \
                 JOIN nv_aggregate_metadata m ON m.aggregate_id = h.aggregate_id \
                 WHERE h.host = ? AND m.meta_key = ? ORDER BY m.meta_value",
            )
            .arg(host)
            .arg(AZ_KEY),
        )
        .await?;
    Ok((!rows.is_empty()).then(|| {
        rows.into_iter()
            .map(|r| r.meta_value)
            .collect::<Vec<_>>()
            .join(",")
    }))
}

/// How many live instances are on `hosts`.
pub async fn instance_count_on_hosts(ex: &mut impl Executor, hosts: &[String]) -> Result<i64> {
    if hosts.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM nv_instances WHERE deleted = ");
    sql.bind(false);
    sql.push(" AND host IN ")
        .bind_list(hosts.iter().map(String::as_str));
    let row: Option<Count> = ex.fetch_optional(&sql).await?;
    Ok(row.map_or(0, |r| r.n))
}

/// Host `host`'s compute node, if it reported one.
pub async fn node_get(ex: &mut impl Executor, host: &str) -> Result<Option<ComputeNode>> {
    Ok(ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {NODE_COLUMNS} FROM nv_compute_nodes WHERE host = ?"
            ))
            .arg(host),
        )
        .await?)
}

// ---- instance actions -----------------------------------------------------------------------

/// One recorded action on an instance.
#[derive(Clone, Debug, FromRow)]
pub struct InstanceAction {
    pub instance_uuid: String,
    pub request_id: String,
    pub action: String,
    pub user_id: String,
    pub project_id: String,
    pub start_time: i64,
    pub updated_at: i64,
    pub message: Option<String>,
}

/// One step of an action.
#[derive(Clone, Debug, FromRow)]
pub struct ActionEvent {
    pub event: String,
    pub start_time: i64,
    pub finish_time: Option<i64>,
    pub result: Option<String>,
    pub traceback: Option<String>,
    pub host: Option<String>,
    pub details: Option<String>,
}

const ACTION_COLUMNS: &str =
    "instance_uuid, request_id, action, user_id, project_id, start_time, updated_at, message";

/// Records an action; a second record for the same request is ignored (a retried call).
pub async fn action_insert(ex: &mut impl Executor, a: &InstanceAction) -> Result<()> {
    let exists: Option<Count> = ex
        .fetch_optional(
            &Sql::new(
                "SELECT COUNT(*) AS n FROM nv_instance_actions \
                 WHERE instance_uuid = ? AND request_id = ?",
            )
            .arg(&a.instance_uuid)
            .arg(&a.request_id),
        )
        .await?;
    if exists.is_some_and(|c| c.n > 0) {
        return Ok(());
    }
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO nv_instance_actions ({ACTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&a.instance_uuid)
        .arg(&a.request_id)
        .arg(&a.action)
        .arg(&a.user_id)
        .arg(&a.project_id)
        .arg(a.start_time)
        .arg(a.updated_at)
        .arg(a.message.as_ref()),
    )
    .await?;
    Ok(())
}

/// The actions of an instance, newest first.
pub async fn action_list(ex: &mut impl Executor, uuid: &str) -> Result<Vec<InstanceAction>> {
    Ok(ex
        .fetch_all(
            &Sql::new(&format!(
                "SELECT {ACTION_COLUMNS} FROM nv_instance_actions WHERE instance_uuid = ? \
                 ORDER BY start_time DESC, request_id DESC"
            ))
            .arg(uuid),
        )
        .await?)
}

/// Appends an event to the action of `request_id` on `uuid` (if it was recorded), and marks
/// the action failed when the event did.
pub async fn action_event_add(
    ex: &mut impl Executor,
    uuid: &str,
    request_id: &str,
    e: &ActionEvent,
) -> Result<()> {
    let failed = e.result.as_deref() == Some("Error");
    let mut sql = Sql::new("UPDATE nv_instance_actions SET updated_at = ?").arg(e.start_time);
    if failed {
        sql.push(", message = ").bind("Error");
    }
    sql.push(" WHERE instance_uuid = ").bind(uuid);
    sql.push(" AND request_id = ").bind(request_id);
    if ex.execute(&sql).await? == 0 {
        return Ok(());
    }
    ex.execute(
        &Sql::new(
            "INSERT INTO nv_instance_action_events (instance_uuid, request_id, event, \
             start_time, finish_time, result, traceback, host, details) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(uuid)
        .arg(request_id)
        .arg(&e.event)
        .arg(e.start_time)
        .arg(e.finish_time)
        .arg(e.result.as_ref())
        .arg(e.traceback.as_ref())
        .arg(e.host.as_ref())
        .arg(e.details.as_ref()),
    )
    .await?;
    Ok(())
}

/// The events of one action, in order.
pub async fn action_events(
    ex: &mut impl Executor,
    uuid: &str,
    request_id: &str,
) -> Result<Vec<ActionEvent>> {
    Ok(ex
        .fetch_all(
            &Sql::new(
                "SELECT event, start_time, finish_time, result, traceback, host, details \
                 FROM nv_instance_action_events WHERE instance_uuid = ? AND request_id = ? \
                 ORDER BY start_time",
            )
            .arg(uuid)
            .arg(request_id),
        )
        .await?)
}

// ---- migrations (resizes) -------------------------------------------------------------------

/// A resize of one instance; flavors are the instance's flavor JSON.
#[derive(Clone, Debug, FromRow)]
pub struct Migration {
    pub uuid: String,
    pub internal_id: i64,
    pub instance_uuid: String,
    pub source_host: String,
    pub dest_host: Option<String>,
    pub old_flavor: String,
    pub new_flavor: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const MIGRATION_COLUMNS: &str = "uuid, internal_id, instance_uuid, source_host, dest_host, \
    old_flavor, new_flavor, status, created_at, updated_at";

pub async fn migration_insert(ex: &mut impl Executor, m: &Migration) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO nv_migrations ({MIGRATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&m.uuid)
        .arg(m.internal_id)
        .arg(&m.instance_uuid)
        .arg(&m.source_host)
        .arg(m.dest_host.as_ref())
        .arg(&m.old_flavor)
        .arg(&m.new_flavor)
        .arg(&m.status)
        .arg(m.created_at)
        .arg(m.updated_at),
    )
    .await?;
    Ok(())
}

/// The newest migration of an instance.
pub async fn migration_latest(ex: &mut impl Executor, instance: &str) -> Result<Option<Migration>> {
    Ok(ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {MIGRATION_COLUMNS} FROM nv_migrations WHERE instance_uuid = ? \
                 ORDER BY internal_id DESC LIMIT 1"
            ))
            .arg(instance),
        )
        .await?)
}

#[derive(FromRow)]
struct MigrationOwnerRow {
    #[sqlx(flatten)]
    m: Migration,
    project_id: Option<String>,
    user_id: Option<String>,
}

/// Every migration, by id, with its instance's `(project_id, user_id)` (empty when the
/// instance row is gone).
pub async fn migration_list_all(
    ex: &mut impl Executor,
) -> Result<Vec<(Migration, (String, String))>> {
    let columns: Vec<String> = MIGRATION_COLUMNS
        .split(',')
        .map(|c| format!("m.{}", c.trim()))
        .collect();
    let rows: Vec<MigrationOwnerRow> = ex
        .fetch_all(&Sql::new(&format!(
            "SELECT {}, i.project_id, i.user_id FROM nv_migrations m \
             LEFT JOIN nv_instances i ON i.uuid = m.instance_uuid ORDER BY m.internal_id",
            columns.join(", ")
        )))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.m,
                (
                    r.project_id.unwrap_or_default(),
                    r.user_id.unwrap_or_default(),
                ),
            )
        })
        .collect())
}

/// Moves a migration from status `from` to `to` (and records its destination): whether it
/// was still in `from`.
pub async fn migration_advance(
    ex: &mut impl Executor,
    uuid: &str,
    from: &str,
    to: &str,
    dest_host: Option<&str>,
) -> Result<bool> {
    let mut sql = Sql::new("UPDATE nv_migrations SET status = ?, updated_at = ?")
        .arg(to)
        .arg(ferro_common::time::now_micros());
    if let Some(d) = dest_host {
        sql.push(", dest_host = ").bind(d);
    }
    sql.push(" WHERE uuid = ").bind(uuid);
    sql.push(" AND status = ").bind(from);
    Ok(ex.execute(&sql).await? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceFlavor, PowerState, Vif};

    fn instance(uuid: &str) -> Instance {
        Instance {
            uuid: uuid.into(),
            internal_id: 1,
            project_id: "p".into(),
            user_id: "u".into(),
            display_name: "s".into(),
            display_description: None,
            hostname: "s".into(),
            host: Some("h".into()),
            node: Some("h".into()),
            availability_zone: None,
            flavor: InstanceFlavor {
                flavorid: "1".into(),
                name: "f".into(),
                vcpus: 1,
                memory_mb: 64,
                root_gb: 1,
                ephemeral_gb: 0,
                swap: 0,
                extra_specs: Default::default(),
            },
            image_ref: "i".into(),
            key_name: None,
            key_data: None,
            user_data: None,
            metadata: Default::default(),
            tags: Vec::new(),
            vm_state: VmState::Active,
            task_state: None,
            power_state: PowerState::Running,
            locked_by: None,
            locked_reason: None,
            launch_index: 0,
            reservation_id: "r".into(),
            config_drive: String::new(),
            access_ip_v4: None,
            access_ip_v6: None,
            auto_disk_config: false,
            attempts: 1,
            tried_hosts: Vec::new(),
            fault: None,
            created_at: 1,
            updated_at: 1,
            launched_at: None,
            terminated_at: None,
            deleted_at: None,
            deleted: false,
            requested_networks: Vec::new(),
            network_info: Vec::new(),
            requested_host: None,
            requested_zone: None,
            shelved_image_id: None,
            shelved_at: None,
        }
    }

    /// Regression: a save from a read taken before an attach put the old ports back.
    #[tokio::test]
    async fn a_stale_save_keeps_ports_an_attach_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let db = ferro_db::Db::connect(&url).await.unwrap();
        ferro_db::migrate(&db, "compute", crate::migrations())
            .await
            .unwrap();
        let i = instance("a");
        instance_insert(&mut &db, &i).await.unwrap();
        let stale = instance_get(&mut &db, "a").await.unwrap().unwrap();

        let mut attached = stale.clone();
        attached.network_info.push(Vif {
            port_id: "port".into(),
            ..Vif::default()
        });
        assert!(
            instance_save_network_info(&mut &db, &attached, 5)
                .await
                .unwrap()
        );
        // An action that read the server before the attach (a stop, say) saves now.
        let mut stop = stale.clone();
        stop.task_state = Some("powering-off".into());
        stop.updated_at = 6;
        assert!(
            instance_save(&mut &db, &stop, (VmState::Active, None))
                .await
                .unwrap()
        );
        let now = instance_get(&mut &db, "a").await.unwrap().unwrap();
        assert_eq!(now.network_info.len(), 1, "the attached port was lost");
        assert_eq!(now.task_state.as_deref(), Some("powering-off"));

        // Under a task, the conductor's save does set the ports (a build releasing them).
        let mut released = now.clone();
        released.network_info.clear();
        released.task_state = None;
        released.updated_at = 7;
        assert!(
            instance_save(&mut &db, &released, (VmState::Active, Some("powering-off")))
                .await
                .unwrap()
        );
        let now = instance_get(&mut &db, "a").await.unwrap().unwrap();
        assert!(now.network_info.is_empty());
        // A stale generation loses the compare-and-swap of an attach.
        assert!(
            !instance_save_network_info(&mut &db, &attached, 9)
                .await
                .unwrap()
        );
    }
}
