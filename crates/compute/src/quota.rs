//! Nova's quotas (the `DbQuotaDriver`, nova/quota.py): the resources, their defaults, how a
//! limit is found (user row, else project row, else the `default` quota class, else the
//! configured default), what is in use, which values an update may set, and the
//! check-and-consume step of every create that counts against a quota.
//!
//! Consuming is atomic: [`Quotas::check_deltas`] runs inside the caller's transaction, after
//! taking the row lock of the scope it counts (`nv_quota_locks`), so two concurrent creates
//! in one project or for one user are serialised between their count and their insert. A
//! server create (next slice) does: `begin`, `check_deltas(instances+1, cores+n, ram+m)`,
//! insert the instance, `commit`; [`count_servers`] is where it adds its count.
//!
//! It must not decide policy or shape API answers; the manager and API do.

use std::collections::BTreeMap;

use ferro_common::Result;
use ferro_db::{Db, Executor};

use crate::db;
use crate::microversion::ApiVersion;

/// A quota resource, in upstream's (sorted) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Cores,
    FixedIps,
    FloatingIps,
    InjectedFileContentBytes,
    InjectedFilePathBytes,
    InjectedFiles,
    Instances,
    KeyPairs,
    MetadataItems,
    Ram,
    SecurityGroupRules,
    SecurityGroups,
    ServerGroupMembers,
    ServerGroups,
}

impl Resource {
    /// Every resource, sorted by name as upstream's `QUOTAS.resources`.
    pub const ALL: [Resource; 14] = [
        Resource::Cores,
        Resource::FixedIps,
        Resource::FloatingIps,
        Resource::InjectedFileContentBytes,
        Resource::InjectedFilePathBytes,
        Resource::InjectedFiles,
        Resource::Instances,
        Resource::KeyPairs,
        Resource::MetadataItems,
        Resource::Ram,
        Resource::SecurityGroupRules,
        Resource::SecurityGroups,
        Resource::ServerGroupMembers,
        Resource::ServerGroups,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Cores => "cores",
            Resource::FixedIps => "fixed_ips",
            Resource::FloatingIps => "floating_ips",
            Resource::InjectedFileContentBytes => "injected_file_content_bytes",
            Resource::InjectedFilePathBytes => "injected_file_path_bytes",
            Resource::InjectedFiles => "injected_files",
            Resource::Instances => "instances",
            Resource::KeyPairs => "key_pairs",
            Resource::MetadataItems => "metadata_items",
            Resource::Ram => "ram",
            Resource::SecurityGroupRules => "security_group_rules",
            Resource::SecurityGroups => "security_groups",
            Resource::ServerGroupMembers => "server_group_members",
            Resource::ServerGroups => "server_groups",
        }
    }

    pub fn parse(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The nova-network era resources, hidden from 2.36 (quota sets) or 2.50 (classes).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            Resource::FixedIps
                | Resource::FloatingIps
                | Resource::SecurityGroups
                | Resource::SecurityGroupRules
        )
    }

    /// The personality-file resources, hidden from 2.57.
    pub fn is_injected(self) -> bool {
        matches!(
            self,
            Resource::InjectedFiles
                | Resource::InjectedFileContentBytes
                | Resource::InjectedFilePathBytes
        )
    }

    /// Whether the resource appears at `v`, network ones being dropped at `network_removed`.
    pub fn visible(self, v: ApiVersion, network_removed: (u32, u32)) -> bool {
        !(self.is_network() && v.at_least(network_removed.0, network_removed.1)
            || self.is_injected() && v.at_least(2, 57))
    }
}

/// Configured default limits (nova.conf `[quota]`), -1 meaning unlimited.
#[derive(Clone, Debug)]
pub struct QuotaDefaults {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
    pub metadata_items: i64,
    pub injected_files: i64,
    pub injected_file_content_bytes: i64,
    pub injected_file_path_length: i64,
    pub key_pairs: i64,
    pub server_groups: i64,
    pub server_group_members: i64,
}

