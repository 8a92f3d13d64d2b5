//! Keystone's extension APIs that hang off their own prefixes: OAuth1 consumers
//! (`OS-OAUTH1`), endpoint groups (`OS-EP-FILTER`), EC2 credentials (`OS-EC2`),
//! application credential access rules, trusts (`OS-TRUST`) and domain-specific
//! configuration (`/v3/domains/{id}/config`).

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use ferro_common::time::now_micros;
use ferro_common::{Error, RequestContext, new_hex_id};
use ferro_http::{Auth, Json};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::api::{ApiResult, Q, S, no_content, ok};
use crate::db;
use crate::manager::{Identity, TokenScope};
use crate::model::*;
use crate::policy::authorize;

/// The extension routes, added to identity's router.
pub fn routes(r: Router<Arc<Identity>>) -> Router<Arc<Identity>> {
    r.route(
        "/v3/OS-OAUTH1/consumers",
        get(consumer_list).post(consumer_create),
    )
    .route(
        "/v3/OS-OAUTH1/consumers/{id}",
        get(consumer_show)
            .patch(consumer_update)
            .delete(consumer_delete),
    )
    .route(
        "/v3/OS-EP-FILTER/endpoint_groups",
        get(endpoint_group_list).post(endpoint_group_create),
    )
    .route(
        "/v3/OS-EP-FILTER/endpoint_groups/{id}",
        get(endpoint_group_show)
            .patch(endpoint_group_update)
            .delete(endpoint_group_delete),
    )
    .route(
        "/v3/users/{id}/credentials/OS-EC2",
        get(ec2_list).post(ec2_create),
    )
    .route(
        "/v3/users/{id}/credentials/OS-EC2/{cid}",
        get(ec2_show).delete(ec2_delete),
    )
    .route("/v3/users/{id}/access_rules", get(access_rule_list))
    .route(
        "/v3/users/{id}/access_rules/{rid}",
        get(access_rule_show).delete(access_rule_delete),
    )
    .route("/v3/OS-TRUST/trusts", get(trust_list).post(trust_create))
    // Upstream's router accepts the collection with a trailing slash (tempest lists so).
    .route("/v3/OS-TRUST/trusts/", get(trust_list).post(trust_create))
    .route(
        "/v3/OS-TRUST/trusts/{id}",
        get(trust_show).delete(trust_delete),
    )
    .route("/v3/OS-TRUST/trusts/{id}/roles", get(trust_roles))
    .route("/v3/OS-TRUST/trusts/{id}/roles/{rid}", get(trust_role_show))
    .route("/v3/domains/config/default", get(config_default_all))
    .route(
        "/v3/domains/config/{group}/default",
        get(config_default_group),
    )
    .route(
        "/v3/domains/config/{group}/{option}/default",
        get(config_default_option),
    )
    .route(
        "/v3/domains/{id}/config",
        get(config_show)
            .put(config_create)
            .patch(config_update)
            .delete(config_delete),
    )
    .route(
        "/v3/domains/{id}/config/{group}",
        get(config_group_show)
            .patch(config_group_update)
            .delete(config_group_delete),
    )
    .route(
        "/v3/domains/{id}/config/{group}/{option}",
        get(config_option_show)
            .patch(config_option_update)
            .delete(config_option_delete),
    )
}

// ---- OS-OAUTH1 consumers ----

fn consumer_json(base: &str, c: &db::ConsumerRow) -> Value {
    let mut v = json!({"id": c.id, "description": c.description,
        "links": link(base, &format!("OS-OAUTH1/consumers/{}", c.id))});
    if let (Some(obj), Ok(Value::Object(extra))) =
        (v.as_object_mut(), serde_json::from_str::<Value>(&c.extra))
    {
        for (k, x) in extra {
            obj.entry(k).or_insert(x);
        }
    }
    v
}

async fn consumer_get(id: &Identity, cid: &str) -> Result<db::ConsumerRow, Error> {
    db::consumer_get(&mut &id.db, cid)
        .await?
        .ok_or_else(|| Error::not_found("consumer", cid))
}

async fn consumer_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:create_consumer", &json!({}))?;
    let c = entity(&body, "consumer")?;
    let secret = match str_field(c, "secret", true)? {
        Some(s) => s,
        None => new_hex_id(),
    };
    let row = db::ConsumerRow {
        id: new_hex_id(),
        description: str_field(c, "description", true)?,
        secret: secret.clone(),
        extra: extra_of(c, &["description", "secret"], None),
    };
    db::consumer_upsert(&mut &id.db, &row, true).await?;
    let mut v = consumer_json(&id.config.public_url, &row);
    v["secret"] = json!(secret);
    ok(StatusCode::CREATED, json!({"consumer": v}))
}

async fn consumer_list(State(id): S, Auth(ctx): Auth) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:list_consumers", &json!({}))?;
    let base = &id.config.public_url;
    let out: Vec<Value> = db::consumer_list(&mut &id.db)
        .await?
        .iter()
        .map(|c| consumer_json(base, c))
        .collect();
    ok(
        StatusCode::OK,
        json!({"consumers": out, "links": collection_links(base, "OS-OAUTH1/consumers")}),
    )
}

