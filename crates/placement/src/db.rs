//! Placement's queries over the `pl_` tables. No SQL elsewhere in this crate.
//!
//! Reads inside a write transaction that feed a capacity or generation decision lock what
//! they read ([`lock`]: `FOR UPDATE` on PostgreSQL and MariaDB; SQLite's `BEGIN
//! IMMEDIATE` already serialises writers). A locking read also sees the newest committed
//! rows under MariaDB's REPEATABLE READ, where a plain read would see the transaction's
//! snapshot. Sums are taken in Rust: `SUM(bigint)` decodes as NUMERIC/DECIMAL on two of
//! the three engines.

use std::collections::{BTreeMap, BTreeSet};

use ferro_db::{Engine, Executor, Sql, Tx};
use sqlx::FromRow;

use crate::model::{ConsumerInfo, Inventory, Provider, Result};

/// `FOR UPDATE` where the engine has it.
fn lock(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "",
        Engine::Postgres | Engine::MySql => " FOR UPDATE",
    }
}

const PROVIDER_COLUMNS: &str =
    "uuid, name, generation, parent_uuid, root_uuid, created_at, updated_at";

#[derive(FromRow)]
struct ProviderRow {
    uuid: String,
    name: String,
    generation: i64,
    parent_uuid: Option<String>,
    root_uuid: String,
    created_at: i64,
    updated_at: i64,
}

impl From<ProviderRow> for Provider {
    fn from(r: ProviderRow) -> Self {
        Provider {
            uuid: r.uuid,
            name: r.name,
            generation: r.generation,
            parent_uuid: r.parent_uuid,
            root_uuid: r.root_uuid,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Provider `uuid`, if it exists.
pub async fn provider_get(ex: &mut impl Executor, uuid: &str) -> Result<Option<Provider>> {
    let row: Option<ProviderRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {PROVIDER_COLUMNS} FROM pl_resource_providers WHERE uuid = ?"
            ))
            .arg(uuid),
        )
        .await?;
    Ok(row.map(Provider::from))
}

/// The provider named `name`, if any.
pub async fn provider_get_by_name(ex: &mut impl Executor, name: &str) -> Result<Option<Provider>> {
    let row: Option<ProviderRow> = ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {PROVIDER_COLUMNS} FROM pl_resource_providers WHERE name = ?"
            ))
            .arg(name),
        )
        .await?;
    Ok(row.map(Provider::from))
}

/// Locks providers `uuids` (in uuid order, so two writers never wait on each other in a
/// cycle) and returns those that exist.
pub async fn providers_lock(tx: &mut Tx, uuids: &BTreeSet<String>) -> Result<Vec<Provider>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {PROVIDER_COLUMNS} FROM pl_resource_providers WHERE uuid IN "
    ));
    sql.bind_list(uuids.iter().map(String::as_str));
    sql.push(" ORDER BY uuid");
    sql.push(lock(tx.engine()));
    let rows: Vec<ProviderRow> = tx.fetch_all(&sql).await?;
    Ok(rows.into_iter().map(Provider::from).collect())
}

/// Every provider, oldest first (upstream lists by internal id, i.e. creation order).
pub async fn providers_all(ex: &mut impl Executor) -> Result<Vec<Provider>> {
    let rows: Vec<ProviderRow> = ex
        .fetch_all(&Sql::new(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM pl_resource_providers ORDER BY created_at, uuid"
        )))
        .await?;
    Ok(rows.into_iter().map(Provider::from).collect())
}

/// The providers of the tree rooted at `root`.
pub async fn providers_in_tree(ex: &mut impl Executor, root: &str) -> Result<Vec<Provider>> {
    let rows: Vec<ProviderRow> = ex
        .fetch_all(
            &Sql::new(&format!(
                "SELECT {PROVIDER_COLUMNS} FROM pl_resource_providers WHERE root_uuid = ? \
                 ORDER BY created_at, uuid"
            ))
            .arg(root),
        )
        .await?;
    Ok(rows.into_iter().map(Provider::from).collect())
}

