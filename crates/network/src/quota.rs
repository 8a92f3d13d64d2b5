//! Neutron's quotas (the `quotas` and `quota_details` extensions): per-project limits on
//! networks, subnets, ports, routers, floating IPs, security groups and rules, checked
//! inside the creating transaction.
// TODO-correctness: two concurrent creates may both pass the count on PostgreSQL and
// MariaDB (read committed) and overshoot a limit by one; upstream reserves first.

use ferro_common::RequestContext;
use ferro_db::{Executor, Sql};
use serde_json::{Map, Value, json};

use crate::db::Table;
use crate::fault::{NetError, Result};
use crate::manager::Networking;

/// Upstream's default limits (neutron/conf/quota.py); -1 is unlimited.
pub const DEFAULTS: &[(&str, i64)] = &[
    ("network", 100),
    ("subnet", 100),
    ("port", 500),
    ("router", 10),
    ("floatingip", 50),
    ("security_group", 10),
    ("security_group_rule", 100),
    ("rbac_policy", 10),
    ("subnetpool", -1),
];

/// The table counted for a resource, where this service has one.
fn table(resource: &str) -> Option<&'static str> {
    Some(match resource {
        "network" => "net_networks",
        "subnet" => "net_subnets",
        "port" => "net_ports",
        "router" => "net_routers",
        "floatingip" => "net_floatingips",
        "security_group" => "net_security_groups",
        "security_group_rule" => "net_security_group_rules",
        _ => return None,
    })
}

pub fn resource_of(t: Table) -> &'static str {
    match t {
        Table::Networks => "network",
        Table::Subnets => "subnet",
        Table::Ports => "port",
        Table::Routers => "router",
        Table::FloatingIps => "floatingip",
        Table::SecurityGroups => "security_group",
        Table::SecurityGroupRules => "security_group_rule",
        Table::SubnetPools => "subnetpool",
    }
}

#[derive(sqlx::FromRow)]
struct Count {
    n: i64,
}

#[derive(sqlx::FromRow)]
struct Limit {
    resource: String,
    hard_limit: i64,
}

#[derive(sqlx::FromRow)]
struct ProjectRow {
    project_id: String,
}

async fn used(ex: &mut impl Executor, resource: &str, project: &str) -> Result<i64> {
    let Some(t) = table(resource) else {
        return Ok(0);
    };
    let sql = Sql::new(&format!(
        "SELECT COUNT(*) AS n FROM {t} WHERE project_id = ?"
    ))
    .arg(project);
    Ok(ex.fetch_optional::<Count>(&sql).await?.map_or(0, |c| c.n))
}

/// The limits in effect for `project`.
pub async fn limits(ex: &mut impl Executor, project: &str) -> Result<Map<String, Value>> {
    let mut out: Map<String, Value> = DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let sql =
        Sql::new("SELECT resource, hard_limit FROM net_quotas WHERE project_id = ?").arg(project);
    for l in ex.fetch_all::<Limit>(&sql).await? {
        out.insert(l.resource, json!(l.hard_limit));
    }
    Ok(out)
}

/// Refuses one more `t` for `project` when its quota is used up (`OverQuota`, 409).
pub async fn check(ex: &mut impl Executor, t: Table, project: &str) -> Result<()> {
    let resource = resource_of(t);
    let sql = Sql::new(
        "SELECT resource, hard_limit FROM net_quotas WHERE project_id = ? AND resource = ?",
    )
    .arg(project)
    .arg(resource);
    let limit = match ex.fetch_optional::<Limit>(&sql).await? {
        Some(l) => l.hard_limit,
        None => DEFAULTS
            .iter()
            .find(|(k, _)| *k == resource)
            .map_or(-1, |(_, v)| *v),
    };
    if limit >= 0 && used(ex, resource, project).await? >= limit {
        return Err(NetError::conflict(
            "OverQuota",
            format!("Quota exceeded for resources: ['{resource}']."),
        ));
    }
    Ok(())
}

fn with_project(mut m: Map<String, Value>, project: &str) -> Value {
    m.insert("project_id".into(), json!(project));
    m.insert("tenant_id".into(), json!(project));
    Value::Object(m)
}

impl Networking {
    fn quota_target(project: &str) -> Value {
        json!({"project_id": project, "tenant_id": project})
    }

    pub async fn quota_list(&self, ctx: &RequestContext) -> Result<Value> {
        self.authorize(ctx, "get_quota", &json!({}))?;
        let rows: Vec<ProjectRow> = self
            .db
            .fetch_all(&Sql::new(
                "SELECT DISTINCT project_id FROM net_quotas ORDER BY project_id",
            ))
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let l = limits(&mut &self.db, &r.project_id).await?;
            out.push(with_project(l, &r.project_id));
        }
        Ok(json!({"quotas": out}))
    }

    pub async fn quota_show(&self, ctx: &RequestContext, project: &str) -> Result<Value> {
        self.authorize(ctx, "get_quota", &Self::quota_target(project))?;
        Ok(json!({"quota": limits(&mut &self.db, project).await?}))
    }

    pub async fn quota_defaults(&self, ctx: &RequestContext, project: &str) -> Result<Value> {
        self.authorize(ctx, "get_quota", &Self::quota_target(project))?;
        let m: Map<String, Value> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        Ok(json!({"quota": m}))
    }

    pub async fn quota_details(&self, ctx: &RequestContext, project: &str) -> Result<Value> {
        self.authorize(ctx, "get_quota", &Self::quota_target(project))?;
        let mut out = Map::new();
        for (k, v) in limits(&mut &self.db, project).await? {
            let used = used(&mut &self.db, &k, project).await?;
            out.insert(k, json!({"limit": v, "used": used, "reserved": 0}));
        }
        Ok(json!({"quota": out}))
    }

    pub async fn quota_update(
        &self,
        ctx: &RequestContext,
        project: &str,
        body: &Value,
    ) -> Result<Value> {
        self.authorize(ctx, "update_quota", &Self::quota_target(project))?;
        let Some(Value::Object(q)) = body.get("quota") else {
            return Err(NetError::bad_request(
                "HTTPBadRequest",
                "Resource body required: the body must contain 'quota'",
            ));
        };
        let mut changes = Vec::new();
        for (k, v) in q {
            if !DEFAULTS.iter().any(|(r, _)| r == k) {
                return Err(NetError::bad_request(
                    "HTTPBadRequest",
                    format!("Unrecognized attribute(s) '{k}'"),
                ));
            }
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|n| *n >= -1)
                .ok_or_else(|| NetError::invalid(format!("'{v}' is not a valid quota limit")))?;
            changes.push((k.clone(), n));
        }
        let mut tx = self.db.begin().await?;
        for (k, n) in &changes {
            tx.execute(
                &Sql::new("DELETE FROM net_quotas WHERE project_id = ? AND resource = ?")
                    .arg(project)
                    .arg(k),
            )
            .await?;
            tx.execute(
                &Sql::new(
                    "INSERT INTO net_quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)",
                )
                .arg(project)
                .arg(k)
                .arg(*n),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(json!({"quota": limits(&mut &self.db, project).await?}))
    }

    pub async fn quota_delete(&self, ctx: &RequestContext, project: &str) -> Result<()> {
        self.authorize(ctx, "delete_quota", &Self::quota_target(project))?;
        self.db
            .execute(&Sql::new("DELETE FROM net_quotas WHERE project_id = ?").arg(project))
            .await?;
        Ok(())
    }
}
