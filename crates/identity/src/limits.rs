//! Keystone's unified limits: registered limits (`/v3/registered_limits`, a service's
//! default for a resource), project and domain limits overriding them (`/v3/limits`) and
//! the enforcement model (`/v3/limits/model`, always `flat` here).
//!
//! Identity only stores and serves limits; it never counts anyone's usage. Services
//! enforce them, remote ones through this API and in-process ones through
//! [`Identity::effective_limit`].

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use ferro_common::{Error, RequestContext, new_hex_id};
use ferro_http::{Auth, Json};
use serde_json::{Map, Value, json};

use crate::api::{ApiResult, Q, S, no_content, ok};
use crate::db::{self, LimitRow, RegisteredLimitRow};
use crate::manager::Identity;
use crate::model::{collection_links, entity, link, name_field, required_str, str_field};
use crate::policy::authorize;

/// The enforcement model's description, as keystone's flat model words it.
pub const FLAT_MODEL_DESCRIPTION: &str =
    "Limit enforcement and validation does not take project hierarchy into consideration.";

/// The unified limits routes, added to identity's router.
pub fn routes(r: Router<Arc<Identity>>) -> Router<Arc<Identity>> {
    r.route(
        "/v3/registered_limits",
        get(registered_limit_list).post(registered_limit_create),
    )
    .route(
        "/v3/registered_limits/{id}",
        get(registered_limit_show)
            .patch(registered_limit_update)
            .delete(registered_limit_delete),
    )
    .route("/v3/limits", get(limit_list).post(limit_create))
    // A static segment outranks `{id}`: `model` is never taken for a limit id.
    .route("/v3/limits/model", get(limit_model))
    .route(
        "/v3/limits/{id}",
        get(limit_show).patch(limit_update).delete(limit_delete),
    )
}

// ---- rendering ----

/// `""` in the region column means "no region", shown as `null`.
fn region_out(region_id: &str) -> Value {
    if region_id.is_empty() {
        Value::Null
    } else {
        json!(region_id)
    }
}

fn registered_limit_json(base: &str, r: &RegisteredLimitRow) -> Value {
    json!({"id": r.id, "service_id": r.service_id, "region_id": region_out(&r.region_id),
        "resource_name": r.resource_name, "default_limit": r.default_limit,
        "description": r.description,
        "links": link(base, &format!("registered_limits/{}", r.id))})
}

fn limit_json(base: &str, l: &LimitRow) -> Value {
    json!({"id": l.id, "project_id": l.project_id, "domain_id": l.domain_id,
        "service_id": l.service_id, "region_id": region_out(&l.region_id),
        "resource_name": l.resource_name, "resource_limit": l.resource_limit,
        "description": l.description, "links": link(base, &format!("limits/{}", l.id))})
}

// ---- request validation (keystone/limit/schema.py) ----

/// Limits are stored in a signed 32-bit INT upstream; -1 means unlimited.
const LIMIT_MAX: i64 = 0x7FFF_FFFF;

fn invalid(key: &str, why: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("Invalid input for field '{key}': {why}."))
}

/// Refuses members of `obj` outside `allowed` (the schemas' `additionalProperties: false`).
fn only_known(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), Error> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            what,
            format_args!("Additional properties are not allowed ('{k}' was unexpected)"),
        )),
        None => Ok(()),
    }
}

/// A limit value: a JSON integer from -1 to 2^31-1. `Ok(None)` when absent.
fn limit_value(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, Error> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    // A float (even 5.0) or a boolean is not an integer to keystone's Draft 4 validator.
    let n = v
        .as_i64()
        .filter(|_| v.is_number())
        .ok_or_else(|| invalid(key, format_args!("{v} is not of type 'integer'")))?;
    if n < -1 {
        return Err(invalid(
            key,
            format_args!("{n} is less than the minimum of -1"),
        ));
    }
    if n > LIMIT_MAX {
        return Err(invalid(
            key,
            format_args!("{n} is greater than the maximum of {LIMIT_MAX}"),
        ));
    }
    Ok(Some(n))
}

/// A nullable description of at most 255 characters: `None` when absent, `Some(None)` for
/// `null`.
fn description(obj: &Map<String, Value>) -> Result<Option<Option<String>>, Error> {
    if !obj.contains_key("description") {
        return Ok(None);
    }
    let d = str_field(obj, "description", true)?;
    if d.as_ref().is_some_and(|d| d.chars().count() > 255) {
        return Err(invalid("description", "it is longer than 255 characters"));
    }
    Ok(Some(d))
}

