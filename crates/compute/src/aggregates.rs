//! Host aggregates (`/os-aggregates`, nova/api/openstack/compute/aggregates.py and the
//! `AggregateAPI` of nova/compute/api.py): admin-made groups of compute hosts with
//! metadata. An aggregate's `availability_zone` metadata puts its hosts in that zone — a host
//! is in one zone at most, and a change that would move a host holding instances to another
//! zone is refused —; its other metadata is what flavors' `aggregate_instance_extra_specs`
//! ask of hosts ([`crate::scheduler`]).
//!
//! Membership is mirrored into placement as upstream does: the aggregate's uuid joins (or
//! leaves) the aggregates of the host's resource provider, with the provider's generation
//! and a retry when another writer bumped it. Writes that decide zones are serialised on one
//! row lock ([`db::aggregate_lock`]) so that two cannot each pass the one-zone check
//! against the state before the other. Every change makes this process's scheduler view
//! refresh before its next decision; other conductors see it within their view's ttl.
//!
//! Not served: 2.81's `POST /os-aggregates/{id}/images` (image pre-caching on the
//! aggregate's hosts), which needs a cache request to agents (TODO-compat).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use ferro_common::RequestContext;
use ferro_common::time::now_micros;
use ferro_http::Auth;
use serde_json::{Map, Value, json};

use crate::Compute;
use crate::api::{Body, Params, S, action_name, empty, ok};
use crate::db::{self, AZ_KEY, Aggregate};
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{DEFAULT_ZONE, python_isoformat};
use crate::schemas;
use crate::validation::{py_repr, validate_body, validate_query};

pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route("/os-aggregates", get(aggregate_list).post(aggregate_create))
        .route(
            "/os-aggregates/{id}",
            get(aggregate_show)
                .put(aggregate_update)
                .delete(aggregate_delete),
        )
        .route("/os-aggregates/{id}/action", post(aggregate_action))
}

/// How many times a provider's aggregates are re-read and re-written when another writer
/// changed the provider in between (upstream retries `aggregate_remove_host` 4 times).
const PLACEMENT_ATTEMPTS: usize = 4;

fn not_found(id: &str) -> Fault {
    Fault::not_found(format!("Aggregate {id} could not be found."))
}

fn name_exists(name: &str) -> Fault {
    Fault::conflict(format!("Aggregate {name} already exists."))
}

/// The path's id as upstream's `validate_integer` reads it: an integer (spaces and a sign
/// allowed) or 400. One too large for any id finds nothing.
fn aggregate_id(id: &str) -> Result<i64> {
    let t = id.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Fault::bad_request(
            "Invalid input received: id must be an integer",
        ));
    }
    Ok(t.parse::<i64>().unwrap_or(i64::MIN))
}

/// The aggregate body at `v` (`_marshall_aggregate`); `members` adds `hosts` and `metadata`,
/// which the create's answer leaves out.
fn aggregate_body(v: ApiVersion, a: &Aggregate, members: bool) -> Value {
    let mut b = json!({
        "availability_zone": a.zone(),
        "created_at": python_isoformat(a.created_at),
        "deleted": false,
        "deleted_at": null,
        "id": a.id,
        "name": a.name,
        "updated_at": a.updated_at.map(python_isoformat),
    });
    if members {
        b["hosts"] = json!(a.hosts);
        b["metadata"] = json!(a.metadata);
    }
    if v.at_least(2, 41) {
        b["uuid"] = json!(a.uuid);
    }
    b
}

/// What became of a membership change in placement.
#[derive(Debug, PartialEq)]
enum Mirrored {
    Done,
    /// The host has no resource provider (yet): nothing to mirror.
    NoProvider,
    /// Other writers kept changing the provider: upstream's `ResourceProviderUpdateConflict`.
    Conflict(String),
}