async fn consumer_show(State(id): S, Auth(ctx): Auth, Path(cid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:get_consumer", &json!({}))?;
    let c = consumer_get(&id, &cid).await?;
    ok(
        StatusCode::OK,
        json!({"consumer": consumer_json(&id.config.public_url, &c)}),
    )
}

async fn consumer_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(cid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:update_consumer", &json!({}))?;
    let mut row = consumer_get(&id, &cid).await?;
    let c = entity(&body, "consumer")?;
    if c.contains_key("secret") {
        // Upstream refuses to change a consumer's secret.
        return Err(
            Error::bad_request("Invalid input for field 'secret': it cannot be updated.").into(),
        );
    }
    if c.contains_key("description") {
        row.description = str_field(c, "description", true)?;
    }
    row.extra = extra_of(c, &["description", "secret"], Some(&row.extra));
    db::consumer_upsert(&mut &id.db, &row, false).await?;
    ok(
        StatusCode::OK,
        json!({"consumer": consumer_json(&id.config.public_url, &row)}),
    )
}

async fn consumer_delete(State(id): S, Auth(ctx): Auth, Path(cid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:delete_consumer", &json!({}))?;
    if db::delete_by_id(&mut &id.db, "ks_consumer", &cid).await? == 0 {
        return Err(Error::not_found("consumer", cid).into());
    }
    no_content()
}

// ---- OS-EP-FILTER endpoint groups ----

const ENDPOINT_GROUP_FILTERS: [&str; 3] = ["interface", "service_id", "region_id"];

fn endpoint_group_json(base: &str, g: &db::EndpointGroupRow) -> Value {
    let filters: Value = serde_json::from_str(&g.filters).unwrap_or_else(|_| json!({}));
    json!({"id": g.id, "name": g.name, "description": g.description, "filters": filters,
        "links": link(base, &format!("OS-EP-FILTER/endpoint_groups/{}", g.id))})
}

fn endpoint_group_filters(e: &Map<String, Value>) -> Result<Option<String>, Error> {
    match e.get("filters") {
        None => Ok(None),
        Some(Value::Object(f)) => {
            if f.is_empty() {
                return Err(Error::bad_request(
                    "Invalid input for field 'filters': {} does not have enough properties.",
                ));
            }
            for k in f.keys() {
                if !ENDPOINT_GROUP_FILTERS.contains(&k.as_str()) {
                    return Err(Error::bad_request(format!(
                        "{k} is not recognized as a valid filter; the valid filters are interface, service_id and region_id."
                    )));
                }
            }
            Ok(Some(Value::Object(f.clone()).to_string()))
        }
        Some(other) => Err(Error::bad_request(format!(
            "Invalid input for field 'filters': {other} is not of type 'object'."
        ))),
    }
}

async fn endpoint_group_get(id: &Identity, gid: &str) -> Result<db::EndpointGroupRow, Error> {
    db::endpoint_group_get(&mut &id.db, gid)
        .await?
        .ok_or_else(|| Error::not_found("endpoint group", gid))
}

async fn endpoint_group_create(
    State(id): S,
    Auth(ctx): Auth,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_endpoint_group",
        &json!({}),
    )?;
    let e = entity(&body, "endpoint_group")?;
    let row = db::EndpointGroupRow {
        id: new_hex_id(),
        name: name_field(e, "name", 255, true)?.unwrap_or_default(),
        description: str_field(e, "description", true)?,
        filters: endpoint_group_filters(e)?
            .ok_or_else(|| Error::bad_request("'filters' is a required property."))?,
    };
    db::endpoint_group_upsert(&mut &id.db, &row, true).await?;
    id.changed();
    ok(
        StatusCode::CREATED,
        json!({"endpoint_group": endpoint_group_json(&id.config.public_url, &row)}),
    )
}

async fn endpoint_group_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_endpoint_groups",
        &json!({}),
    )?;
    let base = &id.config.public_url;
    let out: Vec<Value> = db::endpoint_group_list(&mut &id.db, q.get("name").map(String::as_str))
        .await?
        .iter()
        .map(|g| endpoint_group_json(base, g))
        .collect();
    ok(
        StatusCode::OK,
        json!({"endpoint_groups": out, "links": collection_links(base, "OS-EP-FILTER/endpoint_groups")}),
    )
}

async fn endpoint_group_show(State(id): S, Auth(ctx): Auth, Path(gid): Path<String>) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_endpoint_group",
        &json!({}),
    )?;
    let g = endpoint_group_get(&id, &gid).await?;
    ok(
        StatusCode::OK,
        json!({"endpoint_group": endpoint_group_json(&id.config.public_url, &g)}),
    )
}

async fn endpoint_group_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(gid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:update_endpoint_group",
        &json!({}),
    )?;
    let mut row = endpoint_group_get(&id, &gid).await?;
    let e = entity(&body, "endpoint_group")?;
    if let Some(n) = name_field(e, "name", 255, false)? {
        row.name = n;
    }
    if e.contains_key("description") {
        row.description = str_field(e, "description", true)?;
    }
    if let Some(f) = endpoint_group_filters(e)? {
        row.filters = f;
    }
    db::endpoint_group_upsert(&mut &id.db, &row, false).await?;
    id.changed();
    ok(
        StatusCode::OK,
        json!({"endpoint_group": endpoint_group_json(&id.config.public_url, &row)}),
    )
}

async fn endpoint_group_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path(gid): Path<String>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_endpoint_group",
        &json!({}),
    )?;
    if db::delete_by_id(&mut &id.db, "ks_endpoint_group", &gid).await? == 0 {
        return Err(Error::not_found("endpoint group", gid).into());
    }
    id.changed();
    no_content()
}

// ---- OS-EC2 credentials ----