impl Default for QuotaDefaults {
    /// Upstream's defaults (nova/conf/quota.py).
    fn default() -> Self {
        QuotaDefaults {
            instances: 10,
            cores: 20,
            ram: 50 * 1024,
            metadata_items: 128,
            injected_files: 5,
            injected_file_content_bytes: 10 * 1024,
            injected_file_path_length: 255,
            key_pairs: 100,
            server_groups: 10,
            server_group_members: 10,
        }
    }
}

impl QuotaDefaults {
    /// The configured default of `r`; the network resources have none (-1).
    pub fn of(&self, r: Resource) -> i64 {
        match r {
            Resource::Cores => self.cores,
            Resource::Instances => self.instances,
            Resource::Ram => self.ram,
            Resource::MetadataItems => self.metadata_items,
            Resource::InjectedFiles => self.injected_files,
            Resource::InjectedFileContentBytes => self.injected_file_content_bytes,
            Resource::InjectedFilePathBytes => self.injected_file_path_length,
            Resource::KeyPairs => self.key_pairs,
            Resource::ServerGroups => self.server_groups,
            Resource::ServerGroupMembers => self.server_group_members,
            Resource::FixedIps
            | Resource::FloatingIps
            | Resource::SecurityGroups
            | Resource::SecurityGroupRules => -1,
        }
    }
}

/// A limit per resource.
pub type Limits = BTreeMap<Resource, i64>;

/// The class whose limits stand in for the configured defaults.
pub const DEFAULT_CLASS: &str = "default";

/// A limit, its usage and the range an update may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detail {
    pub limit: i64,
    pub in_use: i64,
}

/// Resources over their limit after a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverQuota {
    /// Sorted by name, as upstream's `overs`.
    pub overs: Vec<Resource>,
    /// `project` or `user`: whose limit was exceeded.
    pub scope: &'static str,
}

/// Counts of what a project (and one of its users) has now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
    pub server_groups: i64,
}

impl Usage {
    fn of(&self, r: Resource) -> Option<i64> {
        match r {
            Resource::Instances => Some(self.instances),
            Resource::Cores => Some(self.cores),
            Resource::Ram => Some(self.ram),
            Resource::ServerGroups => Some(self.server_groups),
            _ => None,
        }
    }
}

/// Instances, cores and RAM of `project` (and of `user` in it), counted from the servers
/// table, and the server groups.
/// Counted from the non-deleted rows of `nv_instances` (upstream
/// `_instances_cores_ram_count_legacy`).
pub async fn count_servers(
    ex: &mut impl Executor,
    project: &str,
    user: Option<&str>,
) -> Result<Usage> {
    let (instances, cores, ram) = db::instance_usage(ex, project, user).await?;
    Ok(Usage {
        instances,
        cores,
        ram,
        server_groups: db::group_count(ex, project).await?,
    })
}

/// The quota engine over the database, with the configured defaults.
#[derive(Clone, Debug, Default)]
pub struct Quotas {
    pub defaults: QuotaDefaults,
}

fn overlay(base: &mut Limits, rows: &BTreeMap<String, i64>) {
    for (name, limit) in rows {
        if let Some(r) = Resource::parse(name) {
            base.insert(r, *limit);
        }
    }
}

fn unlimited(v: i64) -> bool {
    v <= -1
}

impl Quotas {
    fn configured(&self) -> Limits {
        Resource::ALL
            .into_iter()
            .map(|r| (r, self.defaults.of(r)))
            .collect()
    }

    /// `get_defaults`: the configured defaults overridden by the `default` class.
    pub async fn defaults(&self, ex: &mut impl Executor) -> Result<Limits> {
        let mut l = self.configured();
        overlay(&mut l, &db::quota_class_limits(ex, DEFAULT_CLASS).await?);
        Ok(l)
    }

    /// `get_class_quotas`: a class's limits, the configured defaults where it sets none.
    pub async fn class(&self, ex: &mut impl Executor, class: &str) -> Result<Limits> {
        let mut l = self.configured();
        overlay(&mut l, &db::quota_class_limits(ex, class).await?);
        Ok(l)
    }

