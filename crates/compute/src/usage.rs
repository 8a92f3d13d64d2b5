//! Usage per project over a period (`/os-simple-tenant-usage`, simple_tenant_usage.py):
//! the hours each server ran inside the period, weighted by its vCPUs, RAM and disk.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ferro_common::time::now_micros;
use ferro_http::Auth;
use serde_json::{Map, Value, json};

use crate::Compute;
use crate::api::{Params, S, ok, param};
use crate::db;
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, python_isoformat};

pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route("/os-simple-tenant-usage", get(usage_list))
        .route("/os-simple-tenant-usage/{tenant_id}", get(usage_show))
}

/// A period bound as upstream parses it: `default` when absent, else one of three naive
/// forms.
fn parse_time(text: Option<&str>, default: i64) -> Result<i64> {
    let Some(t) = text.filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(n.and_utc().timestamp_micros());
        }
    }
    Err(Fault::bad_request(
        "Invalid input received: Datetime is in invalid format",
    ))
}

/// `(start, stop, detailed)`, with `stop` no later than now.
fn period(p: &[(String, String)]) -> Result<(i64, i64, bool)> {
    // Upstream reads the clock once per bound, so an absent end falls after an absent start.
    let now = now_micros();
    let start = parse_time(param(p, "start"), now)?;
    let stop = parse_time(param(p, "end"), now + 1)?;
    if start >= stop {
        return Err(Fault::bad_request(
            "Invalid start time. The start time cannot occur after the end time.",
        ));
    }
    Ok((
        start,
        stop.min(now_micros()),
        param(p, "detailed") == Some("1"),
    ))
}

/// Hours `i` ran within `[start, stop]`.
fn hours(i: &Instance, start: i64, stop: i64) -> f64 {
    let Some(launched) = i.launched_at else {
        return 0.0;
    };
    if i.terminated_at.is_some_and(|t| t < start) || launched > stop {
        return 0.0;
    }
    let from = launched.max(start);
    let to = i.terminated_at.map_or(stop, |t| t.min(stop));
    (to - from) as f64 / 3_600_000_000.0
}

/// The usage summaries per project, in first-seen order, and the servers' usages.
fn summarize(instances: &[Instance], start: i64, stop: i64, detailed: bool) -> Vec<Value> {
    let now = now_micros();
    let mut out: Vec<Value> = Vec::new();
    for i in instances {
        let h = hours(i, start, stop);
        let local_gb = i.flavor.root_gb + i.flavor.ephemeral_gb;
        let started = i.launched_at.unwrap_or(i.created_at);
        let state = if i.terminated_at.is_some() {
            "terminated"
        } else {
            i.vm_state.as_str()
        };
        let uptime = (i.terminated_at.unwrap_or(now) - started) / 1_000_000;
        let server = json!({
            "instance_id": i.uuid, "name": i.display_name, "tenant_id": i.project_id,
            "hours": h, "flavor": i.flavor.name, "memory_mb": i.flavor.memory_mb,
            "local_gb": local_gb, "vcpus": i.flavor.vcpus,
            "started_at": python_isoformat(started),
            "ended_at": i.terminated_at.map(python_isoformat),
            "state": state, "uptime": uptime,
        });
        let at = match out
            .iter()
            .position(|s| s["tenant_id"] == i.project_id.as_str())
        {
            Some(at) => at,
            None => {
                let mut s = json!({"tenant_id": i.project_id, "total_local_gb_usage": 0.0,
                    "total_vcpus_usage": 0.0, "total_memory_mb_usage": 0.0,
                    "total_hours": 0.0, "start": python_isoformat(start),
                    "stop": python_isoformat(stop)});
                if detailed {
                    s["server_usages"] = json!([]);
                }
                out.push(s);
                out.len() - 1
            }
        };
        let s = &mut out[at];
        let add = |s: &mut Value, k: &str, v: f64| {
            s[k] = json!(s[k].as_f64().unwrap_or(0.0) + v);
        };
        add(s, "total_local_gb_usage", local_gb as f64 * h);
        add(s, "total_vcpus_usage", i.flavor.vcpus as f64 * h);
        add(s, "total_memory_mb_usage", i.flavor.memory_mb as f64 * h);
        add(s, "total_hours", h);
        if let Some(list) = s.get_mut("server_usages").and_then(Value::as_array_mut) {
            list.push(server);
        }
    }
    out
}