/// An EC2 credential is a credential of type `ec2` whose id is the SHA-256 of its access key.
fn ec2_credential_id(access: &str) -> String {
    Sha256::digest(access.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ec2_json(base: &str, c: &db::CredentialRow) -> Value {
    let blob: Value = serde_json::from_str(&c.blob).unwrap_or_else(|_| json!({}));
    let access = blob.get("access").cloned().unwrap_or(Value::Null);
    json!({"user_id": c.user_id, "tenant_id": c.project_id, "access": access,
        "secret": blob.get("secret").cloned().unwrap_or(Value::Null),
        "trust_id": blob.get("trust_id").cloned().unwrap_or(Value::Null),
        "links": {"self": format!("{base}/v3/users/{}/credentials/OS-EC2/{}", c.user_id,
            access.as_str().unwrap_or_default())}})
}

/// Upstream answers 401 for an unknown EC2 access key.
/// Loads the credential of `access` and checks `rule` against it: upstream builds the
/// policy target from the stored credential, so an unknown key is a 404.
async fn ec2_authorized(
    id: &Identity,
    ctx: &RequestContext,
    uid: &str,
    access: &str,
    rule: &str,
) -> Result<db::CredentialRow, Error> {
    let cred = db::credential_get(&mut &id.db, &ec2_credential_id(access))
        .await?
        .ok_or_else(|| Error::not_found("credential", access))?;
    authorize(
        &id.enforcer,
        ctx,
        rule,
        &json!({"user_id": uid, "target": {"credential": {"user_id": cred.user_id}}}),
    )?;
    Ok(cred)
}

/// A credential of another type under an EC2 key is refused as upstream refuses it.
fn ec2_only(cred: db::CredentialRow) -> Result<db::CredentialRow, Error> {
    if cred.kind == "ec2" {
        Ok(cred)
    } else {
        Err(Error::Unauthenticated("EC2 access key not found.".into()))
    }
}

/// Tokens made from an application credential may not manage EC2 credentials unless it
/// is unrestricted.
async fn ec2_check_delegation(id: &Identity, ctx: &RequestContext) -> Result<(), Error> {
    if let Some(cid) = &ctx.application_credential_id
        && db::app_cred_get(&mut &id.db, cid)
            .await?
            .is_none_or(|c| !c.unrestricted)
    {
        return Err(Error::Forbidden(
            "Using method 'application_credential' is not allowed for managing additional application credentials.".into(),
        ));
    }
    Ok(())
}

async fn ec2_create(
    State(id): S,
    Auth(ctx): Auth,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:ec2_create_credential",
        &json!({"user_id": uid, "target": {"credential": {"user_id": uid}}}),
    )?;
    ec2_check_delegation(&id, &ctx).await?;
    id.user(&uid).await?;
    let tenant = body
        .get("tenant_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    id.project(&tenant).await?;
    let access = new_hex_id();
    let row = db::CredentialRow {
        id: ec2_credential_id(&access),
        user_id: uid,
        project_id: Some(tenant),
        kind: "ec2".into(),
        blob: json!({"access": access, "secret": new_hex_id(), "trust_id": null}).to_string(),
        extra: "{}".into(),
    };
    db::credential_upsert(&mut &id.db, &row, true).await?;
    ok(
        StatusCode::CREATED,
        json!({"credential": ec2_json(&id.config.public_url, &row)}),
    )
}

async fn ec2_list(State(id): S, Auth(ctx): Auth, Path(uid): Path<String>) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:ec2_list_credentials",
        &json!({"user_id": uid}),
    )?;
    id.user(&uid).await?;
    let base = &id.config.public_url;
    let list = db::credential_list(
        &mut &id.db,
        &[
            ("user_id", Some(uid.as_str().into())),
            ("type", Some("ec2".into())),
        ],
    )
    .await?;
    let out: Vec<Value> = list.iter().map(|c| ec2_json(base, c)).collect();
    ok(
        StatusCode::OK,
        json!({"credentials": out, "links": collection_links(base, &format!("users/{uid}/credentials/OS-EC2"))}),
    )
}

async fn ec2_show(
    State(id): S,
    Auth(ctx): Auth,
    Path((uid, access)): Path<(String, String)>,
) -> ApiResult {
    let cred = ec2_authorized(&id, &ctx, &uid, &access, "identity:ec2_get_credential").await?;
    id.user(&uid).await?;
    let c = ec2_only(cred)?;
    ok(
        StatusCode::OK,
        json!({"credential": ec2_json(&id.config.public_url, &c)}),
    )
}

async fn ec2_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path((uid, access)): Path<(String, String)>,
) -> ApiResult {
    let cred = ec2_authorized(&id, &ctx, &uid, &access, "identity:ec2_delete_credential").await?;
    ec2_check_delegation(&id, &ctx).await?;
    id.user(&uid).await?;
    let c = ec2_only(cred)?;
    db::delete_by_id(&mut &id.db, "ks_credential", &c.id).await?;
    no_content()
}

// ---- access rules ----

/// An access rule as an application credential shows it.
pub fn access_rule_ref(r: &db::AccessRuleRow) -> Value {
    json!({"id": r.id, "service": r.service, "path": r.path, "method": r.method})
}

fn access_rule_json(base: &str, r: &db::AccessRuleRow) -> Value {
    let mut v = access_rule_ref(r);
    v["links"] = link(base, &format!("users/{}/access_rules/{}", r.user_id, r.id));
    v
}