pub async fn provider_insert(ex: &mut impl Executor, p: &Provider) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO pl_resource_providers ({PROVIDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&p.uuid)
        .arg(&p.name)
        .arg(p.generation)
        .arg(p.parent_uuid.as_ref())
        .arg(&p.root_uuid)
        .arg(p.created_at)
        .arg(p.updated_at),
    )
    .await?;
    Ok(())
}

/// Writes name, parent and root of `p` (not its generation).
pub async fn provider_update(ex: &mut impl Executor, p: &Provider) -> Result<()> {
    ex.execute(
        &Sql::new(
            "UPDATE pl_resource_providers SET name = ?, parent_uuid = ?, root_uuid = ?, \
             updated_at = ? WHERE uuid = ?",
        )
        .arg(&p.name)
        .arg(p.parent_uuid.as_ref())
        .arg(&p.root_uuid)
        .arg(p.updated_at)
        .arg(&p.uuid),
    )
    .await?;
    Ok(())
}

/// Moves providers `uuids` to the tree rooted at `root`.
pub async fn providers_set_root(
    ex: &mut impl Executor,
    uuids: &[String],
    root: &str,
) -> Result<()> {
    if uuids.is_empty() {
        return Ok(());
    }
    let mut sql =
        Sql::new("UPDATE pl_resource_providers SET root_uuid = ? WHERE uuid IN ").arg(root);
    sql.bind_list(uuids.iter().map(String::as_str));
    ex.execute(&sql).await?;
    Ok(())
}

/// Increments the generation of `uuid` if it still is `expected`: the compare-and-swap
/// every provider write ends with. False means another writer got there first.
pub async fn provider_bump_generation(
    ex: &mut impl Executor,
    uuid: &str,
    expected: i64,
    now: i64,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new(
                "UPDATE pl_resource_providers SET generation = generation + 1, updated_at = ? \
                 WHERE uuid = ? AND generation = ?",
            )
            .arg(now)
            .arg(uuid)
            .arg(expected),
        )
        .await?;
    Ok(n == 1)
}

/// Number of direct children of `uuid`.
pub async fn provider_has_children(ex: &mut impl Executor, uuid: &str) -> Result<bool> {
    #[derive(FromRow)]
    struct One {
        uuid: String,
    }
    let row: Option<One> = ex
        .fetch_optional(
            &Sql::new("SELECT uuid FROM pl_resource_providers WHERE parent_uuid = ?").arg(uuid),
        )
        .await?;
    Ok(row.map(|r| r.uuid).is_some())
}

/// Deletes provider `uuid` with its inventories, traits and aggregate links.
pub async fn provider_delete(ex: &mut impl Executor, uuid: &str) -> Result<bool> {
    for table in [
        "pl_inventories",
        "pl_provider_traits",
        "pl_provider_aggregates",
    ] {
        ex.execute(
            &Sql::new(&format!(
                "DELETE FROM {table} WHERE resource_provider_uuid = ?"
            ))
            .arg(uuid),
        )
        .await?;
    }
    let n = ex
        .execute(&Sql::new("DELETE FROM pl_resource_providers WHERE uuid = ?").arg(uuid))
        .await?;
    Ok(n == 1)
}

#[derive(FromRow)]
struct InventoryRow {
    resource_provider_uuid: String,
    resource_class: String,
    total: i64,
    reserved: i64,
    min_unit: i64,
    max_unit: i64,
    step_size: i64,
    allocation_ratio: String,
    updated_at: i64,
}

impl InventoryRow {
    fn into_inventory(self) -> Result<(String, Inventory)> {
        let ratio = self.allocation_ratio.parse::<f64>().map_err(|e| {
            crate::model::PlacementError::internal(format!(
                "inventory {}/{} ratio {:?}: {e}",
                self.resource_provider_uuid, self.resource_class, self.allocation_ratio
            ))
        })?;
        Ok((
            self.resource_provider_uuid,
            Inventory {
                resource_class: self.resource_class,
                total: self.total,
                reserved: self.reserved,
                min_unit: self.min_unit,
                max_unit: self.max_unit,
                step_size: self.step_size,
                allocation_ratio: ratio,
                updated_at: self.updated_at,
            },
        ))
    }
}

