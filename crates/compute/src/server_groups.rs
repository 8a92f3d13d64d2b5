//! Server groups (`/os-server-groups`, nova/api/openstack/compute/server_groups.py) and
//! what the scheduler makes of them: `affinity` puts a group's servers on one host,
//! `anti-affinity` on distinct hosts (at most `max_server_per_host` each, 2.64), the soft
//! variants prefer so without refusing a host.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ferro_common::RequestContext;
use ferro_common::time::now_micros;
use ferro_http::Auth;
use serde_json::{Value, json};

use crate::Compute;
use crate::api::{Body, Params, S, empty, ok, param};
use crate::db::{self, GroupMember, ServerGroup};
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::quota::Resource;
use crate::schemas;
use crate::validation::{validate_body, validate_query};

pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route("/os-server-groups", get(group_list).post(group_create))
        .route(
            "/os-server-groups/{id}",
            get(group_show).delete(group_delete),
        )
}

/// Per-group locks, so that members of one group (a multi-create, or creates racing) are
/// filtered, claimed and recorded one after the other by this conductor.
// TODO-correctness: several conductor processes may still place two members of one
// anti-affinity group on a host at once; upstream closes that with a check on the host.
#[derive(Default)]
pub struct GroupLocks(std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl GroupLocks {
    /// The lock of group `id`.
    pub fn of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, l| Arc::strong_count(l) > 1);
        m.entry(id.to_string()).or_default().clone()
    }
}

/// What a group asks of the scheduler for one more member.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    pub group: String,
    pub policy: String,
    /// Anti-affinity's most members per host (1 unless the rule says more).
    pub max_per_host: usize,
    /// How many live members (other than the one being placed) each host has.
    pub members_per_host: BTreeMap<String, usize>,
}

impl Placement {
    /// Whether `host` may take the member (the hard policies' filters).
    pub fn allows(&self, host: &str) -> bool {
        let here = self.members_per_host.get(host).copied().unwrap_or(0);
        match self.policy.as_str() {
            "affinity" => self.members_per_host.is_empty() || here > 0,
            "anti-affinity" => here < self.max_per_host,
            _ => true,
        }
    }

    /// The soft policies' weigh: lower sorts first (members here for soft-affinity, fewer
    /// members here for soft-anti-affinity).
    pub fn preference(&self, host: &str) -> i64 {
        let here = i64::try_from(self.members_per_host.get(host).copied().unwrap_or(0))
            .unwrap_or(i64::MAX);
        match self.policy.as_str() {
            "soft-affinity" => -here,
            "soft-anti-affinity" => here,
            _ => 0,
        }
    }
}

fn rules_of(g: &ServerGroup) -> Value {
    serde_json::from_str(&g.rules).unwrap_or_else(|_| json!({}))
}

fn group_not_found(id: &str) -> Fault {
    Fault::not_found(format!("Instance group {id} could not be found."))
}

/// The group body at `v` (`_format_server_group`).
fn group_body(v: ApiVersion, g: &ServerGroup, members: &[GroupMember]) -> Value {
    let ids: Vec<&str> = members
        .iter()
        .filter(|m| m.group == g.uuid)
        .map(|m| m.instance.as_str())
        .collect();
    let mut b = json!({"id": g.uuid, "name": g.name, "members": ids});
    if v.at_least(2, 64) {
        b["policy"] = json!(g.policy);
        b["rules"] = rules_of(g);
    } else {
        b["policies"] = json!([g.policy]);
        b["metadata"] = json!({});
    }
    if v.at_least(2, 13) {
        b["project_id"] = json!(g.project_id);
        b["user_id"] = json!(g.user_id);
    }
    b
}

impl Compute {
    /// Group `id` if the caller may act on it with `rule`.
    async fn group_visible(
        &self,
        ctx: &RequestContext,
        id: &str,
        rule: &str,
    ) -> Result<ServerGroup> {
        let g = db::group_get(&mut &self.db, id)
            .await?
            .ok_or_else(|| group_not_found(id))?;
        if !self.is_admin(ctx) && ctx.project_id.as_deref() != Some(g.project_id.as_str()) {
            return Err(group_not_found(id));
        }
        self.authorize(ctx, rule, json!({"project_id": g.project_id}))?;
        Ok(g)
    }