const ACCESS_RULE_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Resolves the `access_rules` of a new application credential of `user_id`: rules named
/// by id must be the user's; others reuse the user's identical rule or are created.
pub async fn resolve_access_rules(
    id: &Identity,
    user_id: &str,
    rules: Option<&Value>,
) -> Result<Vec<db::AccessRuleRow>, Error> {
    let list = match rules {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(l)) => l,
        Some(_) => {
            return Err(Error::bad_request(
                "Invalid input for field 'access_rules': it is not of type 'array'.",
            ));
        }
    };
    let existing = db::access_rule_list(&mut &id.db, user_id).await?;
    let mut out: Vec<db::AccessRuleRow> = Vec::new();
    for item in list {
        let Some(obj) = item.as_object() else {
            return Err(Error::bad_request(
                "Invalid input for field 'access_rules': an access rule is not an object.",
            ));
        };
        if let Some(rid) = str_field(obj, "id", false)?
            && !obj.contains_key("service")
        {
            let r = existing
                .iter()
                .find(|r| r.id == rid)
                .cloned()
                .ok_or_else(|| Error::not_found("access rule", &rid))?;
            out.push(r);
            continue;
        }
        let service = required_str(obj, "service")?;
        let path = required_str(obj, "path")?;
        let method = required_str(obj, "method")?;
        if !ACCESS_RULE_METHODS.contains(&method.as_str()) {
            return Err(Error::bad_request(format!(
                "Invalid input for field 'method': {method:?} is not one of GET, HEAD, POST, PUT, PATCH, DELETE."
            )));
        }
        let found = existing
            .iter()
            .chain(out.iter())
            .find(|r| r.service == service && r.path == path && r.method == method)
            .cloned();
        let r = match found {
            Some(r) => r,
            None => {
                let r = db::AccessRuleRow {
                    id: new_hex_id(),
                    user_id: user_id.to_string(),
                    service,
                    path,
                    method,
                };
                db::access_rule_insert(&mut &id.db, &r).await?;
                r
            }
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

fn access_rule_target(uid: &str) -> Value {
    json!({"user_id": uid, "target": {"user": {"id": uid}}})
}

async fn access_rule_list(
    State(id): S,
    Auth(ctx): Auth,
    Path(uid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_access_rules",
        &access_rule_target(&uid),
    )?;
    let base = &id.config.public_url;
    let out: Vec<Value> = db::access_rule_list(&mut &id.db, &uid)
        .await?
        .iter()
        .filter(|r| {
            q.get("service").is_none_or(|s| *s == r.service)
                && q.get("path").is_none_or(|p| *p == r.path)
                && q.get("method").is_none_or(|m| *m == r.method)
        })
        .map(|r| access_rule_json(base, r))
        .collect();
    ok(
        StatusCode::OK,
        json!({"access_rules": out, "links": collection_links(base, &format!("users/{uid}/access_rules"))}),
    )
}

async fn access_rule_find(id: &Identity, uid: &str, rid: &str) -> Result<db::AccessRuleRow, Error> {
    db::access_rule_list(&mut &id.db, uid)
        .await?
        .into_iter()
        .find(|r| r.id == rid)
        .ok_or_else(|| Error::not_found("access rule", rid))
}

async fn access_rule_show(
    State(id): S,
    Auth(ctx): Auth,
    Path((uid, rid)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_access_rule",
        &access_rule_target(&uid),
    )?;
    let r = access_rule_find(&id, &uid, &rid).await?;
    ok(
        StatusCode::OK,
        json!({"access_rule": access_rule_json(&id.config.public_url, &r)}),
    )
}

async fn access_rule_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path((uid, rid)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_access_rule",
        &access_rule_target(&uid),
    )?;
    let r = access_rule_find(&id, &uid, &rid).await?;
    if db::access_rule_uses(&mut &id.db, &r.id).await? > 0 {
        return Err(Error::Forbidden(format!(
            "Cannot delete access rule {rid}: it is in use by an application credential."
        ))
        .into());
    }
    db::delete_by_id(&mut &id.db, "ks_access_rule", &r.id).await?;
    no_content()
}

// ---- OS-TRUST trusts ----

/// Keystone's default `[trust] max_redelegation_count`.
const MAX_REDELEGATION_COUNT: i64 = 3;

fn trust_role_ids(t: &db::TrustRow) -> Vec<String> {
    serde_json::from_str(&t.roles).unwrap_or_default()
}

/// A trust as upstream renders it; `roles` is `None` in listings (upstream leaves them out).
fn trust_json(base: &str, t: &db::TrustRow, roles: Option<Vec<Value>>) -> Value {
    let mut v = json!({"id": t.id, "trustor_user_id": t.trustor_user_id,
        "trustee_user_id": t.trustee_user_id, "project_id": t.project_id,
        "impersonation": t.impersonation,
        "expires_at": t.expires_at.map(ferro_common::time::keystone_format),
        "remaining_uses": t.remaining_uses, "allow_redelegation": t.allow_redelegation,
        "redelegation_count": t.redelegation_count,
        "redelegated_trust_id": t.redelegated_trust_id,
        "links": link(base, &format!("OS-TRUST/trusts/{}", t.id))});
    if let Some(roles) = roles {
        v["roles"] = json!(roles);
        v["roles_links"] = json!({"self": format!("{base}/v3/OS-TRUST/trusts/{}/roles", t.id),
            "previous": null, "next": null});
    }
    v
}

async fn trust_roles_json(id: &Identity, t: &db::TrustRow) -> Result<Vec<Value>, Error> {
    let base = &id.config.public_url;
    let mut out = Vec::new();
    for rid in trust_role_ids(t) {
        if let Some(r) = db::role_get(&mut &id.db, &rid).await? {
            out.push(role_json(base, &r));
        }
    }
    Ok(out)
}

/// A live trust: expired or exhausted trusts are not found, as upstream.
async fn trust_get(id: &Identity, tid: &str) -> Result<db::TrustRow, Error> {
    db::trust_get(&mut &id.db, tid)
        .await?
        .filter(trust_live)
        .ok_or_else(|| Error::not_found("trust", tid))
}

fn trust_live(t: &db::TrustRow) -> bool {
    t.expires_at.is_none_or(|e| e > now_micros()) && t.remaining_uses.is_none_or(|u| u > 0)
}

fn trust_target(t: &db::TrustRow) -> Value {
    json!({"target": {"trust": {"id": t.id, "trustor_user_id": t.trustor_user_id,
        "trustee_user_id": t.trustee_user_id, "project_id": t.project_id}}})
}

/// Trusts may not be read or managed with a token made from an application credential.
fn trust_no_app_cred(ctx: &RequestContext) -> Result<(), Error> {
    if ctx.application_credential_id.is_some() {
        return Err(Error::Forbidden(
            "Using method 'application_credential' is not allowed for managing trusts.".into(),
        ));
    }
    Ok(())
}

async fn trust_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    let t = entity(&body, "trust")?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_trust",
        &json!({"target": {"trust": Value::Object(t.clone())}}),
    )?;
    trust_no_app_cred(&ctx)?;
    let trustor = required_str(t, "trustor_user_id")?;
    let trustee = required_str(t, "trustee_user_id")?;
    let impersonation = bool_field(t, "impersonation")?
        .ok_or_else(|| Error::bad_request("'impersonation' is a required property."))?;
    let project_id = str_field(t, "project_id", true)?.filter(|p| !p.is_empty());
    let role_refs: Vec<Value> = match t.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(l)) => l.clone(),
        Some(_) => {
            return Err(Error::bad_request(
                "Invalid input for field 'roles': it is not of type 'array'.",
            )
            .into());
        }
    };
    let remaining_uses = match t.get("remaining_uses") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(Error::bad_request(format!(
                    "Invalid input for field 'remaining_uses': {v} is not a positive integer."
                ))
                .into());
            }
        },
    };
    let allow_redelegation = bool_field(t, "allow_redelegation")?.unwrap_or(false);
    let expires_at = match str_field(t, "expires_at", true)? {
        Some(s) => {
            let e = ferro_common::time::parse_iso8601(&s).ok_or_else(|| {
                Error::bad_request(format!(
                    "Invalid input for field 'expires_at': {s:?} is not a valid date-time."
                ))
            })?;
            if e <= now_micros() {
                return Err(Error::bad_request("'expires_at' must not be before now.").into());
            }
            Some(e)
        }
        None => None,
    };
    if project_id.is_some() && role_refs.is_empty() {
        return Err(Error::Forbidden("At least one role should be specified.".into()).into());
    }
    if ctx.user_id != trustor {
        return Err(
            Error::Forbidden("The authenticated user should match the trustor.".into()).into(),
        );
    }
    id.user(&trustee).await?;
    // Roles named by id or by (global) name.
    let mut role_ids: Vec<String> = Vec::new();
    for r in &role_refs {
        let rid = if let Some(rid) = r.get("id").and_then(Value::as_str) {
            id.role(rid).await?.id
        } else if let Some(name) = r.get("name").and_then(Value::as_str) {
            db::role_list(
                &mut &id.db,
                &[("name", Some(name.into())), ("domain_id", Some("".into()))],
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found("role", name))?
            .id
        } else {
            return Err(Error::bad_request("A trust role needs an id or a name.").into());
        };
        if !role_ids.contains(&rid) {
            role_ids.push(rid);
        }
    }
    // The trustor must hold every delegated role on the project (implied roles count).
    if let Some(pid) = &project_id {
        let project = id.project(pid).await?;
        let domain_name = id.domain(&project.domain_id).await?.name;
        let scope = TokenScope::Project {
            project,
            domain_name,
        };
        let held: HashSet<String> = id
            .expand_implied(&id.direct_roles(&trustor, &scope).await?)
            .await?;
        if let Some(missing) = role_ids.iter().find(|r| !held.contains(*r)) {
            return Err(Error::not_found("role", missing).into());
        }
    }
    let row = db::TrustRow {
        id: new_hex_id(),
        trustor_user_id: trustor,
        trustee_user_id: trustee,
        project_id,
        impersonation,
        expires_at,
        remaining_uses,
        allow_redelegation,
        redelegation_count: if allow_redelegation {
            MAX_REDELEGATION_COUNT
        } else {
            0
        },
        redelegated_trust_id: None,
        roles: json!(role_ids).to_string(),
        extra: "{}".into(),
        created_at: now_micros(),
    };
    db::trust_insert(&mut &id.db, &row).await?;
    let roles = trust_roles_json(&id, &row).await?;
    ok(
        StatusCode::CREATED,
        json!({"trust": trust_json(&id.config.public_url, &row, Some(roles))}),
    )
}