/// Upstream's words when a host would change zones under its instances.
fn zone_move_refused(action: &str, from: Option<&str>, to: Option<&str>, instances: i64) -> String {
    format!(
        "The host cannot be {action} the aggregate as the availability zone of the host would \
         change from '{}' to '{}' but the host already has {instances} instance(s). Changing \
         the AZ of an existing instance is not supported by this action. Move the instances \
         away from this host then try again. If you need to move the instances between AZs \
         then you can use shelve_offload and unshelve to achieve this.",
        from.unwrap_or("None"),
        to.unwrap_or("None"),
    )
}

/// The zone `aggregates` other than `except` give `host`, if any.
fn zone_elsewhere<'a>(aggregates: &'a [Aggregate], except: i64, host: &str) -> Option<&'a str> {
    aggregates
        .iter()
        .filter(|o| o.id != except && o.hosts.iter().any(|h| h == host))
        .find_map(Aggregate::zone)
}

impl Compute {
    /// The availability zone of compute host `host`: its aggregates', else the default.
    pub(crate) async fn host_zone(&self, host: &str) -> Result<String> {
        Ok(db::host_zone(&mut &self.db, host)
            .await?
            .unwrap_or_else(|| DEFAULT_ZONE.to_string()))
    }

    /// Aggregate `id` (the path's text) or 404.
    async fn aggregate_found(
        &self,
        ex: &mut impl ferro_db::Executor,
        id: &str,
    ) -> Result<Aggregate> {
        db::aggregate_get(ex, aggregate_id(id)?)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Why `zone` may not become aggregate `a`'s zone for `hosts` (upstream's
    /// `is_safe_to_update_az`): an empty zone, a host in another zone, or — with
    /// `check_instances` and a new name — hosts holding instances.
    async fn zone_refusal(
        &self,
        ex: &mut impl ferro_db::Executor,
        a: &Aggregate,
        zone: Option<&str>,
        hosts: &[String],
        check_instances: bool,
    ) -> Result<Option<String>> {
        let Some(zone) = zone.filter(|z| !z.is_empty()) else {
            return Ok(Some(format!(
                "Aggregate {} does not support empty named availability zone",
                a.name
            )));
        };
        let all = db::aggregate_list(ex, None).await?;
        let conflicting: Vec<Value> = all
            .iter()
            .filter(|o| o.id != a.id && o.hosts.iter().any(|h| hosts.contains(h)))
            .filter_map(Aggregate::zone)
            .filter(|z| *z != zone)
            .map(|z| json!(z))
            .collect();
        if !conflicting.is_empty() {
            return Ok(Some(format!(
                "One or more hosts already in availability zone(s) {}",
                py_repr(&Value::Array(conflicting))
            )));
        }
        if check_instances
            && a.zone() != Some(zone)
            && db::instance_count_on_hosts(ex, hosts).await? > 0
        {
            return Ok(Some(
                "One or more hosts contain instances in this zone".into(),
            ));
        }
        Ok(None)
    }

    /// `POST /os-aggregates`: a new aggregate named `name`, in `zone` when one is given.
    pub async fn aggregate_create(
        &self,
        ctx: &RequestContext,
        name: &str,
        zone: Option<&str>,
    ) -> Result<Aggregate> {
        self.authorize(ctx, "os_compute_api:os-aggregates:create", json!({}))?;
        let mut tx = self.db.begin().await?;
        if db::aggregate_name_taken(&mut tx, name, None).await? {
            return Err(name_exists(name));
        }
        let a = Aggregate {
            id: db::next_id(&mut tx, "aggregates").await?,
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            created_at: now_micros(),
            updated_at: None,
            hosts: Vec::new(),
            metadata: zone
                .map(|z| [(AZ_KEY.to_string(), z.to_string())].into())
                .unwrap_or_default(),
        };
        match db::aggregate_insert(&mut tx, &a).await {
            // Another create of the name won the race for the unique index.
            Err(ferro_common::Error::Conflict(_)) => return Err(name_exists(name)),
            other => other?,
        }
        tx.commit().await?;
        Ok(a)
    }

    /// `PUT /os-aggregates/{id}`: a new name and/or zone. Everything is checked before
    /// anything is written (upstream saves the name before it checks the zone).
    pub async fn aggregate_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        name: Option<&str>,
        zone: Option<Option<&str>>,
    ) -> Result<Aggregate> {
        self.authorize(ctx, "os_compute_api:os-aggregates:update", json!({}))?;
        let mut tx = self.db.begin().await?;
        db::aggregate_lock(&mut tx).await?;
        let a = self.aggregate_found(&mut tx, id).await?;
        if let Some(name) = name
            && db::aggregate_name_taken(&mut tx, name, Some(a.id)).await?
        {
            return Err(name_exists(name));
        }
        if let Some(zone) = zone
            && let Some(reason) = self.zone_refusal(&mut tx, &a, zone, &a.hosts, true).await?
        {
            return Err(Fault::bad_request(format!(
                "Cannot update aggregate {}. Reason: {reason}.",
                a.id
            )));
        }
        let now = now_micros();
        match db::aggregate_update(&mut tx, a.id, name.unwrap_or(&a.name), now).await {
            Err(ferro_common::Error::Conflict(_)) => {
                return Err(name_exists(name.unwrap_or(&a.name)));
            }
            other => {
                if !other? {
                    return Err(not_found(id));
                }
            }
        }
        if let Some(zone) = zone {
            db::aggregate_metadata_set(&mut tx, a.id, AZ_KEY, zone).await?;
        }
        self.aggregate_commit(tx, a.id, id).await
    }