    /// Creates a group under the project's `server_groups` quota.
    async fn group_create(
        &self,
        ctx: &RequestContext,
        name: &str,
        policy: &str,
        rules: Value,
    ) -> Result<ServerGroup> {
        let project = ctx.project_id.clone().unwrap_or_default();
        self.authorize(
            ctx,
            "os_compute_api:os-server-groups:create",
            json!({"project_id": project}),
        )?;
        self.quotas
            .prepare(&self.db, &project, &ctx.user_id)
            .await?;
        let mut tx = self.db.begin().await?;
        if self
            .quotas
            .check_deltas(
                &mut tx,
                &project,
                &ctx.user_id,
                &[(Resource::ServerGroups, 1)],
            )
            .await?
            .is_err()
        {
            return Err(Fault::forbidden("Quota exceeded, too many server groups."));
        }
        let g = ServerGroup {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            project_id: project,
            user_id: ctx.user_id.clone(),
            policy: policy.to_string(),
            rules: rules.to_string(),
            created_at: now_micros(),
        };
        db::group_insert(&mut tx, &g).await?;
        tx.commit().await?;
        Ok(g)
    }

    /// Checks a create's `group` scheduler hint: the group must exist and be the caller's,
    /// and take `count` more members under `server_group_members`.
    pub(crate) async fn group_for_create(
        &self,
        ctx: &RequestContext,
        hints: &Value,
        count: i64,
    ) -> Result<Option<ServerGroup>> {
        let Some(id) = hints.get("group") else {
            return Ok(None);
        };
        let id = id
            .as_str()
            .ok_or_else(|| Fault::bad_request("Invalid input for field/attribute group."))?;
        let g = db::group_get(&mut &self.db, id).await?;
        let g = match g {
            Some(g) if self.is_admin(ctx) || ctx.project_id.as_deref() == Some(&g.project_id) => g,
            _ => {
                return Err(Fault::bad_request(format!(
                    "Group {id} could not be found."
                )));
            }
        };
        let live = db::group_members(&mut &self.db, Some(std::slice::from_ref(&g.uuid))).await?;
        let limit = self
            .quotas
            .project(&mut &self.db, &g.project_id)
            .await?
            .get(&Resource::ServerGroupMembers)
            .copied()
            .unwrap_or(-1);
        if limit >= 0 && i64::try_from(live.len()).unwrap_or(i64::MAX) + count > limit {
            return Err(Fault::forbidden(
                "Quota exceeded, too many servers in group",
            ));
        }
        Ok(Some(g))
    }

    /// What instance `uuid`'s group asks of its placement, if it is in one.
    pub(crate) async fn group_placement(&self, uuid: &str) -> Result<Option<Placement>> {
        let Some(gid) = db::group_of_instance(&mut &self.db, uuid).await? else {
            return Ok(None);
        };
        let Some(g) = db::group_get(&mut &self.db, &gid).await? else {
            return Ok(None);
        };
        let mut members_per_host = BTreeMap::new();
        for m in db::group_members(&mut &self.db, Some(std::slice::from_ref(&gid))).await? {
            if let Some(h) = m.host
                && m.instance != uuid
            {
                *members_per_host.entry(h).or_insert(0) += 1;
            }
        }
        let max_per_host = rules_of(&g)["max_server_per_host"]
            .as_u64()
            .or_else(|| rules_of(&g)["max_server_per_host"].as_str()?.parse().ok())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1);
        Ok(Some(Placement {
            group: g.uuid,
            policy: g.policy,
            max_per_host,
            members_per_host,
        }))
    }

    /// The groups instance `uuid` belongs to, for the server body (2.71).
    pub async fn groups_of_instance(&self, uuid: &str) -> Result<Vec<String>> {
        Ok(db::group_of_instance(&mut &self.db, uuid)
            .await?
            .into_iter()
            .collect())
    }
}