const INVENTORY_COLUMNS: &str = "resource_provider_uuid, resource_class, total, reserved, \
    min_unit, max_unit, step_size, allocation_ratio, updated_at";

/// Inventories of the providers `uuids` (all providers when `None`), by provider.
pub async fn inventories(
    ex: &mut impl Executor,
    uuids: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, BTreeMap<String, Inventory>>> {
    let mut sql = Sql::new(&format!("SELECT {INVENTORY_COLUMNS} FROM pl_inventories"));
    if let Some(uuids) = uuids {
        sql.push(" WHERE resource_provider_uuid IN ");
        sql.bind_list(uuids.iter().map(String::as_str));
    }
    let rows: Vec<InventoryRow> = ex.fetch_all(&sql).await?;
    collect_inventories(rows)
}

/// Inventories of locked providers, read with a lock.
pub async fn inventories_locked(
    tx: &mut Tx,
    uuids: &BTreeSet<String>,
) -> Result<BTreeMap<String, BTreeMap<String, Inventory>>> {
    if uuids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {INVENTORY_COLUMNS} FROM pl_inventories WHERE resource_provider_uuid IN "
    ));
    sql.bind_list(uuids.iter().map(String::as_str));
    sql.push(lock(tx.engine()));
    let rows: Vec<InventoryRow> = tx.fetch_all(&sql).await?;
    collect_inventories(rows)
}

fn collect_inventories(
    rows: Vec<InventoryRow>,
) -> Result<BTreeMap<String, BTreeMap<String, Inventory>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Inventory>> = BTreeMap::new();
    for row in rows {
        let (rp, inv) = row.into_inventory()?;
        out.entry(rp)
            .or_default()
            .insert(inv.resource_class.clone(), inv);
    }
    Ok(out)
}

/// Inserts or replaces one inventory record.
pub async fn inventory_write(
    ex: &mut impl Executor,
    rp: &str,
    inv: &Inventory,
    exists: bool,
    now: i64,
) -> Result<()> {
    let sql = if exists {
        Sql::new(
            "UPDATE pl_inventories SET total = ?, reserved = ?, min_unit = ?, max_unit = ?, \
             step_size = ?, allocation_ratio = ?, updated_at = ? \
             WHERE resource_provider_uuid = ? AND resource_class = ?",
        )
        .arg(inv.total)
        .arg(inv.reserved)
        .arg(inv.min_unit)
        .arg(inv.max_unit)
        .arg(inv.step_size)
        .arg(inv.allocation_ratio.to_string())
        .arg(now)
        .arg(rp)
        .arg(&inv.resource_class)
    } else {
        Sql::new(&format!(
            "INSERT INTO pl_inventories ({INVENTORY_COLUMNS}, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(rp)
        .arg(&inv.resource_class)
        .arg(inv.total)
        .arg(inv.reserved)
        .arg(inv.min_unit)
        .arg(inv.max_unit)
        .arg(inv.step_size)
        .arg(inv.allocation_ratio.to_string())
        .arg(now)
        .arg(now)
    };
    ex.execute(&sql).await?;
    Ok(())
}

pub async fn inventory_delete(ex: &mut impl Executor, rp: &str, rc: &str) -> Result<()> {
    ex.execute(
        &Sql::new(
            "DELETE FROM pl_inventories WHERE resource_provider_uuid = ? AND resource_class = ?",
        )
        .arg(rp)
        .arg(rc),
    )
    .await?;
    Ok(())
}

/// One allocation row.
#[derive(FromRow, Clone, Debug)]
pub struct AllocationRow {
    pub consumer_uuid: String,
    pub resource_provider_uuid: String,
    pub resource_class: String,
    pub used: i64,
    pub created_at: i64,
}

const ALLOCATION_COLUMNS: &str =
    "consumer_uuid, resource_provider_uuid, resource_class, used, created_at";

/// Allocations against providers `uuids` (every allocation when `None`).
pub async fn allocations_on(
    ex: &mut impl Executor,
    uuids: Option<&BTreeSet<String>>,
) -> Result<Vec<AllocationRow>> {
    let mut sql = Sql::new(&format!("SELECT {ALLOCATION_COLUMNS} FROM pl_allocations"));
    if let Some(uuids) = uuids {
        sql.push(" WHERE resource_provider_uuid IN ");
        sql.bind_list(uuids.iter().map(String::as_str));
    }
    Ok(ex.fetch_all(&sql).await?)
}

/// Allocations against locked providers, read with a lock.
pub async fn allocations_on_locked(
    tx: &mut Tx,
    uuids: &BTreeSet<String>,
) -> Result<Vec<AllocationRow>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {ALLOCATION_COLUMNS} FROM pl_allocations WHERE resource_provider_uuid IN "
    ));
    sql.bind_list(uuids.iter().map(String::as_str));
    sql.push(lock(tx.engine()));
    Ok(tx.fetch_all(&sql).await?)
}

