//! The network service's queries; no SQL lives elsewhere. Resources are stored as their
//! API document beside the columns that constraints and lookups need; every update is a
//! compare-and-swap on `revision`.

use ferro_db::{Executor, Sql};
use serde_json::{Map, Value};

use crate::fault::{NetError, Result};

/// The tables holding one resource kind each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Networks,
    Subnets,
    Ports,
    SecurityGroups,
    SecurityGroupRules,
    Routers,
    FloatingIps,
    SubnetPools,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Networks => "net_networks",
            Table::Subnets => "net_subnets",
            Table::Ports => "net_ports",
            Table::SecurityGroups => "net_security_groups",
            Table::SecurityGroupRules => "net_security_group_rules",
            Table::Routers => "net_routers",
            Table::FloatingIps => "net_floatingips",
            Table::SubnetPools => "net_subnetpools",
        }
    }
}

#[derive(sqlx::FromRow)]
struct DocRow {
    doc: String,
}

#[derive(sqlx::FromRow)]
struct IdRow {
    id: String,
}

#[derive(sqlx::FromRow)]
pub struct Allocation {
    pub ip_address: String,
    pub subnet_id: String,
    pub port_id: String,
}

#[derive(sqlx::FromRow)]
struct SegRow {
    seg_id: i64,
}

fn parse(doc: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(doc) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(NetError::internal("stored document is not a JSON object")),
    }
}

fn text(doc: &Map<String, Value>) -> String {
    Value::Object(doc.clone()).to_string()
}

fn revision(doc: &Map<String, Value>) -> i64 {
    doc.get("revision_number")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// One document by id.
pub async fn get(
    ex: &mut impl Executor,
    table: Table,
    id: &str,
) -> Result<Option<Map<String, Value>>> {
    let sql = Sql::new(&format!("SELECT doc FROM {} WHERE id = ?", table.name())).arg(id);
    ex.fetch_optional::<DocRow>(&sql)
        .await?
        .map(|r| parse(&r.doc))
        .transpose()
}

/// Every document of `table`, optionally only those whose `column` is `value`.
pub async fn list(
    ex: &mut impl Executor,
    table: Table,
    filter: Option<(&str, &str)>,
) -> Result<Vec<Map<String, Value>>> {
    let mut sql = Sql::new(&format!("SELECT doc FROM {}", table.name()));
    if let Some((column, value)) = filter {
        sql.push(&format!(" WHERE {column} = "));
        sql.bind(value);
    }
    sql.push(" ORDER BY id");
    ex.fetch_all::<DocRow>(&sql)
        .await?
        .iter()
        .map(|r| parse(&r.doc))
        .collect()
}

fn str_of<'a>(doc: &'a Map<String, Value>, key: &str) -> &'a str {
    doc.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Inserts a new document with the columns its table keys on.