/// A region id (`parameter_types.region_id`): `None` when absent, `Some(None)` for `null`,
/// else 1 to 255 characters.
fn region_field(obj: &Map<String, Value>) -> Result<Option<Option<String>>, Error> {
    if !obj.contains_key("region_id") {
        return Ok(None);
    }
    let r = str_field(obj, "region_id", true)?;
    if let Some(r) = &r {
        check_len("region_id", r, 255)?;
    }
    Ok(Some(r))
}

fn check_len(key: &str, v: &str, max: usize) -> Result<(), Error> {
    let n = v.chars().count();
    if n == 0 || n > max {
        return Err(invalid(
            key,
            format_args!("{v:?} must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// A project or domain id (`parameter_types.project_id`): 1 to 64 of `[a-zA-Z0-9-]`.
fn check_scope_id(key: &str, v: &str) -> Result<(), Error> {
    check_len(key, v, 64)?;
    if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(invalid(
            key,
            format_args!("{v:?} does not match '^[a-zA-Z0-9-]+$'"),
        ));
    }
    Ok(())
}

/// The list under `key` of a create body: at least one object, nothing else in the body.
fn create_items<'a>(body: &'a Value, key: &str) -> Result<Vec<&'a Map<String, Value>>, Error> {
    let top = body
        .as_object()
        .ok_or_else(|| Error::bad_request("The request body must be a JSON object."))?;
    only_known(top, &[key], "body")?;
    let items = match top.get(key) {
        None => {
            return Err(Error::bad_request(format!(
                "'{key}' is a required property."
            )));
        }
        Some(Value::Array(a)) => a,
        Some(other) => return Err(invalid(key, format_args!("{other} is not of type 'array'"))),
    };
    if items.is_empty() {
        return Err(invalid(key, "[] is too short"));
    }
    items
        .iter()
        .map(|i| {
            i.as_object()
                .ok_or_else(|| invalid(key, format_args!("{i} is not of type 'object'")))
        })
        .collect()
}

/// The object under `key` of an update body, nothing else in the body.
fn update_entity<'a>(body: &'a Value, key: &str) -> Result<&'a Map<String, Value>, Error> {
    if let Some(top) = body.as_object() {
        only_known(top, &[key], "body")?;
    }
    entity(body, key)
}

/// Query filters of the list calls: given ones must be non-empty (the query schemas reuse
/// the body types, all with a minimum length of 1).
fn query_filter<'q>(
    q: &'q std::collections::HashMap<String, String>,
    key: &str,
) -> Result<Option<&'q str>, Error> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => {
            check_len(key, v, 255)?;
            Ok(Some(v.as_str()))
        }
    }
}

// ---- existence checks (keystone.limit.core._assert_resource_exist) ----

/// Keystone's 400 for a reference to something that does not exist.
fn missing(attribute: &str, target: &str) -> Error {
    Error::bad_request(format!(
        "Expecting to find {attribute} in {target}. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."
    ))
}

async fn assert_service(id: &Identity, sid: &str, target: &str) -> Result<(), Error> {
    match db::service_get(&mut &id.db, sid).await? {
        Some(_) => Ok(()),
        None => Err(missing("service_id", target)),
    }
}

async fn assert_region(id: &Identity, rid: &str, target: &str) -> Result<(), Error> {
    match db::region_get(&mut &id.db, rid).await? {
        Some(_) => Ok(()),
        None => Err(missing("region_id", target)),
    }
}

fn duplicate(kind: &str) -> Error {
    Error::conflict(format!(
        "Conflict occurred attempting to store {kind} - Duplicate entry."
    ))
}

/// A unique key refusing the write is the same 409 as the check before it (a race).
fn stored(r: Result<(), ferro_db::DbError>, kind: &str) -> Result<(), Error> {
    r.map_err(|e| match e {
        ferro_db::DbError::Duplicate(_) => duplicate(kind),
        other => other.into(),
    })
}

fn in_use(rid: &str) -> Error {
    Error::Forbidden(format!(
        "Unable to update or delete registered limit {rid} because there are project limits associated with it."
    ))
}

// ---- registered limits ----

const REGISTERED_LIMIT_FIELDS: [&str; 5] = [
    "service_id",
    "region_id",
    "resource_name",
    "default_limit",
    "description",
];