/// The allocations of consumer `uuid`.
pub async fn allocations_of(ex: &mut impl Executor, consumer: &str) -> Result<Vec<AllocationRow>> {
    Ok(ex
        .fetch_all(
            &Sql::new(&format!(
                "SELECT {ALLOCATION_COLUMNS} FROM pl_allocations WHERE consumer_uuid = ? \
                 ORDER BY resource_provider_uuid, resource_class"
            ))
            .arg(consumer),
        )
        .await?)
}

pub async fn allocations_delete_of(ex: &mut impl Executor, consumer: &str) -> Result<u64> {
    Ok(ex
        .execute(&Sql::new("DELETE FROM pl_allocations WHERE consumer_uuid = ?").arg(consumer))
        .await?)
}

pub async fn allocation_insert(
    ex: &mut impl Executor,
    consumer: &str,
    rp: &str,
    rc: &str,
    used: i64,
    now: i64,
) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO pl_allocations ({ALLOCATION_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .arg(consumer)
        .arg(rp)
        .arg(rc)
        .arg(used)
        .arg(now)
        .arg(now),
    )
    .await?;
    Ok(())
}

/// Whether any allocation uses class `rc` on provider `rp` (any provider when `None`).
pub async fn allocations_exist(
    ex: &mut impl Executor,
    rp: Option<&str>,
    rcs: Option<&BTreeSet<String>>,
) -> Result<BTreeSet<String>> {
    #[derive(FromRow)]
    struct Rc {
        resource_class: String,
    }
    let mut sql = Sql::new("SELECT DISTINCT resource_class FROM pl_allocations WHERE 1 = 1");
    if let Some(rp) = rp {
        sql.push(" AND resource_provider_uuid = ").bind(rp);
    }
    if let Some(rcs) = rcs {
        sql.push(" AND resource_class IN ");
        sql.bind_list(rcs.iter().map(String::as_str));
    }
    let rows: Vec<Rc> = ex.fetch_all(&sql).await?;
    Ok(rows.into_iter().map(|r| r.resource_class).collect())
}

/// A consumer record.
#[derive(FromRow, Clone, Debug)]
pub struct ConsumerRow {
    pub uuid: String,
    pub project_id: String,
    pub user_id: String,
    pub consumer_type: Option<String>,
    pub generation: i64,
}

impl ConsumerRow {
    pub fn info(&self) -> ConsumerInfo {
        ConsumerInfo {
            project_id: self.project_id.clone(),
            user_id: self.user_id.clone(),
            consumer_type: self.consumer_type.clone(),
        }
    }
}

const CONSUMER_COLUMNS: &str = "uuid, project_id, user_id, consumer_type, generation";

pub async fn consumer_get(ex: &mut impl Executor, uuid: &str) -> Result<Option<ConsumerRow>> {
    Ok(ex
        .fetch_optional(
            &Sql::new(&format!(
                "SELECT {CONSUMER_COLUMNS} FROM pl_consumers WHERE uuid = ?"
            ))
            .arg(uuid),
        )
        .await?)
}