    /// `DELETE /os-aggregates/{id}`: only an aggregate without hosts.
    pub async fn aggregate_delete(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        self.authorize(ctx, "os_compute_api:os-aggregates:delete", json!({}))?;
        let mut tx = self.db.begin().await?;
        db::aggregate_lock(&mut tx).await?;
        let a = self.aggregate_found(&mut tx, id).await?;
        if !a.hosts.is_empty() {
            return Err(Fault::bad_request(format!(
                "Cannot remove host from aggregate {}. Reason: Host aggregate is not empty.",
                a.id
            )));
        }
        if !db::aggregate_delete(&mut tx, a.id).await? {
            return Err(not_found(id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// The `set_metadata` action: each key set, or removed when its value is null; the
    /// `availability_zone` key moves the aggregate's hosts under upstream's checks.
    pub async fn aggregate_set_metadata(
        &self,
        ctx: &RequestContext,
        id: &str,
        metadata: &Map<String, Value>,
    ) -> Result<Aggregate> {
        self.authorize(ctx, "os_compute_api:os-aggregates:set_metadata", json!({}))?;
        let mut tx = self.db.begin().await?;
        db::aggregate_lock(&mut tx).await?;
        let a = self.aggregate_found(&mut tx, id).await?;
        if let Some(zone) = metadata.get(AZ_KEY)
            && let Some(reason) = self
                .zone_refusal(&mut tx, &a, zone.as_str(), &a.hosts, true)
                .await?
        {
            return Err(Fault::bad_request(format!(
                "Cannot update metadata of aggregate {}. Reason: {reason}.",
                a.id
            )));
        }
        for (key, value) in metadata {
            db::aggregate_metadata_set(&mut tx, a.id, key, value.as_str()).await?;
        }
        db::aggregate_update(&mut tx, a.id, &a.name, now_micros()).await?;
        self.aggregate_commit(tx, a.id, id).await
    }

    /// The `add_host` action: `host` (a compute service's host) joins the aggregate, and
    /// the aggregate joins the aggregates of the host's resource provider.
    pub async fn aggregate_add_host(
        &self,
        ctx: &RequestContext,
        id: &str,
        host: &str,
    ) -> Result<Aggregate> {
        self.authorize(ctx, "os_compute_api:os-aggregates:add_host", json!({}))?;
        let agg_id = aggregate_id(id)?;
        if db::service_get(&mut &self.db, host, "nova-compute")
            .await?
            .is_none()
        {
            return Err(Fault::not_found(format!(
                "Compute host {host} could not be found."
            )));
        }
        let mut tx = self.db.begin().await?;
        db::aggregate_lock(&mut tx).await?;
        let a = db::aggregate_get(&mut tx, agg_id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let refused = |reason: String| {
            Fault::conflict(format!(
                "Cannot add host to aggregate {}. Reason: {reason}.",
                a.id
            ))
        };
        let hosts = [host.to_string()];
        if a.metadata.contains_key(AZ_KEY)
            && let Some(reason) = self
                .zone_refusal(&mut tx, &a, a.zone(), &hosts, false)
                .await?
        {
            return Err(refused(reason));
        }
        // Upstream's ensure_no_instances_need_to_move_az_when_host_added.
        if let Some(new) = a.zone() {
            let instances = db::instance_count_on_hosts(&mut tx, &hosts).await?;
            let all = db::aggregate_list(&mut tx, None).await?;
            let old = zone_elsewhere(&all, a.id, host);
            if instances > 0 && old != Some(new) {
                return Err(refused(zone_move_refused(
                    "added to",
                    old,
                    Some(new),
                    instances,
                )));
            }
        }
        let exists = || Fault::conflict(format!("Aggregate {} already has host {host}.", a.id));
        if a.hosts.iter().any(|h| h == host) {
            return Err(exists());
        }
        match db::aggregate_host_add(&mut tx, a.id, host).await {
            Err(ferro_common::Error::Conflict(_)) => return Err(exists()),
            other => other?,
        }
        tx.commit().await?;
        self.hosts.invalidate();
        // As upstream, a placement failure does not fail the request: the membership
        // stands and the provider catches up when the host is added again.
        match self.mirror_in_placement(host, &a.uuid, true).await {
            Ok(Mirrored::Done) => {}
            Ok(other) => tracing::warn!(%host, aggregate = %a.uuid, ?other,
                "the host's resource provider did not join the aggregate"),
            Err(e) => tracing::warn!(%host, aggregate = %a.uuid, error = %e.detail(),
                "the host's resource provider did not join the aggregate"),
        }
        self.aggregate_reload(a.id, id).await
    }

    /// The `remove_host` action: placement first (so that a failure there can be retried
    /// through this API), then the membership; a failed write puts placement back.
    pub async fn aggregate_remove_host(
        &self,
        ctx: &RequestContext,
        id: &str,
        host: &str,
    ) -> Result<Aggregate> {
        self.authorize(ctx, "os_compute_api:os-aggregates:remove_host", json!({}))?;
        let agg_id = aggregate_id(id)?;
        let cannot = || Fault::not_found(format!("Cannot remove host {host} in aggregate {id}"));
        if db::service_get(&mut &self.db, host, "nova-compute")
            .await?
            .is_none()
        {
            return Err(cannot());
        }
        let a = db::aggregate_get(&mut &self.db, agg_id)
            .await?
            .ok_or_else(cannot)?;
        if !a.hosts.iter().any(|h| h == host) {
            return Err(cannot());
        }
        // Upstream's ensure_no_instances_need_to_move_az_when_host_removed.
        if let Some(current) = a.zone() {
            let instances = db::instance_count_on_hosts(&mut &self.db, &[host.to_string()]).await?;
            let all = db::aggregate_list(&mut &self.db, None).await?;
            let new = zone_elsewhere(&all, a.id, host);
            if instances > 0 && new != Some(current) {
                return Err(Fault::conflict(format!(
                    "Cannot remove host from aggregate {}. Reason: {}.",
                    a.id,
                    zone_move_refused("removed from", Some(current), new, instances)
                )));
            }
        }
        match self.mirror_in_placement(host, &a.uuid, false).await? {
            Mirrored::Conflict(m) => return Err(Fault::conflict(m)),
            Mirrored::NoProvider => {
                tracing::warn!(%host, aggregate = %a.uuid,
                    "no resource provider to take out of the aggregate")
            }
            Mirrored::Done => {}
        }
        let removed = async {
            let mut tx = self.db.begin().await?;
            db::aggregate_lock(&mut tx).await?;
            let gone = db::aggregate_host_remove(&mut tx, a.id, host).await?;
            tx.commit().await?;
            Ok::<bool, Fault>(gone)
        }
        .await;
        if !matches!(removed, Ok(true)) {
            // Undo: the provider rejoins the aggregate it is still (or was never) out of.
            if let Err(e) = self.mirror_in_placement(host, &a.uuid, true).await {
                tracing::warn!(%host, aggregate = %a.uuid, error = %e.detail(),
                    "could not put the resource provider back in the aggregate");
            }
        }
        if !removed? {
            return Err(cannot());
        }
        self.hosts.invalidate();
        self.aggregate_reload(a.id, id).await
    }

    /// Commits `tx` and answers the aggregate as it now is.
    async fn aggregate_commit(&self, tx: ferro_db::Tx, agg_id: i64, id: &str) -> Result<Aggregate> {
        tx.commit().await?;
        self.hosts.invalidate();
        self.aggregate_reload(agg_id, id).await
    }

    async fn aggregate_reload(&self, agg_id: i64, id: &str) -> Result<Aggregate> {
        db::aggregate_get(&mut &self.db, agg_id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Adds (`join`) or removes aggregate `agg` to or from the aggregates of `host`'s
    /// resource provider, with its generation, re-reading when another writer moved it.
    async fn mirror_in_placement(&self, host: &str, agg: &str, join: bool) -> Result<Mirrored> {
        let Some(node) = db::node_get(&mut &self.db, host).await? else {
            return Ok(Mirrored::NoProvider);
        };
        let placement = self.placement().await?;
        let path = format!("/resource_providers/{}/aggregates", node.uuid);
        let failed = |what: &str, r: &ferro_client::Response| {
            if r.status == 401
                && let Ok(l) = self.links()
            {
                l.auth.invalidate();
            }
            Fault::internal(format!(
                "placement answered {} {what} {path}: {}",
                r.status, r.body
            ))
        };
        let mut generation = 0;
        for _ in 0..PLACEMENT_ATTEMPTS {
            let r = placement
                .get(&path)
                .await
                .map_err(|e| Fault::internal(format!("placement: {e}")))?;
            match r.status {
                200 => {}
                404 => return Ok(Mirrored::NoProvider),
                _ => return Err(failed("reading", &r)),
            }
            let mut aggregates: Vec<String> = r.body["aggregates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            generation = r.body["resource_provider_generation"].as_i64().unwrap_or(0);
            if aggregates.iter().any(|a| a == agg) == join {
                return Ok(Mirrored::Done);
            }
            if join {
                aggregates.push(agg.to_string());
            } else {
                aggregates.retain(|a| a != agg);
            }
            let body =
                json!({"aggregates": aggregates, "resource_provider_generation": generation});
            let w = placement
                .put(&path, Some(&body))
                .await
                .map_err(|e| Fault::internal(format!("placement: {e}")))?;
            match w.status {
                200 => return Ok(Mirrored::Done),
                404 => return Ok(Mirrored::NoProvider),
                // Another writer bumped the generation: read again.
                409 => continue,
                _ => return Err(failed("writing", &w)),
            }
        }
        Ok(Mirrored::Conflict(format!(
            "A conflict was encountered attempting to update resource provider {} \
             (generation {generation}): the provider's aggregates kept changing.",
            node.uuid
        )))
    }
}

async fn aggregate_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::empty_query(v, (2, 102)), &p)?;
    s.authorize(&ctx, "os_compute_api:os-aggregates:index", json!({}))?;
    let items: Vec<Value> = db::aggregate_list(&mut &s.db, None)
        .await?
        .iter()
        .map(|a| aggregate_body(v, a, true))
        .collect();
    ok(StatusCode::OK, json!({ "aggregates": items }))
}

async fn aggregate_create(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::aggregate_create(), &b)?;
    let agg = &b["aggregate"];
    let name = agg["name"].as_str().unwrap_or_default().trim();
    let zone = agg["availability_zone"]
        .as_str()
        .filter(|z| !z.is_empty())
        .map(str::trim);
    let a = s.aggregate_create(&ctx, name, zone).await?;
    // Upstream answers 200, without hosts and metadata.
    ok(
        StatusCode::OK,
        json!({"aggregate": aggregate_body(v, &a, false)}),
    )
}

async fn aggregate_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    validate_query(&schemas::empty_query(v, (2, 102)), &p)?;
    s.authorize(&ctx, "os_compute_api:os-aggregates:show", json!({}))?;
    let a = s.aggregate_found(&mut &s.db, &id).await?;
    ok(
        StatusCode::OK,
        json!({"aggregate": aggregate_body(v, &a, true)}),
    )
}

async fn aggregate_update(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&schemas::aggregate_update(), &b)?;
    let agg = &b["aggregate"];
    let name = agg["name"].as_str().map(str::trim);
    let zone = agg.get("availability_zone").map(Value::as_str);
    let a = s.aggregate_update(&ctx, &id, name, zone).await?;
    ok(
        StatusCode::OK,
        json!({"aggregate": aggregate_body(v, &a, true)}),
    )
}

async fn aggregate_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    s.aggregate_delete(&ctx, &id).await?;
    // Upstream answers 200 with no body.
    empty(StatusCode::OK)
}

async fn aggregate_action(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    let action = action_name(&b)?;
    let a = match action.as_str() {
        "add_host" | "remove_host" => {
            validate_body(&schemas::aggregate_host_action(&action), &b)?;
            let host = b[&action]["host"].as_str().unwrap_or_default();
            if action == "add_host" {
                s.aggregate_add_host(&ctx, &id, host).await?
            } else {
                s.aggregate_remove_host(&ctx, &id, host).await?
            }
        }
        "set_metadata" => {
            validate_body(&schemas::aggregate_set_metadata(), &b)?;
            let empty = Map::new();
            let metadata = b["set_metadata"]["metadata"].as_object().unwrap_or(&empty);
            s.aggregate_set_metadata(&ctx, &id, metadata).await?
        }
        other => {
            return Err(Fault::bad_request(format!(
                "There is no such action: {other}"
            )));
        }
    };
    ok(
        StatusCode::OK,
        json!({"aggregate": aggregate_body(v, &a, true)}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(id: i64, hosts: &[&str], zone: Option<&str>) -> Aggregate {
        Aggregate {
            id,
            uuid: format!("u{id}"),
            name: format!("a{id}"),
            created_at: 1_000_000,
            updated_at: None,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            metadata: zone
                .map(|z| [(AZ_KEY.to_string(), z.to_string())].into())
                .unwrap_or_default(),
        }
    }

    #[test]
    fn ids_are_integers_as_upstream_reads_them() {
        assert_eq!(aggregate_id(" 7").unwrap(), 7);
        assert_eq!(aggregate_id("+7").unwrap(), 7);
        assert_eq!(aggregate_id("99999999999999999999").unwrap(), i64::MIN);
        for bad in ["", "x", "1.5", "-", "1e3"] {
            let e = aggregate_id(bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn the_body_follows_the_microversion() {
        let a = agg(3, &["h1"], Some("az1"));
        let old = aggregate_body(ApiVersion::new(2, 40), &a, true);
        assert!(old.get("uuid").is_none());
        assert_eq!(old["availability_zone"], "az1");
        assert_eq!(old["metadata"], json!({"availability_zone": "az1"}));
        assert_eq!(old["hosts"], json!(["h1"]));
        assert_eq!(old["deleted"], false);
        assert_eq!(old["created_at"], "1970-01-01T00:00:01.000000");
        let new = aggregate_body(ApiVersion::new(2, 41), &a, false);
        assert_eq!(new["uuid"], "u3");
        assert!(new.get("hosts").is_none() && new.get("metadata").is_none());
    }

    #[test]
    fn a_host_zone_comes_from_its_other_aggregates() {
        let all = [agg(1, &["h1"], Some("az1")), agg(2, &["h1", "h2"], None)];
        assert_eq!(zone_elsewhere(&all, 2, "h1"), Some("az1"));
        assert_eq!(zone_elsewhere(&all, 1, "h1"), None);
        assert_eq!(zone_elsewhere(&all, 1, "h2"), None);
    }
}