async fn registered_limit_get(id: &Identity, rid: &str) -> Result<RegisteredLimitRow, Error> {
    db::registered_limit_get(&mut &id.db, rid)
        .await?
        .ok_or_else(|| Error::not_found("registered limit", rid))
}

/// Another registered limit with the same service, region and resource.
async fn registered_limit_taken(
    ex: &mut impl ferro_db::Executor,
    r: &RegisteredLimitRow,
) -> Result<bool, Error> {
    Ok(db::registered_limit_list(
        ex,
        &[
            ("service_id", Some(r.service_id.clone().into())),
            ("region_id", Some(r.region_id.clone().into())),
            ("resource_name", Some(r.resource_name.clone().into())),
        ],
    )
    .await?
    .iter()
    .any(|o| o.id != r.id))
}

async fn registered_limit_create(
    State(id): S,
    Auth(ctx): Auth,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_registered_limits",
        &json!({}),
    )?;
    let mut rows = Vec::new();
    for item in create_items(&body, "registered_limits")? {
        only_known(item, &REGISTERED_LIMIT_FIELDS, "registered_limits")?;
        let service_id = required_str(item, "service_id")?;
        let resource_name = name_field(item, "resource_name", 255, true)?.unwrap_or_default();
        let default_limit = limit_value(item, "default_limit")?
            .ok_or_else(|| Error::bad_request("'default_limit' is a required property."))?;
        let region = region_field(item)?.flatten();
        rows.push(RegisteredLimitRow {
            id: new_hex_id(),
            service_id,
            region_id: region.unwrap_or_default(),
            resource_name,
            default_limit,
            description: description(item)?.flatten(),
        });
    }
    for r in &rows {
        assert_service(&id, &r.service_id, "registered_limit").await?;
        if !r.region_id.is_empty() {
            assert_region(&id, &r.region_id, "registered_limit").await?;
        }
    }
    let mut tx = id.db.begin().await?;
    for r in &rows {
        if registered_limit_taken(&mut tx, r).await? {
            return Err(duplicate("registered_limit").into());
        }
        stored(
            db::registered_limit_upsert(&mut tx, r, true).await,
            "registered_limit",
        )?;
    }
    tx.commit().await?;
    let base = &id.config.public_url;
    ok(
        StatusCode::CREATED,
        json!({"registered_limits": rows.iter().map(|r| registered_limit_json(base, r)).collect::<Vec<_>>()}),
    )
}

async fn registered_limit_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_registered_limits",
        &json!({}),
    )?;
    let list = db::registered_limit_list(
        &mut &id.db,
        &[
            (
                "service_id",
                query_filter(&q, "service_id")?.map(Into::into),
            ),
            ("region_id", query_filter(&q, "region_id")?.map(Into::into)),
            (
                "resource_name",
                query_filter(&q, "resource_name")?.map(Into::into),
            ),
        ],
    )
    .await?;
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"registered_limits": list.iter().map(|r| registered_limit_json(base, r)).collect::<Vec<_>>(),
            "links": collection_links(base, "registered_limits")}),
    )
}

async fn registered_limit_show(
    State(id): S,
    Auth(ctx): Auth,
    Path(rid): Path<String>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_registered_limit",
        &json!({}),
    )?;
    let r = registered_limit_get(&id, &rid).await?;
    ok(
        StatusCode::OK,
        json!({"registered_limit": registered_limit_json(&id.config.public_url, &r)}),
    )
}

async fn registered_limit_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(rid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:update_registered_limit",
        &json!({}),
    )?;
    let e = update_entity(&body, "registered_limit")?;
    only_known(e, &REGISTERED_LIMIT_FIELDS, "registered_limit")?;
    let service_id = str_field(e, "service_id", false)?;
    let resource_name = name_field(e, "resource_name", 255, false)?;
    let default_limit = limit_value(e, "default_limit")?;
    let region = region_field(e)?;
    let desc = description(e)?;
    if let Some(s) = &service_id {
        assert_service(&id, s, "registered_limit").await?;
    }
    if let Some(Some(r)) = &region {
        assert_region(&id, r, "registered_limit").await?;
    }
    let mut row = registered_limit_get(&id, &rid).await?;
    // Upstream refuses any change, even of the description, once limits refer to it.
    if db::registered_limit_in_use(&mut &id.db, &rid).await? {
        return Err(in_use(&rid).into());
    }
    if let Some(s) = service_id {
        row.service_id = s;
    }
    if let Some(r) = region {
        row.region_id = r.unwrap_or_default();
    }
    if let Some(n) = resource_name {
        row.resource_name = n;
    }
    if let Some(d) = default_limit {
        row.default_limit = d;
    }
    if let Some(d) = desc {
        row.description = d;
    }
    if registered_limit_taken(&mut &id.db, &row).await? {
        return Err(duplicate("registered_limit").into());
    }
    stored(
        db::registered_limit_upsert(&mut &id.db, &row, false).await,
        "registered_limit",
    )?;
    ok(
        StatusCode::OK,
        json!({"registered_limit": registered_limit_json(&id.config.public_url, &row)}),
    )
}