/// Consumers `uuids`, by uuid.
pub async fn consumers_get(
    ex: &mut impl Executor,
    uuids: &BTreeSet<String>,
) -> Result<BTreeMap<String, ConsumerRow>> {
    if uuids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {CONSUMER_COLUMNS} FROM pl_consumers WHERE uuid IN "
    ));
    sql.bind_list(uuids.iter().map(String::as_str));
    let rows: Vec<ConsumerRow> = ex.fetch_all(&sql).await?;
    Ok(rows.into_iter().map(|r| (r.uuid.clone(), r)).collect())
}

/// Creates consumer `uuid` at generation 0 unless it exists (without failing the
/// transaction on PostgreSQL), then locks and returns it with whether it was created.
pub async fn consumer_ensure_locked(
    tx: &mut Tx,
    uuid: &str,
    info: &ConsumerInfo,
    now: i64,
) -> Result<(ConsumerRow, bool)> {
    let insert = match tx.engine() {
        Engine::MySql => "INSERT IGNORE INTO pl_consumers",
        Engine::Sqlite | Engine::Postgres => "INSERT INTO pl_consumers",
    };
    let conflict = match tx.engine() {
        Engine::MySql => "",
        Engine::Sqlite | Engine::Postgres => " ON CONFLICT (uuid) DO NOTHING",
    };
    let created = tx
        .execute(
            &Sql::new(&format!(
                "{insert} ({CONSUMER_COLUMNS}, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, 0, ?, ?){conflict}"
            ))
            .arg(uuid)
            .arg(&info.project_id)
            .arg(&info.user_id)
            .arg(info.consumer_type.as_ref())
            .arg(now)
            .arg(now),
        )
        .await?
        == 1;
    let sql = Sql::new(&format!(
        "SELECT {CONSUMER_COLUMNS} FROM pl_consumers WHERE uuid = ?{}",
        lock(tx.engine())
    ))
    .arg(uuid);
    let row: Option<ConsumerRow> = tx.fetch_optional(&sql).await?;
    let row = row.ok_or_else(|| {
        crate::model::PlacementError::internal(format!("consumer {uuid} vanished"))
    })?;
    Ok((row, created))
}

/// Locks consumer `uuid` if it exists.
pub async fn consumer_lock(tx: &mut Tx, uuid: &str) -> Result<Option<ConsumerRow>> {
    let sql = Sql::new(&format!(
        "SELECT {CONSUMER_COLUMNS} FROM pl_consumers WHERE uuid = ?{}",
        lock(tx.engine())
    ))
    .arg(uuid);
    Ok(tx.fetch_optional(&sql).await?)
}

pub async fn consumer_update_info(
    ex: &mut impl Executor,
    uuid: &str,
    info: &ConsumerInfo,
    now: i64,
) -> Result<()> {
    ex.execute(
        &Sql::new(
            "UPDATE pl_consumers SET project_id = ?, user_id = ?, consumer_type = ?, updated_at = ? \
             WHERE uuid = ?",
        )
        .arg(&info.project_id)
        .arg(&info.user_id)
        .arg(info.consumer_type.as_ref())
        .arg(now)
        .arg(uuid),
    )
    .await?;
    Ok(())
}

/// Compare-and-swap on the consumer generation.
pub async fn consumer_bump_generation(
    ex: &mut impl Executor,
    uuid: &str,
    expected: i64,
    now: i64,
) -> Result<bool> {
    let n = ex
        .execute(
            &Sql::new(
                "UPDATE pl_consumers SET generation = generation + 1, updated_at = ? \
                 WHERE uuid = ? AND generation = ?",
            )
            .arg(now)
            .arg(uuid)
            .arg(expected),
        )
        .await?;
    Ok(n == 1)
}

pub async fn consumer_delete(ex: &mut impl Executor, uuid: &str) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM pl_consumers WHERE uuid = ?").arg(uuid))
        .await?;
    Ok(())
}