    /// A project's limits.
    pub async fn project(&self, ex: &mut impl Executor, project: &str) -> Result<Limits> {
        let mut l = self.defaults(ex).await?;
        overlay(&mut l, &db::quota_limits(ex, project, "").await?);
        Ok(l)
    }

    /// A user's limits in a project: theirs, else the project's.
    pub async fn user(&self, ex: &mut impl Executor, project: &str, user: &str) -> Result<Limits> {
        let mut l = self.project(ex, project).await?;
        overlay(&mut l, &db::quota_limits(ex, project, user).await?);
        Ok(l)
    }

    /// Limits with what is in use, as the quota `detail` view and `/limits` show them. Key
    /// pairs and server group members always show 0 in use (upstream `_get_usages`).
    pub async fn detail(
        &self,
        ex: &mut impl Executor,
        project: &str,
        user: Option<&str>,
    ) -> Result<BTreeMap<Resource, Detail>> {
        let limits = match user {
            Some(u) => self.user(ex, project, u).await?,
            None => self.project(ex, project).await?,
        };
        let usage = count_servers(ex, project, user).await?;
        Ok(limits
            .into_iter()
            .map(|(r, limit)| {
                let in_use = usage.of(r).unwrap_or(0);
                (r, Detail { limit, in_use })
            })
            .collect())
    }

    /// `get_settable_quotas`: the `(minimum, maximum)` an update may set per resource, -1
    /// meaning no maximum.
    pub async fn settable(
        &self,
        ex: &mut impl Executor,
        project: &str,
        user: Option<&str>,
    ) -> Result<BTreeMap<Resource, (i64, i64)>> {
        let project_detail = self.detail(ex, project, None).await?;
        // What the project has left to hand out once its users' own limits are taken.
        let mut remains: Limits = project_detail.iter().map(|(r, d)| (*r, d.limit)).collect();
        for (_, name, limit) in db::quota_user_limits_in_project(ex, project).await? {
            if let Some(r) = Resource::parse(&name)
                && let Some(v) = remains.get_mut(&r)
            {
                *v -= limit;
            }
        }
        let mut out = BTreeMap::new();
        match user {
            Some(u) => {
                let set = db::quota_limits(ex, project, u).await?;
                let user_detail = self.detail(ex, project, Some(u)).await?;
                for (r, d) in user_detail {
                    let left = remains.get(&r).copied().unwrap_or(-1);
                    let own = set.get(r.name()).copied().unwrap_or(0);
                    let maximum = if unlimited(left) || unlimited(own) {
                        -1
                    } else {
                        left + own
                    };
                    out.insert(r, (d.in_use, maximum));
                }
            }
            None => {
                for (r, d) in project_detail {
                    let left = remains.get(&r).copied().unwrap_or(-1);
                    let handed_out = if unlimited(d.limit) || unlimited(left) {
                        -1
                    } else {
                        d.limit - left
                    };
                    out.insert(r, (handed_out.max(d.in_use), -1));
                }
            }
        }
        Ok(out)
    }

    /// Creates the lock rows [`Quotas::check_deltas`] takes; call before `begin`.
    pub async fn prepare(&self, db: &Db, project: &str, user: &str) -> Result<()> {
        db::quota_lock_ensure(db, &scope_key("project", project)).await?;
        db::quota_lock_ensure(db, &scope_key("user", user)).await
    }