async fn registered_limit_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path(rid): Path<String>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_registered_limit",
        &json!({}),
    )?;
    registered_limit_get(&id, &rid).await?;
    if db::registered_limit_in_use(&mut &id.db, &rid).await? {
        return Err(in_use(&rid).into());
    }
    if db::delete_by_id(&mut &id.db, "ks_registered_limit", &rid).await? == 0 {
        return Err(Error::not_found("registered limit", rid).into());
    }
    no_content()
}

// ---- limits ----

const LIMIT_FIELDS: [&str; 7] = [
    "project_id",
    "domain_id",
    "service_id",
    "region_id",
    "resource_name",
    "resource_limit",
    "description",
];

/// One validated item of `POST /v3/limits`, its owner resolved.
struct NewLimit {
    service_id: String,
    region_id: String,
    resource_name: String,
    project_id: Option<String>,
    domain_id: Option<String>,
    resource_limit: i64,
    description: Option<String>,
}

/// Validates one create item as keystone's `_limit_create` schema does.
fn limit_item(item: &Map<String, Value>) -> Result<NewLimit, Error> {
    only_known(item, &LIMIT_FIELDS, "limits")?;
    let service_id = required_str(item, "service_id")?;
    let resource_name = name_field(item, "resource_name", 255, true)?.unwrap_or_default();
    let resource_limit = limit_value(item, "resource_limit")?
        .ok_or_else(|| Error::bad_request("'resource_limit' is a required property."))?;
    // The schema's oneOf: exactly one of the two keys is present.
    if item.contains_key("project_id") == item.contains_key("domain_id") {
        return Err(Error::bad_request(
            "Invalid input for field 'limits': a limit names exactly one of project_id and domain_id.",
        ));
    }
    let project_id = str_field(item, "project_id", true)?;
    let domain_id = str_field(item, "domain_id", true)?;
    if let Some(p) = &project_id {
        check_scope_id("project_id", p)?;
    }
    if let Some(d) = &domain_id {
        check_scope_id("domain_id", d)?;
    }
    if project_id.is_none() && domain_id.is_none() {
        // Keystone's schema lets a lone `null` through and then fails with a 500.
        return Err(Error::bad_request(
            "Invalid input for field 'limits': project_id or domain_id must name a project or a domain.",
        ));
    }
    Ok(NewLimit {
        service_id,
        region_id: region_field(item)?.flatten().unwrap_or_default(),
        resource_name,
        project_id,
        domain_id,
        resource_limit,
        description: description(item)?.flatten(),
    })
}

/// Checks that the limit's service, region, project and domain exist; a "project" that is a
/// domain makes it a domain limit, as upstream.
async fn limit_resolve(id: &Identity, l: &mut NewLimit) -> Result<(), Error> {
    assert_service(id, &l.service_id, "limit").await?;
    if !l.region_id.is_empty() {
        assert_region(id, &l.region_id, "limit").await?;
    }
    if let Some(pid) = l.project_id.clone() {
        let p = db::project_get(&mut &id.db, &pid)
            .await?
            .ok_or_else(|| missing("project_id", "limit"))?;
        if p.is_domain {
            l.project_id = None;
            l.domain_id = Some(pid);
        }
    }
    if let Some(did) = &l.domain_id {
        db::project_get(&mut &id.db, did)
            .await?
            .filter(|d| d.is_domain)
            .ok_or_else(|| missing("domain_id", "limit"))?;
    }
    Ok(())
}