/// Allocations of the consumers of `project_id` (and `user_id`), with each consumer's
/// type: the rows `GET /usages` sums.
pub async fn project_allocations(
    ex: &mut impl Executor,
    project_id: &str,
    user_id: Option<&str>,
) -> Result<Vec<(AllocationRow, Option<String>)>> {
    #[derive(FromRow)]
    struct Row {
        consumer_uuid: String,
        resource_provider_uuid: String,
        resource_class: String,
        used: i64,
        created_at: i64,
        consumer_type: Option<String>,
    }
    let mut sql = Sql::new(
        "SELECT a.consumer_uuid, a.resource_provider_uuid, a.resource_class, a.used, \
         a.created_at, c.consumer_type FROM pl_allocations a \
         JOIN pl_consumers c ON c.uuid = a.consumer_uuid WHERE c.project_id = ",
    );
    sql.bind(project_id);
    if let Some(user) = user_id {
        sql.push(" AND c.user_id = ").bind(user);
    }
    let rows: Vec<Row> = ex.fetch_all(&sql).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                AllocationRow {
                    consumer_uuid: r.consumer_uuid,
                    resource_provider_uuid: r.resource_provider_uuid,
                    resource_class: r.resource_class,
                    used: r.used,
                    created_at: r.created_at,
                },
                r.consumer_type,
            )
        })
        .collect())
}

#[derive(FromRow)]
struct NameRow {
    name: String,
    updated_at: i64,
}

/// Custom resource classes with their last change.
pub async fn custom_classes(ex: &mut impl Executor) -> Result<Vec<(String, i64)>> {
    let rows: Vec<NameRow> = ex
        .fetch_all(&Sql::new(
            "SELECT name, updated_at FROM pl_resource_classes ORDER BY name",
        ))
        .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.updated_at)).collect())
}

pub async fn custom_class_get(ex: &mut impl Executor, name: &str) -> Result<Option<i64>> {
    let row: Option<NameRow> = ex
        .fetch_optional(
            &Sql::new("SELECT name, updated_at FROM pl_resource_classes WHERE name = ?").arg(name),
        )
        .await?;
    Ok(row.map(|r| r.updated_at))
}

pub async fn custom_class_insert(ex: &mut impl Executor, name: &str, now: i64) -> Result<()> {
    ex.execute(
        &Sql::new(
            "INSERT INTO pl_resource_classes (name, created_at, updated_at) VALUES (?, ?, ?)",
        )
        .arg(name)
        .arg(now)
        .arg(now),
    )
    .await?;
    Ok(())
}

pub async fn custom_class_delete(ex: &mut impl Executor, name: &str) -> Result<bool> {
    Ok(ex
        .execute(&Sql::new("DELETE FROM pl_resource_classes WHERE name = ?").arg(name))
        .await?
        == 1)
}

/// Renames a custom class everywhere it is used.
pub async fn custom_class_rename(
    ex: &mut impl Executor,
    from: &str,
    to: &str,
    now: i64,
) -> Result<()> {
    ex.execute(
        &Sql::new("UPDATE pl_resource_classes SET name = ?, updated_at = ? WHERE name = ?")
            .arg(to)
            .arg(now)
            .arg(from),
    )
    .await?;
    for table in ["pl_inventories", "pl_allocations"] {
        ex.execute(
            &Sql::new(&format!(
                "UPDATE {table} SET resource_class = ? WHERE resource_class = ?"
            ))
            .arg(to)
            .arg(from),
        )
        .await?;
    }
    Ok(())
}

/// Whether any inventory is of class `name`.
pub async fn class_in_inventory(ex: &mut impl Executor, name: &str) -> Result<bool> {
    #[derive(FromRow)]
    struct Rp {
        resource_provider_uuid: String,
    }
    let row: Option<Rp> = ex
        .fetch_optional(
            &Sql::new("SELECT resource_provider_uuid FROM pl_inventories WHERE resource_class = ?")
                .arg(name),
        )
        .await?;
    Ok(row.map(|r| r.resource_provider_uuid).is_some())
}

/// Custom traits with their last change.
pub async fn custom_traits(ex: &mut impl Executor) -> Result<Vec<(String, i64)>> {
    let rows: Vec<NameRow> = ex
        .fetch_all(&Sql::new(
            "SELECT name, updated_at FROM pl_traits ORDER BY name",
        ))
        .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.updated_at)).collect())
}