async fn trust_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    let trustor = q.get("trustor_user_id").filter(|s| !s.is_empty());
    let trustee = q.get("trustee_user_id").filter(|s| !s.is_empty());
    let filters: Vec<(&str, Option<ferro_db::Value>)> = if let Some(u) = trustor {
        authorize(
            &id.enforcer,
            &ctx,
            "identity:list_trusts_for_trustor",
            &json!({"target": {"trust": {"trustor_user_id": u}}}),
        )?;
        vec![("trustor_user_id", Some(u.as_str().into()))]
    } else if let Some(u) = trustee {
        authorize(
            &id.enforcer,
            &ctx,
            "identity:list_trusts_for_trustee",
            &json!({"target": {"trust": {"trustee_user_id": u}}}),
        )?;
        vec![("trustee_user_id", Some(u.as_str().into()))]
    } else {
        authorize(&id.enforcer, &ctx, "identity:list_trusts", &json!({}))?;
        Vec::new()
    };
    trust_no_app_cred(&ctx)?;
    let base = &id.config.public_url;
    let out: Vec<Value> = db::trust_list(&mut &id.db, &filters)
        .await?
        .iter()
        .filter(|t| trust_live(t))
        .map(|t| trust_json(base, t, None))
        .collect();
    ok(
        StatusCode::OK,
        json!({"trusts": out, "links": collection_links(base, "OS-TRUST/trusts")}),
    )
}