async fn limit_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:create_limits", &json!({}))?;
    let mut items = create_items(&body, "limits")?
        .into_iter()
        .map(limit_item)
        .collect::<Result<Vec<_>, _>>()?;
    for l in &mut items {
        limit_resolve(&id, l).await?;
    }
    let mut tx = id.db.begin().await?;
    let mut rows = Vec::new();
    for l in items {
        let registered = db::registered_limit_list(
            &mut tx,
            &[
                ("service_id", Some(l.service_id.clone().into())),
                ("region_id", Some(l.region_id.clone().into())),
                ("resource_name", Some(l.resource_name.clone().into())),
            ],
        )
        .await?;
        let Some(registered) = registered.into_iter().next() else {
            return Err(Error::Forbidden(
                "Unable to create a limit that has no corresponding registered limit.".into(),
            )
            .into());
        };
        let owner = match (&l.project_id, &l.domain_id) {
            (Some(p), _) => ("l.project_id", p.clone()),
            (None, Some(d)) => ("l.domain_id", d.clone()),
            (None, None) => return Err(Error::internal("limit without an owner").into()),
        };
        let taken = db::limit_list(
            &mut tx,
            &[
                ("l.registered_limit_id", Some(registered.id.clone().into())),
                (owner.0, Some(owner.1.into())),
            ],
        )
        .await?;
        if !taken.is_empty() {
            return Err(duplicate("limit").into());
        }
        let row = LimitRow {
            id: new_hex_id(),
            registered_limit_id: registered.id,
            project_id: l.project_id,
            domain_id: l.domain_id,
            resource_limit: l.resource_limit,
            description: l.description,
            service_id: registered.service_id,
            region_id: registered.region_id,
            resource_name: registered.resource_name,
        };
        stored(db::limit_upsert(&mut tx, &row, true).await, "limit")?;
        rows.push(row);
    }
    tx.commit().await?;
    let base = &id.config.public_url;
    ok(
        StatusCode::CREATED,
        json!({"limits": rows.iter().map(|l| limit_json(base, l)).collect::<Vec<_>>()}),
    )
}

/// Whether the caller sees every limit: keystone's list lets system-scoped tokens and the
/// `admin` and `service` roles past its scope filtering.
fn sees_all_limits(ctx: &RequestContext) -> bool {
    ctx.system_scope.is_some() || ctx.has_role("admin") || ctx.has_role("service")
}

async fn limit_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:list_limits", &json!({}))?;
    let mut eq: Vec<(&str, Option<ferro_db::Value>)> = vec![
        (
            "r.service_id",
            query_filter(&q, "service_id")?.map(Into::into),
        ),
        (
            "r.region_id",
            query_filter(&q, "region_id")?.map(Into::into),
        ),
        (
            "r.resource_name",
            query_filter(&q, "resource_name")?.map(Into::into),
        ),
        (
            "l.project_id",
            query_filter(&q, "project_id")?.map(Into::into),
        ),
        (
            "l.domain_id",
            query_filter(&q, "domain_id")?.map(Into::into),
        ),
    ];
    let list = if sees_all_limits(&ctx) {
        db::limit_list(&mut &id.db, &eq).await?
    } else if let Some(did) = &ctx.domain_id {
        // A domain-scoped reader sees the domain's limit and those of its projects.
        let projects: HashSet<String> = db::project_list(
            &mut &id.db,
            false,
            &[("domain_id", Some(did.clone().into()))],
        )
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
        let mut all = db::limit_list(&mut &id.db, &eq).await?;
        all.retain(|l| match (&l.project_id, &l.domain_id) {
            (Some(p), _) => projects.contains(p),
            (None, Some(d)) => d == did,
            (None, None) => false,
        });
        all
    } else if let Some(pid) = &ctx.project_id {
        // Added to any project_id filter given: another project's filter finds nothing.
        eq.push(("l.project_id", Some(pid.clone().into())));
        db::limit_list(&mut &id.db, &eq).await?
    } else {
        Vec::new()
    };
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"limits": list.iter().map(|l| limit_json(base, l)).collect::<Vec<_>>(),
            "links": collection_links(base, "limits")}),
    )
}