async fn group_create(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::server_group_create(v), &b)?;
    let sg = &b["server_group"];
    let name = sg["name"].as_str().unwrap_or_default();
    let (policy, rules) = if v.at_least(2, 64) {
        let policy = sg["policy"].as_str().unwrap_or_default();
        let mut rules = sg.get("rules").cloned().unwrap_or_else(|| json!({}));
        if policy != "anti-affinity" && rules.as_object().is_some_and(|r| !r.is_empty()) {
            return Err(Fault::bad_request(
                "Only anti-affinity policy supports rules.",
            ));
        }
        // Positive integers may arrive as strings; they are shown as numbers.
        if let Some(n) = rules["max_server_per_host"]
            .as_str()
            .and_then(|n| n.parse::<i64>().ok())
        {
            rules["max_server_per_host"] = json!(n);
        }
        (policy.to_string(), rules)
    } else {
        let policy = sg["policies"][0].as_str().unwrap_or_default();
        (policy.to_string(), json!({}))
    };
    let g = s.group_create(&ctx, name, &policy, rules).await?;
    ok(
        StatusCode::OK,
        json!({"server_group": group_body(v, &g, &[])}),
    )
}

async fn group_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::server_group_list_query(v), &p)?;
    let project = ctx.project_id.clone().unwrap_or_default();
    s.authorize(
        &ctx,
        "os_compute_api:os-server-groups:index",
        json!({"project_id": project}),
    )?;
    let all = p.iter().any(|(k, _)| k == "all_projects") && s.is_admin(&ctx);
    if all {
        s.authorize(
            &ctx,
            "os_compute_api:os-server-groups:index:all_projects",
            json!({"project_id": project}),
        )?;
    }
    let groups = db::group_list(&mut &s.db, (!all).then_some(project.as_str())).await?;
    let offset = param(&p, "offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = param(&p, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        .min(usize::try_from(crate::manager::MAX_LIMIT).unwrap_or(usize::MAX));
    let page: Vec<ServerGroup> = groups.into_iter().skip(offset).take(limit).collect();
    let ids: Vec<String> = page.iter().map(|g| g.uuid.clone()).collect();
    let members = db::group_members(&mut &s.db, Some(&ids)).await?;
    let items: Vec<Value> = page.iter().map(|g| group_body(v, g, &members)).collect();
    ok(StatusCode::OK, json!({ "server_groups": items }))
}

async fn group_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    let g = s
        .group_visible(&ctx, &id, "os_compute_api:os-server-groups:show")
        .await?;
    let members = db::group_members(&mut &s.db, Some(std::slice::from_ref(&g.uuid))).await?;
    ok(
        StatusCode::OK,
        json!({"server_group": group_body(v, &g, &members)}),
    )
}

async fn group_delete(State(s): S, Auth(ctx): Auth, Path(id): Path<String>) -> Result<Response> {
    let g = s
        .group_visible(&ctx, &id, "os_compute_api:os-server-groups:delete")
        .await?;
    if !db::group_delete(&mut &s.db, &g.uuid).await? {
        return Err(group_not_found(&id));
    }
    empty(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(policy: &str, max: usize, hosts: &[(&str, usize)]) -> Placement {
        Placement {
            group: "g".into(),
            policy: policy.into(),
            max_per_host: max,
            members_per_host: hosts.iter().map(|(h, n)| (h.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn hard_policies_filter_hosts() {
        let first = placement("affinity", 1, &[]);
        assert!(first.allows("a") && first.allows("b"));
        let aff = placement("affinity", 1, &[("a", 2)]);
        assert!(aff.allows("a") && !aff.allows("b"));
        let anti = placement("anti-affinity", 1, &[("a", 1)]);
        assert!(!anti.allows("a") && anti.allows("b"));
        let two = placement("anti-affinity", 2, &[("a", 1)]);
        assert!(two.allows("a"));
        let soft = placement("soft-anti-affinity", 1, &[("a", 5)]);
        assert!(soft.allows("a"));
    }

    #[test]
    fn soft_policies_order_hosts() {
        let soft = placement("soft-anti-affinity", 1, &[("a", 2), ("b", 1)]);
        assert!(soft.preference("c") < soft.preference("b"));
        assert!(soft.preference("b") < soft.preference("a"));
        let aff = placement("soft-affinity", 1, &[("a", 2)]);
        assert!(aff.preference("a") < aff.preference("b"));
    }
}