pub async fn insert(ex: &mut impl Executor, table: Table, doc: &Map<String, Value>) -> Result<()> {
    let id = str_of(doc, "id");
    let project = str_of(doc, "project_id");
    let sql = match table {
        Table::FloatingIps => Sql::new(
            "INSERT INTO net_floatingips (id, project_id, floating_network_id, fixed_port_id, fixed_ip, revision, doc) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(id)
        .arg(project)
        .arg(str_of(doc, "floating_network_id"))
        .arg(doc.get("port_id").and_then(Value::as_str))
        .arg(doc.get("fixed_ip_address").and_then(Value::as_str))
        .arg(revision(doc))
        .arg(text(doc)),
        Table::Networks | Table::SecurityGroups | Table::Routers | Table::SubnetPools => Sql::new(&format!(
            "INSERT INTO {} (id, project_id, revision, doc) VALUES (?, ?, ?, ?)",
            table.name()
        ))
        .arg(id)
        .arg(project)
        .arg(revision(doc))
        .arg(text(doc)),
        Table::Subnets => Sql::new(
            "INSERT INTO net_subnets (id, network_id, project_id, revision, doc) VALUES (?, ?, ?, ?, ?)",
        )
        .arg(id)
        .arg(str_of(doc, "network_id"))
        .arg(project)
        .arg(revision(doc))
        .arg(text(doc)),
        Table::Ports => Sql::new(
            "INSERT INTO net_ports (id, network_id, project_id, mac, device_owner, revision, doc) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(id)
        .arg(str_of(doc, "network_id"))
        .arg(project)
        .arg(str_of(doc, "mac_address"))
        .arg(str_of(doc, "device_owner"))
        .arg(revision(doc))
        .arg(text(doc)),
        Table::SecurityGroupRules => Sql::new(
            "INSERT INTO net_security_group_rules (id, security_group_id, project_id, rule_key, revision, doc) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .arg(id)
        .arg(str_of(doc, "security_group_id"))
        .arg(project)
        .arg(crate::model::rule_key(doc))
        .arg(revision(doc))
        .arg(text(doc)),
    };
    ex.execute(&sql).await?;
    Ok(())
}

/// [`update`], with a lost race answered as the retryable conflict that makes the
/// transaction run again.
pub async fn replace(
    ex: &mut impl Executor,
    table: Table,
    doc: &Map<String, Value>,
    expected: i64,
) -> Result<()> {
    if update(ex, table, doc, expected).await? {
        Ok(())
    } else {
        Err(NetError {
            retry: true,
            ..NetError::new(409, "Conflict", "")
        })
    }
}

/// Replaces a document if its stored revision is still `expected`; false when another
/// writer got there first.
pub async fn update(
    ex: &mut impl Executor,
    table: Table,
    doc: &Map<String, Value>,
    expected: i64,
) -> Result<bool> {
    let mut sql = Sql::new(&format!(
        "UPDATE {} SET revision = ?, doc = ?",
        table.name()
    ))
    .arg(revision(doc))
    .arg(text(doc));
    if table == Table::FloatingIps {
        sql.push(", fixed_port_id = ");
        sql.bind(doc.get("port_id").and_then(Value::as_str));
        sql.push(", fixed_ip = ");
        sql.bind(doc.get("fixed_ip_address").and_then(Value::as_str));
    }
    if table == Table::Ports {
        sql.push(", mac = ");
        sql.bind(str_of(doc, "mac_address"));
        sql.push(", device_owner = ");
        sql.bind(str_of(doc, "device_owner"));
    }
    sql.push(" WHERE id = ");
    sql.bind(str_of(doc, "id"));
    sql.push(" AND revision = ");
    sql.bind(expected);
    Ok(ex.execute(&sql).await? == 1)
}

pub async fn delete(ex: &mut impl Executor, table: Table, id: &str) -> Result<bool> {
    let sql = Sql::new(&format!("DELETE FROM {} WHERE id = ?", table.name())).arg(id);
    Ok(ex.execute(&sql).await? > 0)
}

// ---- segments

/// Segment ids of `network_type` on `physnet` already taken.
pub async fn segments_taken(
    ex: &mut impl Executor,
    network_type: &str,
    physnet: &str,
) -> Result<Vec<i64>> {
    let sql = Sql::new(
        "SELECT seg_id FROM net_segments WHERE network_type = ? AND physnet = ? ORDER BY seg_id",
    )
    .arg(network_type)
    .arg(physnet);
    Ok(ex
        .fetch_all::<SegRow>(&sql)
        .await?
        .into_iter()
        .map(|r| r.seg_id)
        .collect())
}

/// Claims a segment; a duplicate key means someone holds it.
pub async fn segment_claim(
    ex: &mut impl Executor,
    network_type: &str,
    physnet: &str,
    seg_id: i64,
    network_id: &str,
) -> Result<()> {
    let sql = Sql::new(
        "INSERT INTO net_segments (network_type, physnet, seg_id, network_id) VALUES (?, ?, ?, ?)",
    )
    .arg(network_type)
    .arg(physnet)
    .arg(seg_id)
    .arg(network_id);
    ex.execute(&sql).await?;
    Ok(())
}

pub async fn segments_release(ex: &mut impl Executor, network_id: &str) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM net_segments WHERE network_id = ?").arg(network_id))
        .await?;
    Ok(())
}

// ---- IP allocations

/// The addresses held in `subnet_id`.
pub async fn subnet_allocations(
    ex: &mut impl Executor,
    subnet_id: &str,
) -> Result<Vec<Allocation>> {
    let sql = Sql::new(
        "SELECT ip_address, subnet_id, port_id FROM net_ip_allocations WHERE subnet_id = ?",
    )
    .arg(subnet_id);
    Ok(ex.fetch_all(&sql).await?)
}

/// Who holds `ip` on `network_id`, if anyone.
pub async fn allocation_of(
    ex: &mut impl Executor,
    network_id: &str,
    ip: &str,
) -> Result<Option<Allocation>> {
    let sql = Sql::new(
        "SELECT ip_address, subnet_id, port_id FROM net_ip_allocations WHERE network_id = ? AND ip_address = ?",
    )
    .arg(network_id)
    .arg(ip);
    Ok(ex.fetch_optional(&sql).await?)
}

/// Records `ip` for `port_id`; the primary key refuses an address held already.
pub async fn allocate(
    ex: &mut impl Executor,
    network_id: &str,
    subnet_id: &str,
    ip: &str,
    port_id: &str,
) -> Result<()> {
    let sql = Sql::new(
        "INSERT INTO net_ip_allocations (network_id, ip_address, subnet_id, port_id) VALUES (?, ?, ?, ?)",
    )
    .arg(network_id)
    .arg(ip)
    .arg(subnet_id)
    .arg(port_id);
    ex.execute(&sql).await?;
    Ok(())
}

/// Returns every address of `port_id`.
pub async fn release_port(ex: &mut impl Executor, port_id: &str) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM net_ip_allocations WHERE port_id = ?").arg(port_id))
        .await?;
    Ok(())
}

// ---- ports and security groups

/// Ports on `network_id` whose owner is not `network:dhcp` (they block network delete).
pub async fn network_ports_in_use(ex: &mut impl Executor, network_id: &str) -> Result<Vec<String>> {
    let sql = Sql::new(
        "SELECT id FROM net_ports WHERE network_id = ? AND device_owner <> 'network:dhcp'",
    )
    .arg(network_id);
    Ok(ex
        .fetch_all::<IdRow>(&sql)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

pub async fn mac_in_use(ex: &mut impl Executor, network_id: &str, mac: &str) -> Result<bool> {
    let sql = Sql::new("SELECT id FROM net_ports WHERE network_id = ? AND mac = ?")
        .arg(network_id)
        .arg(mac);
    Ok(ex.fetch_optional::<IdRow>(&sql).await?.is_some())
}

/// Records the groups of a port, replacing what it had.
pub async fn port_set_groups(
    ex: &mut impl Executor,
    port_id: &str,
    groups: &[String],
) -> Result<()> {
    ex.execute(&Sql::new("DELETE FROM net_port_security_groups WHERE port_id = ?").arg(port_id))
        .await?;
    for g in groups {
        let sql = Sql::new(
            "INSERT INTO net_port_security_groups (port_id, security_group_id) VALUES (?, ?)",
        )
        .arg(port_id)
        .arg(g);
        ex.execute(&sql).await?;
    }
    Ok(())
}

/// Whether any port uses group `id`.
pub async fn group_in_use(ex: &mut impl Executor, id: &str) -> Result<bool> {
    let sql =
        Sql::new("SELECT port_id AS id FROM net_port_security_groups WHERE security_group_id = ?")
            .arg(id);
    Ok(ex.fetch_optional::<IdRow>(&sql).await?.is_some())
}

/// The id of the `default` group of `project_id`, if made.
pub async fn default_group(ex: &mut impl Executor, project_id: &str) -> Result<Option<String>> {
    let sql = Sql::new(
        "SELECT security_group_id AS id FROM net_default_security_groups WHERE project_id = ?",
    )
    .arg(project_id);
    Ok(ex.fetch_optional::<IdRow>(&sql).await?.map(|r| r.id))
}

/// Records the default group of a project; the key makes a concurrent second one fail.
pub async fn default_group_claim(
    ex: &mut impl Executor,
    project_id: &str,
    group_id: &str,
) -> Result<()> {
    let sql = Sql::new(
        "INSERT INTO net_default_security_groups (project_id, security_group_id) VALUES (?, ?)",
    )
    .arg(project_id)
    .arg(group_id);
    ex.execute(&sql).await?;
    Ok(())
}

pub async fn default_group_forget(ex: &mut impl Executor, group_id: &str) -> Result<()> {
    ex.execute(
        &Sql::new("DELETE FROM net_default_security_groups WHERE security_group_id = ?")
            .arg(group_id),
    )
    .await?;
    Ok(())
}

/// The rule with the same meaning already in the group, if any.
pub async fn rule_by_key(
    ex: &mut impl Executor,
    group_id: &str,
    key: &str,
) -> Result<Option<String>> {
    let sql = Sql::new(
        "SELECT id FROM net_security_group_rules WHERE security_group_id = ? AND rule_key = ?",
    )
    .arg(group_id)
    .arg(key);
    Ok(ex.fetch_optional::<IdRow>(&sql).await?.map(|r| r.id))
}

pub async fn group_rules_delete(ex: &mut impl Executor, group_id: &str) -> Result<()> {
    ex.execute(
        &Sql::new("DELETE FROM net_security_group_rules WHERE security_group_id = ?").arg(group_id),
    )
    .await?;
    Ok(())
}

/// Takes the network's row lock for the rest of the transaction (a no-op write), so
/// subnet changes on one network run one at a time.
pub async fn lock_network(ex: &mut impl Executor, network_id: &str) -> Result<()> {
    ex.execute(
        &Sql::new("UPDATE net_networks SET revision = revision WHERE id = ?").arg(network_id),
    )
    .await?;
    Ok(())
}

/// The floating IP on `port_id`'s `fixed_ip`, if any.
pub async fn floatingip_for(
    ex: &mut impl Executor,
    port_id: &str,
    fixed_ip: &str,
) -> Result<Option<String>> {
    let sql = Sql::new("SELECT id FROM net_floatingips WHERE fixed_port_id = ? AND fixed_ip = ?")
        .arg(port_id)
        .arg(fixed_ip);
    Ok(ex.fetch_optional::<IdRow>(&sql).await?.map(|r| r.id))
}

/// Floating IPs associated with `port_id`.
pub async fn floatingips_of_port(
    ex: &mut impl Executor,
    port_id: &str,
) -> Result<Vec<Map<String, Value>>> {
    let sql = Sql::new("SELECT doc FROM net_floatingips WHERE fixed_port_id = ?").arg(port_id);
    ex.fetch_all::<DocRow>(&sql)
        .await?
        .iter()
        .map(|r| parse(&r.doc))
        .collect()
}

/// Ports of `device_id` owned by `device_owner`.
pub async fn device_ports(
    ex: &mut impl Executor,
    device_id: &str,
    device_owner: &str,
) -> Result<Vec<Map<String, Value>>> {
    let sql =
        Sql::new("SELECT doc FROM net_ports WHERE device_owner = ? ORDER BY id").arg(device_owner);
    Ok(ex
        .fetch_all::<DocRow>(&sql)
        .await?
        .iter()
        .map(|r| parse(&r.doc))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|p| p.get("device_id").and_then(Value::as_str) == Some(device_id))
        .collect())
}