/// Keystone's `get_limit` target: the limit with its project or domain. An unknown limit
/// gives an empty target, so only callers allowed regardless of it learn it is missing.
async fn limit_target(id: &Identity, l: Option<&LimitRow>) -> Result<Value, Error> {
    let Some(l) = l else {
        return Ok(json!({}));
    };
    let mut limit = json!({"id": l.id, "project_id": l.project_id, "domain_id": l.domain_id,
        "service_id": l.service_id, "region_id": region_out(&l.region_id),
        "resource_name": l.resource_name, "resource_limit": l.resource_limit});
    if let Some(pid) = &l.project_id {
        if let Some(p) = db::project_get(&mut &id.db, pid).await? {
            limit["project"] = json!({"id": p.id, "name": p.name, "domain_id": p.domain_id});
        }
    } else if let Some(did) = &l.domain_id
        && let Some(d) = db::project_get(&mut &id.db, did).await?
    {
        limit["domain"] = json!({"id": d.id, "name": d.name});
    }
    Ok(json!({"target": {"limit": limit}}))
}

async fn limit_show(State(id): S, Auth(ctx): Auth, Path(lid): Path<String>) -> ApiResult {
    let l = db::limit_get(&mut &id.db, &lid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_limit",
        &limit_target(&id, l.as_ref()).await?,
    )?;
    let l = l.ok_or_else(|| Error::not_found("limit", &lid))?;
    ok(
        StatusCode::OK,
        json!({"limit": limit_json(&id.config.public_url, &l)}),
    )
}

async fn limit_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(lid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:update_limit", &json!({}))?;
    let e = update_entity(&body, "limit")?;
    only_known(e, &["resource_limit", "description"], "limit")?;
    let resource_limit = limit_value(e, "resource_limit")?;
    let desc = description(e)?;
    let mut row = db::limit_get(&mut &id.db, &lid)
        .await?
        .ok_or_else(|| Error::not_found("limit", &lid))?;
    // TODO-compat: keystone skips a falsy value here (a limit of 0, an empty or null
    // description); a value given is applied, 0 included, so a project can be shut off.
    if let Some(v) = resource_limit {
        row.resource_limit = v;
    }
    if let Some(d) = desc {
        row.description = d;
    }
    db::limit_upsert(&mut &id.db, &row, false).await?;
    ok(
        StatusCode::OK,
        json!({"limit": limit_json(&id.config.public_url, &row)}),
    )
}

async fn limit_delete(State(id): S, Auth(ctx): Auth, Path(lid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:delete_limit", &json!({}))?;
    if db::delete_by_id(&mut &id.db, "ks_limit", &lid).await? == 0 {
        return Err(Error::not_found("limit", lid).into());
    }
    no_content()
}

async fn limit_model(State(id): S, Auth(ctx): Auth) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:get_limit_model", &json!({}))?;
    ok(
        StatusCode::OK,
        json!({"model": {"name": "flat", "description": FLAT_MODEL_DESCRIPTION}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn limit_values_are_integers_from_minus_one_to_int_max() {
        let ok = |v: Value| limit_value(&obj(json!({"x": v})), "x");
        assert_eq!(ok(json!(-1)).unwrap(), Some(-1));
        assert_eq!(ok(json!(0)).unwrap(), Some(0));
        assert_eq!(ok(json!(2147483647)).unwrap(), Some(2147483647));
        for bad in [
            json!(-2),
            json!(2147483648i64),
            json!(5.0),
            json!("5"),
            json!(true),
        ] {
            assert_eq!(ok(bad.clone()).unwrap_err().status(), 400, "{bad}");
        }
        assert_eq!(limit_value(&obj(json!({})), "x").unwrap(), None);
    }

    #[test]
    fn a_limit_names_exactly_one_owner() {
        let base = json!({"service_id": "s", "resource_name": "r", "resource_limit": 1});
        let with = |extra: Value| {
            let mut m = obj(base.clone());
            m.extend(obj(extra));
            limit_item(&m).map(|l| (l.project_id, l.domain_id))
        };
        assert_eq!(
            with(json!({"project_id": "p"})).unwrap(),
            (Some("p".into()), None)
        );
        assert_eq!(
            with(json!({"domain_id": "d"})).unwrap(),
            (None, Some("d".into()))
        );
        for bad in [
            json!({}),
            json!({"project_id": "p", "domain_id": "d"}),
            json!({"project_id": null, "domain_id": "d"}),
            json!({"project_id": null}),
            json!({"project_id": "has space"}),
            json!({"project_id": "p", "extra": 1}),
        ] {
            assert_eq!(with(bad.clone()).unwrap_err().status(), 400, "{bad}");
        }
    }
}