pub async fn custom_trait_get(ex: &mut impl Executor, name: &str) -> Result<Option<i64>> {
    let row: Option<NameRow> = ex
        .fetch_optional(
            &Sql::new("SELECT name, updated_at FROM pl_traits WHERE name = ?").arg(name),
        )
        .await?;
    Ok(row.map(|r| r.updated_at))
}

pub async fn custom_trait_insert(ex: &mut impl Executor, name: &str, now: i64) -> Result<()> {
    ex.execute(
        &Sql::new("INSERT INTO pl_traits (name, created_at, updated_at) VALUES (?, ?, ?)")
            .arg(name)
            .arg(now)
            .arg(now),
    )
    .await?;
    Ok(())
}

pub async fn custom_trait_delete(ex: &mut impl Executor, name: &str) -> Result<bool> {
    Ok(ex
        .execute(&Sql::new("DELETE FROM pl_traits WHERE name = ?").arg(name))
        .await?
        == 1)
}

/// `(provider, name)` pairs of a link table (`pl_provider_traits` / `_aggregates`), for
/// providers `uuids` or every provider.
async fn links(
    ex: &mut impl Executor,
    table: &str,
    column: &str,
    uuids: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    #[derive(FromRow)]
    struct Link {
        resource_provider_uuid: String,
        value: String,
    }
    let mut sql = Sql::new(&format!(
        "SELECT resource_provider_uuid, {column} AS value FROM {table}"
    ));
    if let Some(uuids) = uuids {
        sql.push(" WHERE resource_provider_uuid IN ");
        sql.bind_list(uuids.iter().map(String::as_str));
    }
    let rows: Vec<Link> = ex.fetch_all(&sql).await?;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        out.entry(r.resource_provider_uuid)
            .or_default()
            .insert(r.value);
    }
    Ok(out)
}

/// Traits of providers `uuids` (all when `None`), by provider.
pub async fn provider_traits(
    ex: &mut impl Executor,
    uuids: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    links(ex, "pl_provider_traits", "trait", uuids).await
}

/// Aggregates of providers `uuids` (all when `None`), by provider.
pub async fn provider_aggregates(
    ex: &mut impl Executor,
    uuids: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    links(ex, "pl_provider_aggregates", "aggregate_uuid", uuids).await
}

async fn links_replace(
    ex: &mut impl Executor,
    table: &str,
    column: &str,
    rp: &str,
    values: &BTreeSet<String>,
) -> Result<()> {
    ex.execute(
        &Sql::new(&format!(
            "DELETE FROM {table} WHERE resource_provider_uuid = ?"
        ))
        .arg(rp),
    )
    .await?;
    for v in values {
        ex.execute(
            &Sql::new(&format!(
                "INSERT INTO {table} (resource_provider_uuid, {column}) VALUES (?, ?)"
            ))
            .arg(rp)
            .arg(v),
        )
        .await?;
    }
    Ok(())
}

pub async fn provider_traits_replace(
    ex: &mut impl Executor,
    rp: &str,
    traits: &BTreeSet<String>,
) -> Result<()> {
    links_replace(ex, "pl_provider_traits", "trait", rp, traits).await
}

pub async fn provider_aggregates_replace(
    ex: &mut impl Executor,
    rp: &str,
    aggregates: &BTreeSet<String>,
) -> Result<()> {
    links_replace(
        ex,
        "pl_provider_aggregates",
        "aggregate_uuid",
        rp,
        aggregates,
    )
    .await
}

/// Whether any provider carries trait `name`.
pub async fn trait_in_use(ex: &mut impl Executor, name: &str) -> Result<bool> {
    #[derive(FromRow)]
    struct Rp {
        resource_provider_uuid: String,
    }
    let row: Option<Rp> = ex
        .fetch_optional(
            &Sql::new("SELECT resource_provider_uuid FROM pl_provider_traits WHERE trait = ?")
                .arg(name),
        )
        .await?;
    Ok(row.map(|r| r.resource_provider_uuid).is_some())
}
