//! Instance actions (`/servers/{id}/os-instance-actions`, instance_actions.py): what was
//! asked of a server, by whom, and the steps the conductor and agents finished for it.

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
use crate::api::{Params, S, ok, param};
use crate::db::{self, ActionEvent, InstanceAction};
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, host_id, python_isoformat};

pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route("/servers/{id}/os-instance-actions", get(action_list))
        .route(
            "/servers/{id}/os-instance-actions/{request_id}",
            get(action_show),
        )
}

/// The record of the caller asking `action` of `i`, started now.
pub(crate) fn action_of(ctx: &RequestContext, i: &Instance, action: &str) -> InstanceAction {
    let now = now_micros();
    InstanceAction {
        instance_uuid: i.uuid.clone(),
        request_id: ctx.request_id.clone(),
        action: action.to_string(),
        user_id: ctx.user_id.clone(),
        project_id: ctx
            .project_id
            .clone()
            .unwrap_or_else(|| i.project_id.clone()),
        start_time: now,
        updated_at: now,
        message: None,
    }
}

impl Compute {
    /// Records that the caller asked `action` of `i`. A failure to record is logged: the
    /// request itself was done.
    pub(crate) async fn record_action(&self, ctx: &RequestContext, i: &Instance, action: &str) {
        if let Err(e) = db::action_insert(&mut &self.db, &action_of(ctx, i, action)).await {
            tracing::error!(uuid = %i.uuid, %action, error = %e, "instance action not recorded");
        }
    }

    /// Records a finished step of the action of `request_id` on instance `uuid`.
    pub(crate) async fn record_event(
        &self,
        uuid: &str,
        request_id: &str,
        event: &str,
        host: Option<&str>,
        error: Option<&str>,
    ) {
        let now = now_micros();
        let e = ActionEvent {
            event: event.to_string(),
            start_time: now,
            finish_time: Some(now),
            result: Some(if error.is_some() { "Error" } else { "Success" }.into()),
            traceback: error.map(str::to_string),
            host: host.map(str::to_string),
            details: error.map(str::to_string),
        };
        // The action's update and the event's insert are one commit (one fsync), not two.
        let recorded = async {
            let mut tx = self.db.begin().await?;
            db::action_event_add(&mut tx, uuid, request_id, &e).await?;
            tx.commit().await?;
            Ok::<(), ferro_common::Error>(())
        }
        .await;
        if let Err(err) = recorded {
            tracing::error!(%uuid, %event, error = %err, "action event not recorded");
        }
    }

    /// The server whose actions the caller may read: from 2.21 also a deleted one.
    async fn actions_server(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        id: &str,
        rule: &str,
    ) -> Result<Instance> {
        let i = if v.at_least(2, 21) {
            db::instance_get_any(&mut &self.db, id)
                .await?
                .filter(|i| self.is_admin(ctx) || ctx.project_id.as_deref() == Some(&i.project_id))
                .ok_or_else(|| Fault::not_found(format!("Instance {id} could not be found.")))?
        } else {
            self.instance_visible(ctx, id).await?
        };
        self.authorize(ctx, rule, json!({"project_id": i.project_id}))?;
        Ok(i)
    }
}

fn action_body(v: ApiVersion, a: &InstanceAction) -> Value {
    let mut b = json!({"action": a.action, "instance_uuid": a.instance_uuid,
        "request_id": a.request_id, "user_id": a.user_id, "project_id": a.project_id,
        "start_time": python_isoformat(a.start_time), "message": a.message});
    if v.at_least(2, 58) {
        b["updated_at"] = json!(python_isoformat(a.updated_at));
    }
    b
}

async fn action_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    let i = s
        .actions_server(&ctx, v, &id, "os_compute_api:os-instance-actions:list")
        .await?;
    let mut actions = db::action_list(&mut &s.db, &i.uuid).await?;
    let mut body = json!({});
    if v.at_least(2, 58) {
        let (since, before) = crate::servers_api::changes_window(&p, v.at_least(2, 66))?;
        actions.retain(|a| {
            since.is_none_or(|t| a.updated_at >= t) && before.is_none_or(|t| a.updated_at <= t)
        });
        if let Some(m) = param(&p, "marker") {
            let at = actions
                .iter()
                .position(|a| a.request_id == m)
                .ok_or_else(|| Fault::bad_request(format!("Marker {m} could not be found.")))?;
            actions.drain(..=at);
        }
        let limit = match param(&p, "limit") {
            Some(l) => l.parse::<usize>().map_err(|_| {
                Fault::bad_request(format!(
                    "Invalid input for query parameters limit. Value: {l}."
                ))
            })?,
            None => usize::MAX,
        }
        .min(usize::try_from(crate::manager::MAX_LIMIT).unwrap_or(usize::MAX));
        if actions.len() > limit {
            actions.truncate(limit);
            if let Some(last) = actions.last() {
                body["links"] = json!([{"rel": "next", "href": format!(
                    "{}/v2.1/servers/{}/os-instance-actions?limit={limit}&marker={}",
                    s.config.public_url, i.uuid, last.request_id)}]);
            }
        }
    }
    body["instanceActions"] = actions.iter().map(|a| action_body(v, a)).collect();
    ok(StatusCode::OK, body)
}

async fn action_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, request_id)): Path<(String, String)>,
) -> Result<Response> {
    let i = s
        .actions_server(&ctx, v, &id, "os_compute_api:os-instance-actions:show")
        .await?;
    let a = db::action_list(&mut &s.db, &i.uuid)
        .await?
        .into_iter()
        .find(|a| a.request_id == request_id)
        .ok_or_else(|| Fault::not_found(format!("Action {request_id} not found")))?;
    let mut body = action_body(v, &a);
    let target = json!({"project_id": i.project_id});
    let privileged = crate::policy::allowed(
        &s.enforcer,
        &ctx,
        "os_compute_api:os-instance-actions:events",
        &target,
    );
    if privileged || v.at_least(2, 51) {
        let details = v.at_least(2, 84)
            && crate::policy::allowed(
                &s.enforcer,
                &ctx,
                "os_compute_api:os-instance-actions:events:details",
                &target,
            );
        let events: Vec<Value> = db::action_events(&mut &s.db, &i.uuid, &a.request_id)
            .await?
            .iter()
            .map(|e| {
                let mut ev = json!({"event": e.event,
                    "start_time": python_isoformat(e.start_time),
                    "finish_time": e.finish_time.map(python_isoformat),
                    "result": e.result});
                if privileged {
                    ev["traceback"] = json!(e.traceback);
                    if v.at_least(2, 62) {
                        ev["host"] = json!(e.host);
                    }
                }
                if v.at_least(2, 62) {
                    ev["hostId"] = json!(host_id(e.host.as_deref(), &a.project_id));
                }
                if details {
                    ev["details"] = json!(e.details);
                }
                ev
            })
            .collect();
        body["events"] = json!(events);
    }
    ok(StatusCode::OK, json!({ "instanceAction": body }))
}