async fn trust_show(State(id): S, Auth(ctx): Auth, Path(tid): Path<String>) -> ApiResult {
    let t = trust_get(&id, &tid).await?;
    authorize(&id.enforcer, &ctx, "identity:get_trust", &trust_target(&t))?;
    trust_no_app_cred(&ctx)?;
    let roles = trust_roles_json(&id, &t).await?;
    ok(
        StatusCode::OK,
        json!({"trust": trust_json(&id.config.public_url, &t, Some(roles))}),
    )
}

async fn trust_delete(State(id): S, Auth(ctx): Auth, Path(tid): Path<String>) -> ApiResult {
    let t = trust_get(&id, &tid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_trust",
        &trust_target(&t),
    )?;
    trust_no_app_cred(&ctx)?;
    db::delete_by_id(&mut &id.db, "ks_trust", &t.id).await?;
    no_content()
}

async fn trust_roles(State(id): S, Auth(ctx): Auth, Path(tid): Path<String>) -> ApiResult {
    let t = trust_get(&id, &tid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_roles_for_trust",
        &trust_target(&t),
    )?;
    trust_no_app_cred(&ctx)?;
    let base = &id.config.public_url;
    let roles = trust_roles_json(&id, &t).await?;
    ok(
        StatusCode::OK,
        json!({"roles": roles, "links": {"self": format!("{base}/v3/OS-TRUST/trusts/{}/roles", t.id),
            "previous": null, "next": null}}),
    )
}

async fn trust_role_show(
    State(id): S,
    Auth(ctx): Auth,
    Path((tid, rid)): Path<(String, String)>,
) -> ApiResult {
    let t = trust_get(&id, &tid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_role_for_trust",
        &trust_target(&t),
    )?;
    trust_no_app_cred(&ctx)?;
    if !trust_role_ids(&t).contains(&rid) {
        return Err(Error::not_found("role", rid).into());
    }
    let r = id.role(&rid).await?;
    ok(
        StatusCode::OK,
        json!({"role": role_json(&id.config.public_url, &r)}),
    )
}

// ---- domain-specific configuration ----