/// The page of instances after `marker` (an instance uuid), at most `limit` (2.40).
fn page(
    mut all: Vec<Instance>,
    v: ApiVersion,
    p: &[(String, String)],
) -> Result<(Vec<Instance>, Option<usize>)> {
    let max = usize::try_from(crate::manager::MAX_LIMIT).unwrap_or(usize::MAX);
    if !v.at_least(2, 40) {
        all.truncate(max);
        return Ok((all, None));
    }
    if let Some(m) = param(p, "marker") {
        let at = all
            .iter()
            .position(|i| i.uuid == m)
            .ok_or_else(|| Fault::bad_request(format!("Marker {m} could not be found.")))?;
        all.drain(..=at);
    }
    let limit = param(p, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(max)
        .min(max);
    let more = all.len() > limit;
    all.truncate(limit);
    Ok((all, more.then_some(limit)))
}

fn next_link(
    s: &Compute,
    path: &str,
    p: &[(String, String)],
    page: &[Instance],
    limit: usize,
) -> Value {
    let mut q: Vec<(String, String)> = p
        .iter()
        .filter(|(k, _)| k != "marker" && k != "limit")
        .cloned()
        .collect();
    q.push(("limit".into(), limit.to_string()));
    if let Some(last) = page.last() {
        q.push(("marker".into(), last.uuid.clone()));
    }
    json!([{"rel": "next", "href": format!("{}/v2.1/{path}?{}", s.config.public_url,
        ferro_http::query::urlencode(&q))}])
}

async fn usage_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Query(p): Params,
) -> Result<Response> {
    s.authorize(
        &ctx,
        "os_compute_api:os-simple-tenant-usage:list",
        json!({}),
    )?;
    let (start, stop, detailed) = period(&p)?;
    let all = db::instances_in_window(&mut &s.db, start, stop, None).await?;
    let (instances, more) = page(all, v, &p)?;
    let mut body = Map::new();
    body.insert(
        "tenant_usages".into(),
        json!(summarize(&instances, start, stop, detailed)),
    );
    if let Some(limit) = more {
        body.insert(
            "tenant_usages_links".into(),
            next_link(&s, "os-simple-tenant-usage", &p, &instances, limit),
        );
    }
    ok(StatusCode::OK, Value::Object(body))
}

async fn usage_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(tenant): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    s.authorize(
        &ctx,
        "os_compute_api:os-simple-tenant-usage:show",
        json!({"project_id": tenant}),
    )?;
    let (start, stop, _) = period(&p)?;
    let all = db::instances_in_window(&mut &s.db, start, stop, Some(&tenant)).await?;
    let (instances, more) = page(all, v, &p)?;
    let usage = summarize(&instances, start, stop, true)
        .into_iter()
        .next()
        .unwrap_or_else(|| json!({}));
    let mut body = json!({ "tenant_usage": usage });
    if let Some(limit) = more {
        body["tenant_usage_links"] = next_link(
            &s,
            &format!("os-simple-tenant-usage/{tenant}"),
            &p,
            &instances,
            limit,
        );
    }
    ok(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_upstream_forms_and_must_be_ordered() {
        assert!(parse_time(Some("2026-01-01T00:00:00"), 0).is_ok());
        assert!(parse_time(Some("2026-01-01T00:00:00.5"), 0).is_ok());
        assert!(parse_time(Some("2026-01-01 00:00:00.5"), 0).is_ok());
        assert!(parse_time(Some("yesterday"), 0).is_err());
        let p = |a: &str, b: &str| {
            vec![
                ("start".to_string(), a.to_string()),
                ("end".to_string(), b.to_string()),
            ]
        };
        assert!(period(&p("2026-01-02T00:00:00", "2026-01-01T00:00:00")).is_err());
        assert!(period(&p("2026-01-01T00:00:00", "2026-01-02T00:00:00")).is_ok());
    }
}
