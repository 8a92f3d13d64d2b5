//! `GET /os-migrations`: the resizes and cold migrations of servers, as Nova's migrations
//! API lists them — filters (`host`, `instance_uuid`, `source_compute`, `status`,
//! `migration_type`), 2.23's `migration_type`, 2.59's `uuid`, newest-first paging and
//! `changes-since`, 2.66's `changes-before`, 2.80's `user_id`/`project_id`. A caller without
//! `index:all_projects` sees its own project's; without `index:host` the hosts are null.
//! FerroStack's flavors have no integer id, so `old_instance_type_id` and
//! `new_instance_type_id` are null (upstream's schema allows it); `dest_host`, the
//! destination's IP address upstream, is null too.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ferro_common::RequestContext;
use ferro_http::Auth;
use serde_json::{Value, json};

use crate::Compute;
use crate::api::{Params, S, next_link, ok, param};
use crate::db::{self, Migration};
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::python_isoformat;
use crate::servers_api::changes_window;
use crate::validation::validate_query;

/// `parameter_types.common_query_param`-style filters and, by microversion, paging.
fn query_schema(v: ApiVersion) -> Value {
    let multi = json!({"type": "array", "items": {"type": "string"}});
    let single = |t: Value| json!({"type": "array", "items": t, "maxItems": 1});
    let mut props = json!({"hidden": multi, "host": multi, "instance_uuid": multi,
        "source_compute": multi, "status": multi, "migration_type": multi});
    if v.at_least(2, 59) {
        props["limit"] = single(json!({"type": "string", "pattern": "^[0-9]+$"}));
        props["marker"] = single(json!({"type": "string"}));
        props["changes-since"] = single(json!({"type": "string", "format": "date-time"}));
    }
    if v.at_least(2, 66) {
        props["changes-before"] = single(json!({"type": "string", "format": "date-time"}));
    }
    if v.at_least(2, 80) {
        props["user_id"] = single(json!({"type": "string"}));
        props["project_id"] = single(json!({"type": "string"}));
    }
    json!({"type": "object", "properties": props, "additionalProperties": !v.at_least(2, 59)})
}

/// Upstream's `migration_type`: a move to the same flavor is a (cold) migration.
fn migration_type(m: &Migration) -> &'static str {
    if m.old_flavor == m.new_flavor {
        "migration"
    } else {
        "resize"
    }
}

/// One migration as `GET /os-migrations` shows it at `v`.
fn view(m: &Migration, owner: &(String, String), v: ApiVersion, hosts: bool) -> Value {
    let host = |h: Option<&str>| if hosts { json!(h) } else { Value::Null };
    let mut o = json!({
        "id": m.internal_id,
        "status": m.status,
        "instance_uuid": m.instance_uuid,
        "source_compute": host(Some(&m.source_host)),
        "source_node": host(Some(&m.source_host)),
        "dest_compute": host(m.dest_host.as_deref()),
        "dest_node": host(m.dest_host.as_deref()),
        "dest_host": Value::Null,
        "old_instance_type_id": Value::Null,
        "new_instance_type_id": Value::Null,
        "created_at": python_isoformat(m.created_at),
        "updated_at": python_isoformat(m.updated_at),
    });
    if v.at_least(2, 23) {
        o["migration_type"] = json!(migration_type(m));
    }
    if v.at_least(2, 59) {
        o["uuid"] = json!(m.uuid);
    }
    if v.at_least(2, 80) {
        o["project_id"] = json!(owner.0);
        o["user_id"] = json!(owner.1);
    }
    o
}

impl Compute {
    /// The migrations `ctx` may list that match `p`, in upstream's order (newest first from
    /// 2.59, by id before), with whether it may see their hosts.
    async fn migrations(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        p: &[(String, String)],
    ) -> Result<(Vec<(Migration, (String, String))>, bool)> {
        self.authorize(
            ctx,
            "os_compute_api:os-migrations:index",
            json!({"project_id": ctx.project_id}),
        )?;
        let project = param(p, "project_id").filter(|_| v.at_least(2, 80));
        if project.is_none_or(|p| Some(p) != ctx.project_id.as_deref()) {
            self.authorize(
                ctx,
                "os_compute_api:os-migrations:index:all_projects",
                json!({}),
            )?;
        }
        let hosts = self
            .authorize(ctx, "os_compute_api:os-migrations:index:host", json!({}))
            .is_ok();
        let (since, before) = if v.at_least(2, 59) {
            changes_window(p, v.at_least(2, 66))?
        } else {
            (None, None)
        };
        let is = |key: &str, value: &str| param(p, key).is_none_or(|want| want == value);
        let user = param(p, "user_id").filter(|_| v.at_least(2, 80));
        let mut list: Vec<(Migration, (String, String))> = db::migration_list_all(&mut &self.db)
            .await?
            .into_iter()
            .filter(|(m, (proj, usr))| {
                param(p, "host")
                    .is_none_or(|h| m.source_host == h || m.dest_host.as_deref() == Some(h))
                    && is("instance_uuid", &m.instance_uuid)
                    && is("source_compute", &m.source_host)
                    && is("status", &m.status)
                    && is("migration_type", migration_type(m))
                    && project.is_none_or(|want| want == proj)
                    && user.is_none_or(|want| want == usr)
                    && since.is_none_or(|t| m.updated_at >= t)
                    && before.is_none_or(|t| m.updated_at <= t)
            })
            .collect();
        if v.at_least(2, 59) {
            list.sort_by(|(a, _), (b, _)| {
                (b.created_at, b.internal_id).cmp(&(a.created_at, a.internal_id))
            });
            if let Some(marker) = param(p, "marker") {
                let at = list
                    .iter()
                    .position(|(m, _)| m.uuid == marker)
                    .ok_or_else(|| {
                        Fault::bad_request(format!("Marker {marker} could not be found."))
                    })?;
                list.drain(..=at);
            }
            let limit = param(p, "limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(crate::manager::MAX_LIMIT as usize)
                .min(crate::manager::MAX_LIMIT as usize);
            list.truncate(limit);
        }
        Ok((list, hosts))
    }
}

/// `GET /os-migrations`.
pub(crate) async fn list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&query_schema(v), &p)?;
    let (list, hosts) = s.migrations(&ctx, v, &p).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|(m, owner)| view(m, owner, v, hosts))
        .collect();
    let mut body = json!({ "migrations": items });
    if v.at_least(2, 59)
        && let Some(l) = next_link(
            &s.config.public_url,
            "os-migrations",
            &p,
            list.len(),
            list.last().map(|(m, _)| m.uuid.as_str()),
        )
    {
        body["migrations_links"] = l;
    }
    ok(StatusCode::OK, body)
}