/// The options a domain may set, with keystone's defaults (`[identity]`, `[ldap]`).
const CONFIG_IDENTITY: &[(&str, &str)] = &[("driver", r#""sql""#), ("list_limit", "null")];
const CONFIG_LDAP: &[(&str, &str)] = &[
    ("url", r#""ldap://localhost""#),
    ("user", "null"),
    ("suffix", r#""cn=example,cn=com""#),
    ("query_scope", r#""one""#),
    ("page_size", "0"),
    ("alias_dereferencing", r#""default""#),
    ("debug_level", "null"),
    ("chase_referrals", "null"),
    ("user_tree_dn", "null"),
    ("user_filter", "null"),
    ("user_objectclass", r#""inetOrgPerson""#),
    ("user_id_attribute", r#""cn""#),
    ("user_name_attribute", r#""sn""#),
    ("user_mail_attribute", r#""mail""#),
    ("user_description_attribute", r#""description""#),
    ("user_pass_attribute", r#""userPassword""#),
    ("user_enabled_attribute", r#""enabled""#),
    ("user_enabled_invert", "false"),
    ("user_enabled_mask", "0"),
    ("user_enabled_default", r#""True""#),
    ("user_attribute_ignore", r#"["default_project_id"]"#),
    ("user_default_project_id_attribute", "null"),
    ("user_enabled_emulation", "false"),
    ("user_enabled_emulation_dn", "null"),
    ("user_enabled_emulation_use_group_config", "false"),
    ("user_additional_attribute_mapping", "[]"),
    ("group_tree_dn", "null"),
    ("group_filter", "null"),
    ("group_objectclass", r#""groupOfNames""#),
    ("group_id_attribute", r#""cn""#),
    ("group_name_attribute", r#""ou""#),
    ("group_members_are_ids", "false"),
    ("group_member_attribute", r#""member""#),
    ("group_desc_attribute", r#""description""#),
    ("group_attribute_ignore", "[]"),
    ("group_additional_attribute_mapping", "[]"),
    ("tls_cacertfile", "null"),
    ("tls_cacertdir", "null"),
    ("use_tls", "false"),
    ("tls_req_cert", r#""demand""#),
    ("use_pool", "true"),
    ("pool_size", "10"),
    ("pool_retry_max", "3"),
    ("pool_retry_delay", "0.1"),
    ("pool_connection_timeout", "-1"),
    ("pool_connection_lifetime", "600"),
    ("use_auth_pool", "true"),
    ("auth_pool_size", "100"),
    ("auth_pool_connection_lifetime", "60"),
];

fn config_whitelist(group: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match group {
        "identity" => Some(CONFIG_IDENTITY),
        "ldap" => Some(CONFIG_LDAP),
        _ => None,
    }
}

/// Options stored but never shown.
fn config_sensitive(group: &str, option: &str) -> bool {
    group == "ldap" && option == "password"
}

fn invalid_config(reason: impl std::fmt::Display) -> Error {
    Error::Forbidden(format!("Invalid domain specific configuration: {reason}."))
}

fn config_check(group: &str, option: Option<&str>) -> Result<(), Error> {
    let Some(list) = config_whitelist(group) else {
        return Err(invalid_config(format_args!(
            "Group {group} is not supported for domain specific configurations"
        )));
    };
    if let Some(o) = option
        && !list.iter().any(|(n, _)| *n == o)
        && !config_sensitive(group, o)
    {
        return Err(invalid_config(format_args!(
            "Option {o} in group {group} is not supported for domain specific configurations"
        )));
    }
    Ok(())
}

/// Validates a request's `config` object: groups of options, all supported.
fn config_body(body: &Value) -> Result<&Map<String, Value>, Error> {
    let config = entity(body, "config")?;
    if config.is_empty() {
        return Err(invalid_config("No options specified"));
    }
    for (group, opts) in config {
        let Some(opts) = opts.as_object().filter(|o| !o.is_empty()) else {
            return Err(invalid_config(format_args!(
                "The value of group {group} specified in the config should be a dictionary of options"
            )));
        };
        for o in opts.keys() {
            config_check(group, Some(o))?;
        }
    }
    Ok(config)
}

fn config_default_value(group: &str, option: &str) -> Value {
    config_whitelist(group)
        .and_then(|l| l.iter().find(|(n, _)| *n == option))
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .unwrap_or(Value::Null)
}

fn config_default_group_json(group: &str) -> Value {
    let mut g = Map::new();
    for (n, _) in config_whitelist(group).unwrap_or_default() {
        g.insert((*n).to_string(), config_default_value(group, n));
    }
    Value::Object(g)
}

async fn config_default_all(State(id): S, Auth(ctx): Auth) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_domain_config_default",
        &json!({}),
    )?;
    ok(
        StatusCode::OK,
        json!({"config": {"identity": config_default_group_json("identity"),
            "ldap": config_default_group_json("ldap")}}),
    )
}

async fn config_default_group(
    State(id): S,
    Auth(ctx): Auth,
    Path(group): Path<String>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_domain_config_default",
        &json!({}),
    )?;
    config_check(&group, None)?;
    ok(
        StatusCode::OK,
        json!({"config": {group.clone(): config_default_group_json(&group)}}),
    )
}

async fn config_default_option(
    State(id): S,
    Auth(ctx): Auth,
    Path((group, option)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_domain_config_default",
        &json!({}),
    )?;
    config_check(&group, Some(&option))?;
    if config_sensitive(&group, &option) {
        return Err(invalid_config(format_args!(
            "Reading the default for option {option} in group {group} is not supported"
        ))
        .into());
    }
    ok(
        StatusCode::OK,
        json!({"config": {option.clone(): config_default_value(&group, &option)}}),
    )
}

/// The domain's shown (non-sensitive) options as `{group: {option: value}}`.
async fn config_load(id: &Identity, did: &str) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for r in db::domain_config_list(&mut &id.db, did).await? {
        if r.sensitive {
            continue;
        }
        let v = serde_json::from_str(&r.opt_value).unwrap_or(Value::Null);
        if let Value::Object(g) = out
            .entry(r.grp.clone())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            g.insert(r.opt, v);
        }
    }
    Ok(out)
}

/// Every option of `did`, sensitive ones included: `(group, option)`.
async fn config_keys(id: &Identity, did: &str) -> Result<Vec<(String, String)>, Error> {
    Ok(db::domain_config_list(&mut &id.db, did)
        .await?
        .into_iter()
        .map(|r| (r.grp, r.opt))
        .collect())
}

fn config_not_found(did: &str, what: String) -> Error {
    Error::not_found("domain config", format!("{what} for domain {did}"))
}

async fn config_store(id: &Identity, did: &str, config: &Map<String, Value>) -> Result<(), Error> {
    let mut tx = id.db.begin().await?;
    for (group, opts) in config {
        for (o, v) in opts.as_object().into_iter().flatten() {
            db::domain_config_set(
                &mut tx,
                &db::DomainConfigRow {
                    domain_id: did.to_string(),
                    grp: group.clone(),
                    opt: o.clone(),
                    opt_value: v.to_string(),
                    sensitive: config_sensitive(group, o),
                },
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn config_create(
    State(id): S,
    Auth(ctx): Auth,
    Path(did): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_domain_config",
        &json!({"domain_id": did}),
    )?;
    id.domain(&did).await?;
    let config = config_body(&body)?;
    // Creating replaces any previous config: 200 then, 201 for a new one.
    let existed = !config_keys(&id, &did).await?.is_empty();
    db::domain_config_delete(&mut &id.db, &did, None, None).await?;
    config_store(&id, &did, config).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    ok(status, json!({"config": config_load(&id, &did).await?}))
}

async fn config_show(State(id): S, Auth(ctx): Auth, Path(did): Path<String>) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_domain_config",
        &json!({"domain_id": did}),
    )?;
    id.domain(&did).await?;
    let config = config_load(&id, &did).await?;
    if config.is_empty() {
        return Err(config_not_found(&did, "any options".into()).into());
    }
    ok(StatusCode::OK, json!({"config": config}))
}

/// `PATCH` of the whole config, a group or an option: merged into the stored config. A
/// named group or option must be the only thing in the body and must already be set.
async fn config_patch(
    id: &Identity,
    ctx: &RequestContext,
    did: &str,
    group: Option<&str>,
    option: Option<&str>,
    body: &Value,
) -> ApiResult {
    authorize(
        &id.enforcer,
        ctx,
        "identity:update_domain_config",
        &json!({"domain_id": did}),
    )?;
    id.domain(did).await?;
    let wrapped;
    let config = match (group, option) {
        (Some(g), Some(o)) => {
            config_check(g, Some(o))?;
            let c = entity(body, "config")?;
            if c.len() != 1 || !c.contains_key(o) {
                return Err(invalid_config(format_args!(
                    "Trying to update option {o} in group {g}, so that, and only that, option must be specified in the config"
                ))
                .into());
            }
            wrapped = json!({"config": {g: Value::Object(c.clone())}});
            config_body(&wrapped)?
        }
        (Some(g), None) => {
            config_check(g, None)?;
            let c = config_body(body)?;
            if c.len() != 1 || !c.contains_key(g) {
                return Err(invalid_config(format_args!(
                    "Trying to update group {g}, so that, and only that, group must be specified in the config"
                ))
                .into());
            }
            c
        }
        _ => config_body(body)?,
    };
    let keys = config_keys(id, did).await?;
    if let Some(g) = group {
        let present = match option {
            Some(o) => keys.iter().any(|(kg, ko)| kg == g && ko == o),
            None => keys.iter().any(|(kg, _)| kg == g),
        };
        if !present {
            let what = match option {
                Some(o) => format!("option {o} in group {g}"),
                None => format!("group {g}"),
            };
            return Err(config_not_found(did, what).into());
        }
    }
    config_store(id, did, config).await?;
    ok(
        StatusCode::OK,
        json!({"config": config_load(id, did).await?}),
    )
}

async fn config_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(did): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    config_patch(&id, &ctx, &did, None, None, &body).await
}

async fn config_group_update(
    State(id): S,
    Auth(ctx): Auth,
    Path((did, group)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult {
    config_patch(&id, &ctx, &did, Some(&group), None, &body).await
}

async fn config_option_update(
    State(id): S,
    Auth(ctx): Auth,
    Path((did, group, option)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> ApiResult {
    config_patch(&id, &ctx, &did, Some(&group), Some(&option), &body).await
}

async fn config_group_show(
    State(id): S,
    Auth(ctx): Auth,
    Path((did, group)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_domain_config",
        &json!({"domain_id": did}),
    )?;
    id.domain(&did).await?;
    config_check(&group, None)?;
    let config = config_load(&id, &did).await?;
    let g = config
        .get(&group)
        .cloned()
        .ok_or_else(|| config_not_found(&did, format!("group {group}")))?;
    ok(StatusCode::OK, json!({"config": {group: g}}))
}

async fn config_option_show(
    State(id): S,
    Auth(ctx): Auth,
    Path((did, group, option)): Path<(String, String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_domain_config",
        &json!({"domain_id": did}),
    )?;
    id.domain(&did).await?;
    config_check(&group, Some(&option))?;
    let config = config_load(&id, &did).await?;
    let v = config
        .get(&group)
        .and_then(|g| g.get(&option))
        .cloned()
        .ok_or_else(|| config_not_found(&did, format!("option {option} in group {group}")))?;
    ok(StatusCode::OK, json!({"config": {option: v}}))
}

async fn config_remove(
    id: &Identity,
    ctx: &RequestContext,
    did: &str,
    group: Option<&str>,
    option: Option<&str>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        ctx,
        "identity:delete_domain_config",
        &json!({"domain_id": did}),
    )?;
    id.domain(did).await?;
    if let Some(g) = group {
        config_check(g, option)?;
    }
    let n = db::domain_config_delete(&mut &id.db, did, group, option).await?;
    if n == 0 && group.is_some() {
        let what = match (group, option) {
            (Some(g), Some(o)) => format!("option {o} in group {g}"),
            (Some(g), None) => format!("group {g}"),
            _ => "any options".into(),
        };
        return Err(config_not_found(did, what).into());
    }
    no_content()
}

async fn config_delete(State(id): S, Auth(ctx): Auth, Path(did): Path<String>) -> ApiResult {
    config_remove(&id, &ctx, &did, None, None).await
}

async fn config_group_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path((did, group)): Path<(String, String)>,
) -> ApiResult {
    config_remove(&id, &ctx, &did, Some(&group), None).await
}

async fn config_option_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path((did, group, option)): Path<(String, String, String)>,
) -> ApiResult {
    config_remove(&id, &ctx, &did, Some(&group), Some(&option)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_credential_id_is_the_sha256_of_the_access_key() {
        // hashlib.sha256(b"abc").hexdigest(), as keystone's hash_access_key.
        assert_eq!(
            ec2_credential_id("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn domain_config_accepts_only_whitelisted_groups_and_options() {
        assert!(config_check("identity", Some("driver")).is_ok());
        assert!(config_check("ldap", Some("password")).is_ok());
        assert_eq!(
            config_check("ldap", Some("nope")).unwrap_err().status(),
            403
        );
        assert_eq!(config_check("oslo", None).unwrap_err().status(), 403);
        let body = json!({"config": {"identity": {"driver": "ldap"}, "ldap": {}}});
        assert!(config_body(&body).is_err());
        assert_eq!(config_default_value("ldap", "pool_size"), json!(10));
        assert_eq!(
            config_default_value("ldap", "user_attribute_ignore"),
            json!(["default_project_id"])
        );
        // Every default is valid JSON.
        for (group, list) in [("identity", CONFIG_IDENTITY), ("ldap", CONFIG_LDAP)] {
            for (name, raw) in list {
                assert!(serde_json::from_str::<Value>(raw).is_ok(), "{group}.{name}");
            }
        }
    }
}