    /// `check_deltas`: whether adding `deltas` keeps `project` and `user` within their
    /// limits, counted and checked under the scopes' row locks inside transaction `tx` (so
    /// the caller's insert that follows is covered). Key pairs count per user against the
    /// smaller of the user's and the project's limit; the server resources count both per
    /// project and per user.
    /// Upstream's words for `over` (exceeded by `deltas` of `user` in `project`):
    /// "Quota exceeded for cores: Requested 24, but already used 0 of 20 cores".
    pub async fn over_message(
        &self,
        tx: &mut impl Executor,
        project: &str,
        user: &str,
        over: &OverQuota,
        deltas: &[(Resource, i64)],
    ) -> Result<String> {
        let detail = self
            .detail(tx, project, (over.scope == "user").then_some(user))
            .await?;
        let r = over.overs[0];
        let requested = deltas.iter().find(|(d, _)| *d == r).map_or(0, |d| d.1);
        let d = detail.get(&r).copied().unwrap_or(Detail {
            limit: 0,
            in_use: 0,
        });
        let names: Vec<&str> = over.overs.iter().map(|r| r.name()).collect();
        let names = names.join(", ");
        Ok(format!(
            "Quota exceeded for {names}: Requested {requested}, but already used {} of {} \
             {names}",
            d.in_use, d.limit
        ))
    }

    pub async fn check_deltas(
        &self,
        tx: &mut impl Executor,
        project: &str,
        user: &str,
        deltas: &[(Resource, i64)],
    ) -> Result<Result<(), OverQuota>> {
        db::quota_lock(tx, &scope_key("project", project)).await?;
        db::quota_lock(tx, &scope_key("user", user)).await?;
        let project_limits = self.project(tx, project).await?;
        let mut user_limits = project_limits.clone();
        overlay(
            &mut user_limits,
            &db::quota_limits(tx, project, user).await?,
        );
        let project_usage = count_servers(tx, project, None).await?;
        let user_usage = count_servers(tx, project, Some(user)).await?;
        let mut overs = Vec::new();
        let mut scope = "project";
        for &(r, delta) in deltas {
            let pl = project_limits.get(&r).copied().unwrap_or(-1);
            let ul = user_limits.get(&r).copied().unwrap_or(-1);
            match r {
                Resource::KeyPairs => {
                    let want = db::keypair_count(tx, user).await? + delta;
                    let limit = if unlimited(pl) {
                        ul
                    } else if unlimited(ul) {
                        pl
                    } else {
                        pl.min(ul)
                    };
                    if !unlimited(limit) && limit < want {
                        overs.push(r);
                        scope = "user";
                    }
                }
                other => {
                    let p = project_usage.of(other).unwrap_or(0) + delta;
                    let u = user_usage.of(other).unwrap_or(0) + delta;
                    if !unlimited(pl) && pl < p {
                        overs.push(r);
                    } else if !unlimited(ul) && ul < u {
                        overs.push(r);
                        scope = "user";
                    }
                }
            }
        }
        if overs.is_empty() {
            Ok(Ok(()))
        } else {
            overs.sort();
            Ok(Err(OverQuota { overs, scope }))
        }
    }
}

fn scope_key(kind: &str, id: &str) -> String {
    format!("{kind}:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_sorted_and_named() {
        let names: Vec<&str> = Resource::ALL.iter().map(|r| r.name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(Resource::parse("key_pairs"), Some(Resource::KeyPairs));
        assert_eq!(Resource::parse("networks"), None);
    }

    #[test]
    fn visibility_per_microversion() {
        let v = ApiVersion::new;
        assert!(Resource::FloatingIps.visible(v(2, 35), (2, 36)));
        assert!(!Resource::FloatingIps.visible(v(2, 36), (2, 36)));
        assert!(Resource::FloatingIps.visible(v(2, 49), (2, 50)));
        assert!(Resource::InjectedFiles.visible(v(2, 56), (2, 36)));
        assert!(!Resource::InjectedFiles.visible(v(2, 57), (2, 36)));
        assert!(Resource::Instances.visible(v(2, 104), (2, 36)));
    }

    #[test]
    fn upstream_defaults() {
        let d = QuotaDefaults::default();
        assert_eq!(d.of(Resource::Instances), 10);
        assert_eq!(d.of(Resource::Cores), 20);
        assert_eq!(d.of(Resource::Ram), 51200);
        assert_eq!(d.of(Resource::KeyPairs), 100);
        assert_eq!(d.of(Resource::InjectedFilePathBytes), 255);
        assert_eq!(d.of(Resource::SecurityGroups), -1);
    }
}
