//! Identity API v3 routes and their handlers: parse, authorise, delegate, answer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ferro_common::time::now_micros;
use ferro_common::{Error, RequestContext, new_hex_id};
use ferro_http::{Auth, FaultStyle, Json};
use serde_json::{Map, Value, json};

use crate::db::{self, AssignmentRow, ProjectRow, ROOT_DOMAIN};
use crate::manager::{Identity, TokenData, TokenScope};
use crate::model::*;
use crate::policy::authorize;

pub(crate) type S = State<Arc<Identity>>;
pub(crate) type Q = Query<HashMap<String, String>>;
pub(crate) type ApiResult = Result<Response, Fault>;

ferro_http::service_fault!(
    /// An error answered as a Keystone fault.
    Fault,
    FaultStyle::Keystone
);

pub(crate) fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

/// The answer to a create-or-update: 201 for a new record, 200 for a changed one.
pub(crate) fn saved(creating: bool, body: Value) -> ApiResult {
    ok(
        if creating {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        body,
    )
}

pub(crate) fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The version document keystoneauth parses, for `GET /v3` and inside `GET /`.
fn version_doc(base: &str) -> Value {
    json!({"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]})
}

/// Identity's router. Every route checks its policy rule before it reads or writes.
pub fn router(state: Arc<Identity>) -> Router {
    let mut r = Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route(
            "/v3/auth/tokens",
            post(token_issue)
                .get(token_validate)
                .head(token_check)
                .delete(token_revoke),
        )
        .route("/v3/auth/catalog", get(auth_catalog))
        .route("/v3/auth/projects", get(auth_projects))
        .route("/v3/auth/domains", get(auth_domains))
        .route("/v3/auth/system", get(auth_system))
        .route("/v3/domains", get(domain_list).post(domain_create))
        .route(
            "/v3/domains/{id}",
            get(domain_show).patch(domain_update).delete(domain_delete),
        )
        .route("/v3/projects", get(project_list).post(project_create))
        .route(
            "/v3/projects/{id}",
            get(project_show)
                .patch(project_update)
                .delete(project_delete),
        )
        .route(
            "/v3/projects/{id}/tags",
            get(project_tags_list)
                .put(project_tags_replace)
                .delete(project_tags_clear),
        )
        .route(
            "/v3/projects/{id}/tags/{tag}",
            get(project_tag_check)
                .put(project_tag_add)
                .delete(project_tag_delete),
        )
        .route("/v3/users", get(user_list).post(user_create))
        .route(
            "/v3/users/{id}",
            get(user_show).patch(user_update).delete(user_delete),
        )
        .route("/v3/users/{id}/password", post(user_password))
        .route("/v3/users/{id}/groups", get(user_groups))
        .route("/v3/users/{id}/projects", get(user_projects))
        .route(
            "/v3/users/{id}/application_credentials",
            get(app_cred_list).post(app_cred_create),
        )
        .route(
            "/v3/users/{id}/application_credentials/{cid}",
            get(app_cred_show).delete(app_cred_delete),
        )
        .route("/v3/groups", get(group_list).post(group_create))
        .route(
            "/v3/groups/{id}",
            get(group_show).patch(group_update).delete(group_delete),
        )
        .route("/v3/groups/{id}/users", get(group_users))
        .route(
            "/v3/groups/{id}/users/{uid}",
            put(group_user_add)
                .head(group_user_check)
                .get(group_user_check)
                .delete(group_user_remove),
        )
        .route("/v3/roles", get(role_list).post(role_create))
        .route(
            "/v3/roles/{id}",
            get(role_show).patch(role_update).delete(role_delete),
        )
        .route("/v3/roles/{id}/implies", get(implied_list))
        .route(
            "/v3/roles/{id}/implies/{iid}",
            put(implied_create)
                .get(implied_show)
                .head(implied_check)
                .delete(implied_delete),
        )
        .route("/v3/role_inferences", get(role_inferences))
        .route("/v3/role_assignments", get(role_assignments))
        .route("/v3/regions", get(region_list).post(region_create))
        .route(
            "/v3/regions/{id}",
            get(region_show)
                .put(region_put)
                .patch(region_update)
                .delete(region_delete),
        )
        .route("/v3/services", get(service_list).post(service_create))
        .route(
            "/v3/services/{id}",
            get(service_show)
                .patch(service_update)
                .delete(service_delete),
        )
        .route("/v3/endpoints", get(endpoint_list).post(endpoint_create))
        .route(
            "/v3/endpoints/{id}",
            get(endpoint_show)
                .patch(endpoint_update)
                .delete(endpoint_delete),
        )
        .route(
            "/v3/credentials",
            get(credential_list).post(credential_create),
        )
        .route(
            "/v3/credentials/{id}",
            get(credential_show)
                .patch(credential_update)
                .delete(credential_delete),
        )
        .route("/v3/policies", get(policy_list).post(policy_create))
        .route(
            "/v3/policies/{id}",
            get(policy_show).patch(policy_update).delete(policy_delete),
        );
    // Grants: {projects,domains,system} x {users,groups}.
    for target in ["projects", "domains", "system"] {
        for actor in ["users", "groups"] {
            let prefix = if target == "system" {
                format!("/v3/system/{actor}/{{aid}}/roles")
            } else {
                format!("/v3/{target}/{{tid}}/{actor}/{{aid}}/roles")
            };
            let kind = grant_kind(target, actor);
            r = r
                .route(
                    &prefix,
                    get(move |s: S, a: Auth, p: Path<HashMap<String, String>>| {
                        grant_list(s, a, p, (kind, false))
                    }),
                )
                .route(
                    &format!("{prefix}/{{rid}}"),
                    put(move |s: S, a: Auth, p: Path<HashMap<String, String>>| {
                        grant_put(s, a, p, (kind, false))
                    })
                    .get(move |s: S, a: Auth, p: Path<HashMap<String, String>>| {
                        grant_check(s, a, p, (kind, false))
                    })
                    .head(move |s: S, a: Auth, p: Path<HashMap<String, String>>| {
                        grant_check(s, a, p, (kind, false))
                    })
                    .delete(
                        move |s: S, a: Auth, p: Path<HashMap<String, String>>| {
                            grant_delete(s, a, p, (kind, false))
                        },
                    ),
                );
        }
    }
    // OS-INHERIT: inherited grants on domains and projects, applying to the projects below.
    for target in ["projects", "domains"] {
        for actor in ["users", "groups"] {
            let prefix = format!("/v3/OS-INHERIT/{target}/{{tid}}/{actor}/{{aid}}/roles");
            let kind = grant_kind(target, actor);
            r = r.route(
                &format!("{prefix}/{{rid}}/inherited_to_projects"),
                put(move |s: S, a: Auth, p: PathMap| grant_put(s, a, p, (kind, true)))
                    .get(move |s: S, a: Auth, p: PathMap| grant_check(s, a, p, (kind, true)))
                    .head(move |s: S, a: Auth, p: PathMap| grant_check(s, a, p, (kind, true)))
                    .delete(move |s: S, a: Auth, p: PathMap| grant_delete(s, a, p, (kind, true))),
            );
            if target == "domains" {
                r = r.route(
                    &format!("{prefix}/inherited_to_projects"),
                    get(move |s: S, a: Auth, p: PathMap| grant_list(s, a, p, (kind, true))),
                );
            }
        }
    }
    crate::limits::routes(crate::ext::routes(r)).with_state(state)
}

fn grant_kind(target: &str, actor: &str) -> &'static str {
    match (target, actor) {
        ("projects", "users") => "UserProject",
        ("projects", _) => "GroupProject",
        ("domains", "users") => "UserDomain",
        ("domains", _) => "GroupDomain",
        (_, "users") => "UserSystem",
        _ => "GroupSystem",
    }
}

// ---- versions ----

async fn versions(State(id): S) -> Response {
    let body = json!({"versions": {"values": [version_doc(&id.config.public_url)]}});
    (StatusCode::MULTIPLE_CHOICES, axum::Json(body)).into_response()
}

async fn version(State(id): S) -> Response {
    axum::Json(json!({"version": version_doc(&id.config.public_url)})).into_response()
}

// ---- tokens ----

fn token_body(id: &Identity, t: &TokenData, catalog: Option<Value>) -> Value {
    let mut tok = json!({
        "methods": t.methods,
        "user": {"id": t.user.id, "name": t.user.name, "domain": {"id": t.user.domain_id, "name": t.user_domain_name},
                 "password_expires_at": null},
        "audit_ids": t.audit_ids,
        "expires_at": ferro_common::time::keystone_format(t.expires_at),
        "issued_at": ferro_common::time::keystone_format(t.issued_at),
    });
    match &t.scope {
        TokenScope::Project {
            project,
            domain_name,
        } => {
            tok["project"] = json!({"id": project.id, "name": project.name,
                "domain": {"id": project.domain_id, "name": domain_name}});
            tok["is_domain"] = json!(false);
        }
        TokenScope::Domain(d) => tok["domain"] = json!({"id": d.id, "name": d.name}),
        TokenScope::System => tok["system"] = json!({"all": true}),
        TokenScope::Unscoped => {}
    }
    if !matches!(t.scope, TokenScope::Unscoped) {
        tok["roles"] = json!(
            t.roles
                .iter()
                .map(|(i, n)| json!({"id": i, "name": n}))
                .collect::<Vec<_>>()
        );
        if let Some(c) = catalog {
            tok["catalog"] = c;
        }
    }
    if let Some((cid, name, unrestricted)) = &t.app_cred {
        tok["application_credential"] =
            json!({"id": cid, "name": name, "restricted": !unrestricted});
    }
    let _ = id;
    json!({"token": tok})
}

fn with_subject(mut resp: Response, token: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(token) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}

fn nocatalog(q: &HashMap<String, String>) -> bool {
    q.contains_key("nocatalog")
}

async fn token_issue(State(id): S, Query(q): Q, Json(body): Json<Value>) -> ApiResult {
    let auth = body
        .get("auth")
        .ok_or_else(|| Error::bad_request("'auth' is a required property."))?;
    let t = id.authenticate(auth).await?;
    let catalog = if nocatalog(&q) {
        None
    } else {
        Some(id.catalog_json(t.project_id()).await?)
    };
    let resp = (
        StatusCode::CREATED,
        axum::Json(token_body(&id, &t, catalog)),
    )
        .into_response();
    Ok(with_subject(resp, &t.id))
}

async fn subject(id: &Identity, headers: &HeaderMap) -> Result<TokenData, Error> {
    let token = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::bad_request("X-Subject-Token header is required."))?;
    id.validate(token).await
}

async fn token_validate(
    State(id): S,
    Auth(ctx): Auth,
    headers: HeaderMap,
    Query(q): Q,
) -> ApiResult {
    let t = subject(&id, &headers).await?;
    check_token_policy(&id, &ctx, &t, "identity:validate_token")?;
    let catalog = if nocatalog(&q) {
        None
    } else {
        Some(id.catalog_json(t.project_id()).await?)
    };
    let resp = axum::Json(token_body(&id, &t, catalog)).into_response();
    Ok(with_subject(resp, &t.id))
}

async fn token_check(State(id): S, Auth(ctx): Auth, headers: HeaderMap) -> ApiResult {
    let t = subject(&id, &headers).await?;
    check_token_policy(&id, &ctx, &t, "identity:check_token")?;
    Ok(with_subject(StatusCode::OK.into_response(), &t.id))
}

async fn token_revoke(State(id): S, Auth(ctx): Auth, headers: HeaderMap) -> ApiResult {
    let t = subject(&id, &headers).await?;
    check_token_policy(&id, &ctx, &t, "identity:revoke_token")?;
    id.revoke_token(&t).await?;
    no_content()
}

fn check_token_policy(
    id: &Identity,
    ctx: &RequestContext,
    t: &TokenData,
    rule: &str,
) -> Result<(), Error> {
    let target = json!({"target": {"token": {"user_id": t.user.id, "user": {"id": t.user.id, "domain": {"id": t.user.domain_id}}}},
        "token": {"user_id": t.user.id}});
    authorize(&id.enforcer, ctx, rule, &target)
}

async fn auth_catalog(State(id): S, Auth(ctx): Auth) -> ApiResult {
    if ctx.project_id.is_none() && ctx.domain_id.is_none() && ctx.system_scope.is_none() {
        return Err(
            Error::Forbidden("The catalog is available only to scoped tokens.".into()).into(),
        );
    }
    let catalog = id.catalog_json(ctx.project_id.as_deref()).await?;
    ok(
        StatusCode::OK,
        json!({"catalog": catalog, "links": collection_links(&id.config.public_url, "auth/catalog")}),
    )
}

/// Projects (or domains) on which the caller holds any role.
async fn scopes_of(id: &Identity, user_id: &str, domains: bool) -> Result<Vec<ProjectRow>, Error> {
    let mut actors = vec![user_id.to_string()];
    actors.extend(db::user_group_ids(&mut &id.db, user_id).await?);
    let rows = db::assignment_list(&mut &id.db, Some(&actors)).await?;
    let mut direct: HashSet<String> = HashSet::new();
    let mut inherited_from: HashSet<String> = HashSet::new();
    for a in rows {
        let is_domain_kind = a.kind.ends_with("Domain");
        if a.inherited {
            inherited_from.insert(a.target_id);
        } else if is_domain_kind == domains && !a.kind.ends_with("System") {
            direct.insert(a.target_id);
        }
    }
    let all = db::project_list(&mut &id.db, domains, &[]).await?;
    let mut out = Vec::new();
    for p in all {
        let mut hit = direct.contains(&p.id);
        if !hit && !domains && !inherited_from.is_empty() {
            hit = id
                .ancestors(&p)
                .await?
                .iter()
                .any(|a| inherited_from.contains(&a.id));
        }
        if hit && p.enabled {
            out.push(p);
        }
    }
    Ok(out)
}

async fn auth_projects(State(id): S, Auth(ctx): Auth) -> ApiResult {
    let base = &id.config.public_url;
    let mut list = Vec::new();
    for p in scopes_of(&id, &ctx.user_id, false).await? {
        if id.domain(&p.domain_id).await.is_ok_and(|d| d.enabled) {
            list.push(project_json(
                base,
                &p,
                &db::project_tags(&mut &id.db, &p.id).await?,
            ));
        }
    }
    ok(
        StatusCode::OK,
        json!({"projects": list, "links": collection_links(base, "auth/projects")}),
    )
}

async fn auth_domains(State(id): S, Auth(ctx): Auth) -> ApiResult {
    let base = &id.config.public_url;
    let list: Vec<Value> = scopes_of(&id, &ctx.user_id, true)
        .await?
        .iter()
        .map(|d| domain_json(base, d, &[]))
        .collect();
    ok(
        StatusCode::OK,
        json!({"domains": list, "links": collection_links(base, "auth/domains")}),
    )
}

async fn auth_system(State(id): S, Auth(ctx): Auth) -> ApiResult {
    let roles = id.direct_roles(&ctx.user_id, &TokenScope::System).await?;
    let system: Vec<Value> = if roles.is_empty() {
        vec![]
    } else {
        vec![json!({"all": true})]
    };
    ok(
        StatusCode::OK,
        json!({"system": system, "links": collection_links(&id.config.public_url, "auth/system")}),
    )
}

// ---- domains ----

async fn domain_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:list_domains", &json!({}))?;
    let enabled = q.get("enabled").map(|v| query_bool(v).into());
    let list = db::project_list(
        &mut &id.db,
        true,
        &[
            ("name", q.get("name").map(Into::into)),
            ("enabled", enabled),
        ],
    )
    .await?;
    let base = &id.config.public_url;
    let out = render_projects(&id, &list, true).await?;
    ok(
        StatusCode::OK,
        json!({"domains": out, "links": collection_links(base, "domains")}),
    )
}

async fn domain_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:create_domain", &json!({}))?;
    let d = entity(&body, "domain")?;
    let name = name_field(d, "name", 64, true)?.unwrap_or_default();
    let row = ProjectRow {
        id: str_field(d, "explicit_domain_id", true)?.unwrap_or_else(new_hex_id),
        domain_id: ROOT_DOMAIN.into(),
        parent_id: None,
        description: str_field(d, "description", true)?,
        enabled: bool_field(d, "enabled")?.unwrap_or(true),
        is_domain: true,
        extra: extra_of(
            d,
            &[
                "name",
                "description",
                "enabled",
                "explicit_domain_id",
                "tags",
                "options",
            ],
            None,
        ),
        created_at: now_micros(),
        name,
    };
    let tags = tags_field(d)?;
    let mut tx = id.db.begin().await?;
    db::project_insert(&mut tx, &row)
        .await
        .map_err(|e| conflict(e, "domain", &row.name))?;
    db::project_set_tags(&mut tx, &row.id, &tags).await?;
    tx.commit().await?;
    id.changed();
    ok(
        StatusCode::CREATED,
        json!({"domain": domain_json(&id.config.public_url, &row, &tags)}),
    )
}

pub(crate) fn conflict(e: ferro_db::DbError, kind: &str, name: &str) -> Error {
    match e {
        ferro_db::DbError::Duplicate(_) => Error::conflict(format!(
            "Conflict occurred attempting to store {kind} - Duplicate entry found with name {name}."
        )),
        other => other.into(),
    }
}

fn tags_field(obj: &Map<String, Value>) -> Result<Vec<String>, Error> {
    match obj.get("tags") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => {
            let mut tags = Vec::new();
            for t in a {
                let t = t.as_str().ok_or_else(|| {
                    Error::bad_request("Invalid input for field 'tags': tags must be strings.")
                })?;
                if t.is_empty() || t.chars().count() > 255 || t.contains('/') || t.contains(',') {
                    return Err(Error::bad_request(format!(
                        "Invalid input for field 'tags': {t:?} is not a valid tag."
                    )));
                }
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.to_string());
                }
            }
            if tags.len() > 80 {
                return Err(Error::bad_request(
                    "Invalid input for field 'tags': at most 80 tags.",
                ));
            }
            Ok(tags)
        }
        Some(_) => Err(Error::bad_request(
            "Invalid input for field 'tags': it is not of type 'array'.",
        )),
    }
}

async fn domain_show(State(id): S, Auth(ctx): Auth, Path(did): Path<String>) -> ApiResult {
    let target = json!({"target": {"domain": {"id": did}}});
    authorize(&id.enforcer, &ctx, "identity:get_domain", &target)?;
    let d = id.domain(&did).await?;
    let tags = db::project_tags(&mut &id.db, &d.id).await?;
    ok(
        StatusCode::OK,
        json!({"domain": domain_json(&id.config.public_url, &d, &tags)}),
    )
}

async fn domain_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(did): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:update_domain",
        &json!({"target": {"domain": {"id": did}}}),
    )?;
    let patch = entity(&body, "domain")?;
    let mut d = id.domain(&did).await?;
    let was_enabled = d.enabled;
    apply_project_patch(&mut d, patch)?;
    let mut tx = id.db.begin().await?;
    db::project_update(&mut tx, &d)
        .await
        .map_err(|e| conflict(e, "domain", &d.name))?;
    if patch.contains_key("tags") {
        db::project_set_tags(&mut tx, &d.id, &tags_field(patch)?).await?;
    }
    tx.commit().await?;
    if was_enabled && !d.enabled {
        let mut e = Identity::event();
        e.domain_id = Some(d.id.clone());
        id.revoke(e).await?;
    }
    id.changed();
    let tags = db::project_tags(&mut &id.db, &d.id).await?;
    ok(
        StatusCode::OK,
        json!({"domain": domain_json(&id.config.public_url, &d, &tags)}),
    )
}

fn apply_project_patch(p: &mut ProjectRow, patch: &Map<String, Value>) -> Result<(), Error> {
    if let Some(n) = name_field(patch, "name", 64, false)? {
        p.name = n;
    }
    if patch.contains_key("description") {
        p.description = str_field(patch, "description", true)?;
    }
    if let Some(e) = bool_field(patch, "enabled")? {
        p.enabled = e;
    }
    for fixed in ["domain_id", "is_domain", "parent_id"] {
        if let Some(v) = patch.get(fixed) {
            let same = match fixed {
                "domain_id" => v.as_str() == Some(p.domain_id.as_str()),
                "is_domain" => v.as_bool() == Some(p.is_domain),
                _ => v.as_str() == p.parent_id.as_deref(),
            };
            if !same {
                return Err(Error::bad_request(format!(
                    "Update of `{fixed}` is not allowed."
                )));
            }
        }
    }
    p.extra = extra_of(
        patch,
        &[
            "name",
            "description",
            "enabled",
            "domain_id",
            "is_domain",
            "parent_id",
            "tags",
            "options",
        ],
        Some(&p.extra),
    );
    Ok(())
}

async fn domain_delete(State(id): S, Auth(ctx): Auth, Path(did): Path<String>) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_domain",
        &json!({"target": {"domain": {"id": did}}}),
    )?;
    let d = id.domain(&did).await?;
    if d.enabled {
        return Err(Error::Forbidden(
            "Cannot delete a domain that is enabled, please disable it first.".into(),
        )
        .into());
    }
    domain_delete_cascade(&id, d).await
}

/// Deletes a (disabled) domain with its contents, as upstream does.
async fn domain_delete_cascade(id: &Identity, d: ProjectRow) -> ApiResult {
    let did = d.id;
    let mut tx = id.db.begin().await?;
    for p in db::project_list(&mut tx, false, &[("domain_id", Some(did.clone().into()))]).await? {
        db::project_delete(&mut tx, &p.id).await?;
    }
    for u in db::user_list(&mut tx, &[("domain_id", Some(did.clone().into()))]).await? {
        db::user_delete(&mut tx, &u.id).await?;
    }
    for g in db::group_list(&mut tx, &[("domain_id", Some(did.clone().into()))]).await? {
        db::group_delete(&mut tx, &g.id).await?;
    }
    for r in db::role_list(&mut tx, &[("domain_id", Some(did.clone().into()))]).await? {
        db::role_delete(&mut tx, &r.id).await?;
    }
    db::domain_config_delete(&mut tx, &did, None, None).await?;
    db::project_delete(&mut tx, &did).await?;
    tx.commit().await?;
    let mut e = Identity::event();
    e.domain_id = Some(did);
    id.revoke(e).await?;
    no_content()
}

/// Projects (or domains) as JSON, their tags read in one query rather than one per project.
async fn render_projects(
    id: &Identity,
    list: &[ProjectRow],
    domains: bool,
) -> Result<Vec<Value>, Error> {
    let base = &id.config.public_url;
    let ids: Vec<String> = list.iter().map(|p| p.id.clone()).collect();
    let tags = db::project_tags_of(&mut &id.db, &ids).await?;
    let none = Vec::new();
    Ok(list
        .iter()
        .map(|p| {
            let t = tags.get(&p.id).unwrap_or(&none);
            if domains {
                domain_json(base, p, t)
            } else {
                project_json(base, p, t)
            }
        })
        .collect())
}

/// The policy target of a list call: its filters, only those given, both flat and under
/// `target` (an absent filter must not be compared as `None`, or `domain_id:%(...)s` would
/// match an unscoped caller).
fn list_target(filters: &[(&str, Option<&String>)]) -> Value {
    let mut flat = Map::new();
    for (k, v) in filters {
        if let Some(v) = v {
            flat.insert((*k).to_string(), json!(v));
        }
    }
    let mut t = Value::Object(flat.clone());
    t["target"] = Value::Object(flat);
    t
}

// ---- projects ----

async fn project_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    // As upstream: the target is the caller's domain scope, if any; the filters are
    // flat attributes.
    let mut target = json!({"domain_id": q.get("domain_id")});
    if let Some(d) = &ctx.domain_id {
        target["target"] = json!({"domain_id": d});
    }
    authorize(&id.enforcer, &ctx, "identity:list_projects", &target)?;
    let enabled = q.get("enabled").map(|v| query_bool(v).into());
    let is_domain = q.get("is_domain").map(|v| query_bool(v)).unwrap_or(false);
    let mut list = db::project_list(
        &mut &id.db,
        is_domain,
        &[
            ("name", q.get("name").map(Into::into)),
            ("domain_id", q.get("domain_id").map(Into::into)),
            ("parent_id", q.get("parent_id").map(Into::into)),
            ("enabled", enabled),
        ],
    )
    .await?;
    for (key, all, negate) in [
        ("tags", true, false),
        ("tags-any", false, false),
        ("not-tags", true, true),
        ("not-tags-any", false, true),
    ] {
        if let Some(v) = q.get(key) {
            let tags: Vec<String> = v.split(',').map(str::to_string).collect();
            let ids: HashSet<String> = db::projects_with_tags(&mut &id.db, &tags, all)
                .await?
                .into_iter()
                .collect();
            list.retain(|p| ids.contains(&p.id) != negate);
        }
    }
    if let Some(d) = &ctx.domain_id {
        list.retain(|p| p.domain_id == *d);
    }
    let base = &id.config.public_url;
    let out = render_projects(&id, &list, false).await?;
    ok(
        StatusCode::OK,
        json!({"projects": out, "links": collection_links(base, "projects")}),
    )
}

async fn project_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    let p = entity(&body, "project")?;
    let name = name_field(p, "name", 64, true)?.unwrap_or_default();
    let is_domain = bool_field(p, "is_domain")?.unwrap_or(false);
    let parent_id = str_field(p, "parent_id", true)?;
    let parent =
        match &parent_id {
            Some(pid) => Some(db::project_get(&mut &id.db, pid).await?.ok_or_else(|| {
                Error::bad_request(format!("Could not find parent project: {pid}."))
            })?),
            None => None,
        };
    let domain_id = match (str_field(p, "domain_id", true)?, &parent) {
        (Some(d), _) => d,
        (None, Some(parent)) => {
            if parent.is_domain {
                parent.id.clone()
            } else {
                parent.domain_id.clone()
            }
        }
        (None, None) => ctx
            .domain_id
            .clone()
            .or(ctx.project_domain_id.clone())
            .unwrap_or_else(|| "default".into()),
    };
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_project",
        &json!({"target": {"project": {"domain_id": domain_id}}}),
    )?;
    if is_domain {
        return project_create_domain(&id, &ctx, p, name).await;
    }
    let domain = id
        .domain(&domain_id)
        .await
        .map_err(|_| Error::bad_request(format!("Could not find domain: {domain_id}.")))?;
    if let Some(parent) = &parent {
        let parent_domain = if parent.is_domain {
            &parent.id
        } else {
            &parent.domain_id
        };
        if *parent_domain != domain.id {
            return Err(
                Error::bad_request("The project's parent must be in the same domain.").into(),
            );
        }
    }
    let row = ProjectRow {
        id: new_hex_id(),
        name,
        domain_id: domain.id.clone(),
        parent_id: Some(parent_id.unwrap_or_else(|| domain.id.clone())),
        description: str_field(p, "description", true)?,
        enabled: bool_field(p, "enabled")?.unwrap_or(true),
        is_domain: false,
        extra: extra_of(
            p,
            &[
                "name",
                "domain_id",
                "parent_id",
                "description",
                "enabled",
                "is_domain",
                "tags",
                "options",
            ],
            None,
        ),
        created_at: now_micros(),
    };
    let tags = tags_field(p)?;
    let mut tx = id.db.begin().await?;
    db::project_insert(&mut tx, &row)
        .await
        .map_err(|e| conflict(e, "project", &row.name))?;
    db::project_set_tags(&mut tx, &row.id, &tags).await?;
    tx.commit().await?;
    id.changed();
    ok(
        StatusCode::CREATED,
        json!({"project": project_json(&id.config.public_url, &row, &tags)}),
    )
}

/// `POST /v3/projects` with `is_domain`: a top-level project acting as a domain.
async fn project_create_domain(
    id: &Identity,
    ctx: &RequestContext,
    p: &Map<String, Value>,
    name: String,
) -> ApiResult {
    authorize(
        &id.enforcer,
        ctx,
        "identity:create_project",
        &json!({"target": {"project": {"domain_id": null, "is_domain": true}}}),
    )?;
    if str_field(p, "parent_id", true)?.is_some() {
        return Err(Error::bad_request("Only root projects can act as domains.").into());
    }
    if str_field(p, "domain_id", true)?.is_some() {
        return Err(Error::bad_request(
            "A project acting as a domain cannot be given a domain_id.",
        )
        .into());
    }
    let row = ProjectRow {
        id: new_hex_id(),
        name,
        domain_id: ROOT_DOMAIN.into(),
        parent_id: None,
        description: str_field(p, "description", true)?,
        enabled: bool_field(p, "enabled")?.unwrap_or(true),
        is_domain: true,
        extra: extra_of(
            p,
            &[
                "name",
                "domain_id",
                "parent_id",
                "description",
                "enabled",
                "is_domain",
                "tags",
                "options",
            ],
            None,
        ),
        created_at: now_micros(),
    };
    let tags = tags_field(p)?;
    let mut tx = id.db.begin().await?;
    db::project_insert(&mut tx, &row)
        .await
        .map_err(|e| conflict(e, "project", &row.name))?;
    db::project_set_tags(&mut tx, &row.id, &tags).await?;
    tx.commit().await?;
    id.changed();
    ok(
        StatusCode::CREATED,
        json!({"project": project_json(&id.config.public_url, &row, &tags)}),
    )
}

/// A project by id, projects acting as domains included (the projects API shows them).
async fn project_or_domain(id: &Identity, pid: &str) -> Result<ProjectRow, Error> {
    db::project_get(&mut &id.db, pid)
        .await?
        .ok_or_else(|| Error::not_found("project", pid))
}

fn project_target(p: &ProjectRow) -> Value {
    json!({"target": {"project": {"id": p.id, "domain_id": p.domain_id, "name": p.name}}})
}

async fn project_show(State(id): S, Auth(ctx): Auth, Path(pid): Path<String>) -> ApiResult {
    let p = project_or_domain(&id, &pid).await;
    let target = p
        .as_ref()
        .map(project_target)
        .unwrap_or_else(|_| json!({"target": {"project": {"id": pid}}}));
    authorize(&id.enforcer, &ctx, "identity:get_project", &target)?;
    let p = p?;
    let tags = db::project_tags(&mut &id.db, &p.id).await?;
    ok(
        StatusCode::OK,
        json!({"project": project_json(&id.config.public_url, &p, &tags)}),
    )
}

async fn project_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(pid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let mut p = project_or_domain(&id, &pid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:update_project",
        &project_target(&p),
    )?;
    let patch = entity(&body, "project")?;
    let was_enabled = p.enabled;
    apply_project_patch(&mut p, patch)?;
    let mut tx = id.db.begin().await?;
    db::project_update(&mut tx, &p)
        .await
        .map_err(|e| conflict(e, "project", &p.name))?;
    if patch.contains_key("tags") {
        db::project_set_tags(&mut tx, &p.id, &tags_field(patch)?).await?;
    }
    tx.commit().await?;
    if was_enabled && !p.enabled {
        let mut e = Identity::event();
        e.project_id = Some(p.id.clone());
        id.revoke(e).await?;
    }
    id.changed();
    let tags = db::project_tags(&mut &id.db, &p.id).await?;
    ok(
        StatusCode::OK,
        json!({"project": project_json(&id.config.public_url, &p, &tags)}),
    )
}

async fn project_delete(State(id): S, Auth(ctx): Auth, Path(pid): Path<String>) -> ApiResult {
    let p = project_or_domain(&id, &pid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_project",
        &project_target(&p),
    )?;
    if p.is_domain {
        if p.enabled {
            return Err(Error::bad_request(format!(
                "Cannot delete project {pid}: it is an enabled project acting as a domain; disable it first."
            ))
            .into());
        }
        return domain_delete_cascade(&id, p).await;
    }
    if !db::project_children(&mut &id.db, &pid).await?.is_empty() {
        return Err(Error::Forbidden(format!(
            "Cannot delete project {pid}: it has child projects."
        ))
        .into());
    }
    let mut tx = id.db.begin().await?;
    db::project_delete(&mut tx, &pid).await?;
    tx.commit().await?;
    let mut e = Identity::event();
    e.project_id = Some(pid);
    id.revoke(e).await?;
    no_content()
}

async fn project_tags_list(State(id): S, Auth(ctx): Auth, Path(pid): Path<String>) -> ApiResult {
    let p = id.project(&pid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_project_tags",
        &project_target(&p),
    )?;
    ok(
        StatusCode::OK,
        json!({"tags": db::project_tags(&mut &id.db, &pid).await?}),
    )
}

async fn project_tags_replace(
    State(id): S,
    Auth(ctx): Auth,
    Path(pid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let p = id.project(&pid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:update_project_tags",
        &project_target(&p),
    )?;
    let obj = body
        .as_object()
        .ok_or_else(|| Error::bad_request("Expected {\"tags\": [...]}."))?;
    let tags = tags_field(obj)?;
    let mut tx = id.db.begin().await?;
    db::project_set_tags(&mut tx, &pid, &tags).await?;
    tx.commit().await?;
    ok(StatusCode::OK, json!({"tags": tags}))
}

async fn project_tags_clear(State(id): S, Auth(ctx): Auth, Path(pid): Path<String>) -> ApiResult {
    let p = id.project(&pid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_project_tags",
        &project_target(&p),
    )?;
    let mut tx = id.db.begin().await?;
    db::project_set_tags(&mut tx, &pid, &[]).await?;
    tx.commit().await?;
    no_content()
}

async fn project_tag_check(
    State(id): S,
    Auth(ctx): Auth,
    Path((pid, tag)): Path<(String, String)>,
) -> ApiResult {
    let p = id.project(&pid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_project_tag",
        &project_target(&p),
    )?;
    if db::project_tags(&mut &id.db, &pid).await?.contains(&tag) {
        no_content()
    } else {
        Err(Error::not_found("tag", tag).into())
    }
}

async fn project_tag_add(
    State(id): S,
    Auth(ctx): Auth,
    Path((pid, tag)): Path<(String, String)>,
) -> ApiResult {
    let p = id.project(&pid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_project_tag",
        &project_target(&p),
    )?;
    let mut tags = db::project_tags(&mut &id.db, &pid).await?;
    if !tags.contains(&tag) {
        tags.push(tag.clone());
    }
    let mut obj = Map::new();
    obj.insert("tags".into(), json!(tags));
    let tags = tags_field(&obj)?;
    let mut tx = id.db.begin().await?;
    db::project_set_tags(&mut tx, &pid, &tags).await?;
    tx.commit().await?;
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}/v3/projects/{pid}/tags/{tag}",
        id.config.public_url
    )) {
        resp.headers_mut().insert("location", v);
    }
    Ok(resp)
}

async fn project_tag_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path((pid, tag)): Path<(String, String)>,
) -> ApiResult {
    let p = id.project(&pid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_project_tag",
        &project_target(&p),
    )?;
    let mut tags = db::project_tags(&mut &id.db, &pid).await?;
    let before = tags.len();
    tags.retain(|t| *t != tag);
    if tags.len() == before {
        return Err(Error::not_found("tag", tag).into());
    }
    let mut tx = id.db.begin().await?;
    db::project_set_tags(&mut tx, &pid, &tags).await?;
    tx.commit().await?;
    no_content()
}

// ---- users ----

const USER_FIELDS: &[&str] = &[
    "name",
    "domain_id",
    "password",
    "enabled",
    "default_project_id",
    "options",
    "federated",
];

async fn user_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_users",
        &list_target(&[("domain_id", q.get("domain_id"))]),
    )?;
    let enabled = q.get("enabled").map(|v| query_bool(v).into());
    let list = db::user_list(
        &mut &id.db,
        &[
            ("name", q.get("name").map(Into::into)),
            ("domain_id", q.get("domain_id").map(Into::into)),
            ("enabled", enabled),
        ],
    )
    .await?;
    let base = &id.config.public_url;
    let out: Vec<Value> = list.iter().map(|u| user_json(base, u)).collect();
    ok(
        StatusCode::OK,
        json!({"users": out, "links": collection_links(base, "users")}),
    )
}

async fn user_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    let u = entity(&body, "user")?;
    let name = name_field(u, "name", 255, true)?.unwrap_or_default();
    let domain_id = str_field(u, "domain_id", true)?
        .or(ctx.domain_id.clone())
        .or(ctx.project_domain_id.clone())
        .unwrap_or_else(|| "default".into());
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_user",
        &json!({"target": {"user": {"domain_id": domain_id}}}),
    )?;
    id.domain(&domain_id)
        .await
        .map_err(|_| Error::not_found("domain", domain_id.clone()))?;
    let password = str_field(u, "password", true)?;
    let hash = match &password {
        Some(p) => Some(id.hash_password(p).await?),
        None => None,
    };
    let now = now_micros();
    let row = db::UserRow {
        id: new_hex_id(),
        domain_id,
        name,
        enabled: bool_field(u, "enabled")?.unwrap_or(true),
        password_created_at: hash.as_ref().map(|_| now),
        password_hash: hash,
        default_project_id: str_field(u, "default_project_id", true)?,
        extra: extra_of(u, USER_FIELDS, None),
        created_at: now,
        last_active_at: None,
    };
    let mut tx = id.db.begin().await?;
    db::user_insert(&mut tx, &row)
        .await
        .map_err(|e| conflict(e, "user", &row.name))?;
    tx.commit().await?;
    ok(
        StatusCode::CREATED,
        json!({"user": user_json(&id.config.public_url, &row)}),
    )
}

fn user_target(u: &db::UserRow) -> Value {
    json!({"target": {"user": {"id": u.id, "domain_id": u.domain_id}}})
}

async fn user_show(State(id): S, Auth(ctx): Auth, Path(uid): Path<String>) -> ApiResult {
    let u = id.user(&uid).await;
    let target = u
        .as_ref()
        .map(user_target)
        .unwrap_or_else(|_| json!({"target": {"user": {"id": uid}}}));
    authorize(&id.enforcer, &ctx, "identity:get_user", &target)?;
    ok(
        StatusCode::OK,
        json!({"user": user_json(&id.config.public_url, &u?)}),
    )
}

async fn user_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let mut u = id.user(&uid).await?;
    authorize(&id.enforcer, &ctx, "identity:update_user", &user_target(&u))?;
    let patch = entity(&body, "user")?;
    if let Some(d) = patch.get("domain_id")
        && d.as_str() != Some(u.domain_id.as_str())
    {
        return Err(Error::bad_request("Update of `domain_id` is not allowed.").into());
    }
    let was_enabled = u.enabled;
    if let Some(n) = name_field(patch, "name", 255, false)? {
        u.name = n;
    }
    if let Some(e) = bool_field(patch, "enabled")? {
        u.enabled = e;
    }
    if patch.contains_key("default_project_id") {
        u.default_project_id = str_field(patch, "default_project_id", true)?;
    }
    let new_password = str_field(patch, "password", true)?;
    if let Some(p) = &new_password {
        u.password_hash = Some(id.hash_password(p).await?);
        u.password_created_at = Some(now_micros());
    }
    u.extra = extra_of(patch, USER_FIELDS, Some(&u.extra));
    let mut tx = id.db.begin().await?;
    db::user_update(&mut tx, &u)
        .await
        .map_err(|e| conflict(e, "user", &u.name))?;
    tx.commit().await?;
    if (was_enabled && !u.enabled) || new_password.is_some() {
        let mut e = Identity::event();
        e.user_id = Some(u.id.clone());
        id.revoke(e).await?;
    }
    id.changed();
    ok(
        StatusCode::OK,
        json!({"user": user_json(&id.config.public_url, &u)}),
    )
}

async fn user_delete(State(id): S, Auth(ctx): Auth, Path(uid): Path<String>) -> ApiResult {
    let u = id.user(&uid).await?;
    authorize(&id.enforcer, &ctx, "identity:delete_user", &user_target(&u))?;
    let mut tx = id.db.begin().await?;
    db::user_delete(&mut tx, &uid).await?;
    tx.commit().await?;
    let mut e = Identity::event();
    e.user_id = Some(uid);
    id.revoke(e).await?;
    no_content()
}

async fn user_password(
    State(id): S,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    // Upstream lets a user change their own password without a token: the original
    // password is the credential.
    let b = entity(&body, "user")?;
    let original = required_str(b, "original_password")?;
    let password = required_str(b, "password")?;
    let mut u = db::user_get(&mut &id.db, &uid)
        .await?
        .ok_or_else(|| Error::Unauthenticated(crate::manager::AUTH_FAILED.into()))?;
    let ok_pw = match &u.password_hash {
        Some(h) => Identity::verify_password(&original, h).await,
        None => false,
    };
    if !ok_pw || !u.enabled {
        return Err(Error::Unauthenticated(crate::manager::AUTH_FAILED.into()).into());
    }
    u.password_hash = Some(id.hash_password(&password).await?);
    u.password_created_at = Some(now_micros());
    let mut tx = id.db.begin().await?;
    db::user_update(&mut tx, &u).await?;
    tx.commit().await?;
    let mut e = Identity::event();
    e.user_id = Some(uid);
    id.revoke(e).await?;
    no_content()
}

async fn user_groups(State(id): S, Auth(ctx): Auth, Path(uid): Path<String>) -> ApiResult {
    let u = id.user(&uid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_groups_for_user",
        &user_target(&u),
    )?;
    let base = &id.config.public_url;
    let mut out = Vec::new();
    for gid in db::user_group_ids(&mut &id.db, &uid).await? {
        if let Some(g) = db::group_get(&mut &id.db, &gid).await? {
            out.push(group_json(base, &g));
        }
    }
    ok(
        StatusCode::OK,
        json!({"groups": out, "links": collection_links(base, &format!("users/{uid}/groups"))}),
    )
}

async fn user_projects(State(id): S, Auth(ctx): Auth, Path(uid): Path<String>) -> ApiResult {
    let u = id.user(&uid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_user_projects",
        &user_target(&u),
    )?;
    let base = &id.config.public_url;
    let mut out = Vec::new();
    for p in scopes_of(&id, &uid, false).await? {
        out.push(project_json(
            base,
            &p,
            &db::project_tags(&mut &id.db, &p.id).await?,
        ));
    }
    ok(
        StatusCode::OK,
        json!({"projects": out, "links": collection_links(base, &format!("users/{uid}/projects"))}),
    )
}

// ---- application credentials ----

async fn app_cred_roles_json(id: &Identity, roles: &str) -> Result<Vec<Value>, Error> {
    let ids: Vec<String> = serde_json::from_str(roles).unwrap_or_default();
    let mut out = Vec::new();
    for rid in ids {
        if let Some(r) = db::role_get(&mut &id.db, &rid).await? {
            let domain = if r.domain_id.is_empty() {
                Value::Null
            } else {
                json!(r.domain_id)
            };
            out.push(json!({"id": r.id, "name": r.name, "domain_id": domain}));
        }
    }
    Ok(out)
}

/// An application credential as the API shows it, with its roles and access rules.
async fn app_cred_full(id: &Identity, a: &db::AppCredRow) -> Result<Value, Error> {
    let roles = app_cred_roles_json(id, &a.roles).await?;
    let rules: Vec<Value> = db::app_cred_access_rules(&mut &id.db, &a.id)
        .await?
        .iter()
        .map(crate::ext::access_rule_ref)
        .collect();
    Ok(app_cred_json(&id.config.public_url, a, roles, rules))
}

fn app_cred_target(uid: &str) -> Value {
    json!({"target": {"user": {"id": uid}, "application_credential": {"user_id": uid}}, "user_id": uid})
}

async fn app_cred_create(
    State(id): S,
    Auth(ctx): Auth,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_application_credential",
        &app_cred_target(&uid),
    )?;
    if ctx.user_id != uid {
        return Err(Error::Forbidden(
            "Application credentials can only be created for yourself.".into(),
        )
        .into());
    }
    if ctx.application_credential_id.is_some()
        && let Some(c) = db::app_cred_get(
            &mut &id.db,
            ctx.application_credential_id.as_deref().unwrap_or_default(),
        )
        .await?
        && !c.unrestricted
    {
        return Err(Error::Forbidden(
            "A restricted application credential cannot create application credentials.".into(),
        )
        .into());
    }
    let project_id = ctx
        .project_id
        .clone()
        .ok_or_else(|| Error::Forbidden("A project-scoped token is required.".into()))?;
    let a = entity(&body, "application_credential")?;
    let name = name_field(a, "name", 255, true)?.unwrap_or_default();
    let secret = match str_field(a, "secret", true)? {
        Some(s) => s,
        None => {
            use base64::Engine as _;
            let raw: [u8; 48] = std::array::from_fn(|_| rand::random::<u8>());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        }
    };
    let expires_at = match str_field(a, "expires_at", true)? {
        Some(t) => Some(ferro_common::time::parse_iso8601(&t).ok_or_else(|| {
            Error::bad_request(format!(
                "Invalid input for field 'expires_at': {t:?} is not a date-time."
            ))
        })?),
        None => None,
    };
    if expires_at.is_some_and(|e| e <= now_micros()) {
        return Err(Error::bad_request("The expiration date must be in the future.").into());
    }
    // The roles default to all of the caller's roles on the project; named roles must be
    // among them.
    let held: Vec<(String, String)> = ctx.roles.clone();
    let roles: Vec<String> = match a.get("roles") {
        // Upstream: no roles, or an empty list, means every role the token has.
        None | Some(Value::Null) => held.iter().map(|r| r.0.clone()).collect(),
        Some(Value::Array(list)) if list.is_empty() => held.iter().map(|r| r.0.clone()).collect(),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for r in list {
                let hit = held.iter().find(|(rid, rname)| {
                    r.get("id").and_then(Value::as_str) == Some(rid)
                        || r.get("name").and_then(Value::as_str) == Some(rname)
                });
                match hit {
                    Some((rid, _)) => out.push(rid.clone()),
                    None => return Err(Error::not_found("role", r.to_string()).into()),
                }
            }
            out
        }
        Some(_) => {
            return Err(Error::bad_request(
                "Invalid input for field 'roles': it is not of type 'array'.",
            )
            .into());
        }
    };
    let row = db::AppCredRow {
        id: new_hex_id(),
        name,
        user_id: uid.clone(),
        project_id: Some(project_id),
        secret_hash: id.hash_password(&secret).await?,
        description: str_field(a, "description", true)?,
        expires_at,
        unrestricted: bool_field(a, "unrestricted")?.unwrap_or(false),
        roles: json!(roles).to_string(),
        created_at: now_micros(),
    };
    let rules = crate::ext::resolve_access_rules(&id, &uid, a.get("access_rules")).await?;
    let mut tx = id.db.begin().await?;
    db::app_cred_insert(&mut tx, &row)
        .await
        .map_err(|e| conflict(e, "application_credential", &row.name))?;
    for r in &rules {
        db::app_cred_access_rule_link(&mut tx, &row.id, &r.id).await?;
    }
    tx.commit().await?;
    let mut body = app_cred_full(&id, &row).await?;
    body["secret"] = json!(secret);
    ok(StatusCode::CREATED, json!({"application_credential": body}))
}

async fn app_cred_list(
    State(id): S,
    Auth(ctx): Auth,
    Path(uid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_application_credentials",
        &app_cred_target(&uid),
    )?;
    id.user(&uid).await?;
    let base = &id.config.public_url;
    let mut out = Vec::new();
    for a in db::app_cred_list(&mut &id.db, &uid, q.get("name").map(String::as_str)).await? {
        out.push(app_cred_full(&id, &a).await?);
    }
    ok(
        StatusCode::OK,
        json!({"application_credentials": out, "links": collection_links(base, &format!("users/{uid}/application_credentials"))}),
    )
}

async fn app_cred_show(
    State(id): S,
    Auth(ctx): Auth,
    Path((uid, cid)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:get_application_credential",
        &app_cred_target(&uid),
    )?;
    let a = db::app_cred_get(&mut &id.db, &cid)
        .await?
        .filter(|a| a.user_id == uid)
        .ok_or_else(|| Error::not_found("application credential", &cid))?;
    ok(
        StatusCode::OK,
        json!({"application_credential": app_cred_full(&id, &a).await?}),
    )
}

async fn app_cred_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path((uid, cid)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_application_credential",
        &app_cred_target(&uid),
    )?;
    db::app_cred_get(&mut &id.db, &cid)
        .await?
        .filter(|a| a.user_id == uid)
        .ok_or_else(|| Error::not_found("application credential", &cid))?;
    db::app_cred_access_rule_unlink(&mut &id.db, &cid).await?;
    db::delete_by_id(&mut &id.db, "ks_app_cred", &cid).await?;
    // Tokens made from it stop working: validation re-reads the credential.
    id.changed();
    no_content()
}

// ---- groups ----

async fn group_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_groups",
        &list_target(&[("domain_id", q.get("domain_id"))]),
    )?;
    let list = db::group_list(
        &mut &id.db,
        &[
            ("name", q.get("name").map(Into::into)),
            ("domain_id", q.get("domain_id").map(Into::into)),
        ],
    )
    .await?;
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"groups": list.iter().map(|g| group_json(base, g)).collect::<Vec<_>>(), "links": collection_links(base, "groups")}),
    )
}

async fn group_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    let g = entity(&body, "group")?;
    let domain_id = str_field(g, "domain_id", true)?
        .or(ctx.domain_id.clone())
        .or(ctx.project_domain_id.clone())
        .unwrap_or_else(|| "default".into());
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_group",
        &json!({"target": {"group": {"domain_id": domain_id}}}),
    )?;
    id.domain(&domain_id)
        .await
        .map_err(|_| Error::not_found("domain", domain_id.clone()))?;
    let row = db::GroupRow {
        id: new_hex_id(),
        name: name_field(g, "name", 64, true)?.unwrap_or_default(),
        domain_id,
        description: str_field(g, "description", true)?,
        extra: extra_of(g, &["name", "domain_id", "description"], None),
    };
    let mut tx = id.db.begin().await?;
    db::group_insert(&mut tx, &row)
        .await
        .map_err(|e| conflict(e, "group", &row.name))?;
    tx.commit().await?;
    ok(
        StatusCode::CREATED,
        json!({"group": group_json(&id.config.public_url, &row)}),
    )
}

async fn group_get(id: &Identity, gid: &str) -> Result<db::GroupRow, Error> {
    db::group_get(&mut &id.db, gid)
        .await?
        .ok_or_else(|| Error::not_found("group", gid))
}

fn group_target(g: &db::GroupRow) -> Value {
    json!({"target": {"group": {"id": g.id, "domain_id": g.domain_id}}})
}

async fn group_show(State(id): S, Auth(ctx): Auth, Path(gid): Path<String>) -> ApiResult {
    let g = group_get(&id, &gid).await?;
    authorize(&id.enforcer, &ctx, "identity:get_group", &group_target(&g))?;
    ok(
        StatusCode::OK,
        json!({"group": group_json(&id.config.public_url, &g)}),
    )
}

async fn group_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(gid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let mut g = group_get(&id, &gid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:update_group",
        &group_target(&g),
    )?;
    let patch = entity(&body, "group")?;
    if let Some(n) = name_field(patch, "name", 64, false)? {
        g.name = n;
    }
    if patch.contains_key("description") {
        g.description = str_field(patch, "description", true)?;
    }
    g.extra = extra_of(patch, &["name", "domain_id", "description"], Some(&g.extra));
    let mut tx = id.db.begin().await?;
    db::group_update(&mut tx, &g)
        .await
        .map_err(|e| conflict(e, "group", &g.name))?;
    tx.commit().await?;
    ok(
        StatusCode::OK,
        json!({"group": group_json(&id.config.public_url, &g)}),
    )
}

async fn group_delete(State(id): S, Auth(ctx): Auth, Path(gid): Path<String>) -> ApiResult {
    let g = group_get(&id, &gid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_group",
        &group_target(&g),
    )?;
    let mut tx = id.db.begin().await?;
    db::group_delete(&mut tx, &gid).await?;
    tx.commit().await?;
    id.changed();
    no_content()
}

async fn group_users(State(id): S, Auth(ctx): Auth, Path(gid): Path<String>) -> ApiResult {
    let g = group_get(&id, &gid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_users_in_group",
        &group_target(&g),
    )?;
    let base = &id.config.public_url;
    let mut out = Vec::new();
    for uid in db::group_member_ids(&mut &id.db, &gid).await? {
        if let Some(u) = db::user_get(&mut &id.db, &uid).await? {
            out.push(user_json(base, &u));
        }
    }
    ok(
        StatusCode::OK,
        json!({"users": out, "links": collection_links(base, &format!("groups/{gid}/users"))}),
    )
}

async fn membership_target(id: &Identity, gid: &str, uid: &str) -> Result<Value, Error> {
    let g = group_get(id, gid).await?;
    let u = id.user(uid).await?;
    Ok(
        json!({"target": {"group": {"id": g.id, "domain_id": g.domain_id}, "user": {"id": u.id, "domain_id": u.domain_id}}}),
    )
}

async fn group_user_add(
    State(id): S,
    Auth(ctx): Auth,
    Path((gid, uid)): Path<(String, String)>,
) -> ApiResult {
    let target = membership_target(&id, &gid, &uid).await?;
    authorize(&id.enforcer, &ctx, "identity:add_user_to_group", &target)?;
    db::membership_add(&mut &id.db, &uid, &gid).await?;
    id.changed();
    no_content()
}

async fn group_user_check(
    State(id): S,
    Auth(ctx): Auth,
    Path((gid, uid)): Path<(String, String)>,
) -> ApiResult {
    let target = membership_target(&id, &gid, &uid).await?;
    authorize(&id.enforcer, &ctx, "identity:check_user_in_group", &target)?;
    if db::user_group_ids(&mut &id.db, &uid).await?.contains(&gid) {
        no_content()
    } else {
        Err(Error::NotFound {
            kind: "membership",
            id: format!("user {uid} in group {gid}"),
        }
        .into())
    }
}

async fn group_user_remove(
    State(id): S,
    Auth(ctx): Auth,
    Path((gid, uid)): Path<(String, String)>,
) -> ApiResult {
    let target = membership_target(&id, &gid, &uid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        "identity:remove_user_from_group",
        &target,
    )?;
    if db::membership_remove(&mut &id.db, &uid, &gid).await? == 0 {
        return Err(Error::NotFound {
            kind: "membership",
            id: format!("user {uid} in group {gid}"),
        }
        .into());
    }
    let mut e = Identity::event();
    e.user_id = Some(uid);
    id.revoke(e).await?;
    no_content()
}

// ---- roles ----

async fn role_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    let rule = if q.contains_key("domain_id") {
        "identity:list_domain_roles"
    } else {
        "identity:list_roles"
    };
    authorize(
        &id.enforcer,
        &ctx,
        rule,
        &json!({"target": {"domain_id": q.get("domain_id")}}),
    )?;
    let domain = Some(q.get("domain_id").cloned().unwrap_or_default().into());
    let list = db::role_list(
        &mut &id.db,
        &[
            ("name", q.get("name").map(Into::into)),
            ("domain_id", domain),
        ],
    )
    .await?;
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"roles": list.iter().map(|r| role_json(base, r)).collect::<Vec<_>>(), "links": collection_links(base, "roles")}),
    )
}

async fn role_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    let r = entity(&body, "role")?;
    let domain_id = str_field(r, "domain_id", true)?.unwrap_or_default();
    let rule = if domain_id.is_empty() {
        "identity:create_role"
    } else {
        "identity:create_domain_role"
    };
    authorize(
        &id.enforcer,
        &ctx,
        rule,
        &json!({"target": {"role": {"domain_id": domain_id}}}),
    )?;
    if !domain_id.is_empty() {
        id.domain(&domain_id)
            .await
            .map_err(|_| Error::bad_request(format!("Could not find domain: {domain_id}.")))?;
    }
    let row = db::RoleRow {
        id: new_hex_id(),
        name: name_field(r, "name", 255, true)?.unwrap_or_default(),
        domain_id,
        description: str_field(r, "description", true)?,
        extra: extra_of(r, &["name", "domain_id", "description", "options"], None),
    };
    let mut tx = id.db.begin().await?;
    db::role_insert(&mut tx, &row)
        .await
        .map_err(|e| conflict(e, "role", &row.name))?;
    tx.commit().await?;
    ok(
        StatusCode::CREATED,
        json!({"role": role_json(&id.config.public_url, &row)}),
    )
}

fn role_rule(r: &db::RoleRow, global: &'static str, domain: &'static str) -> &'static str {
    if r.domain_id.is_empty() {
        global
    } else {
        domain
    }
}

async fn role_show(State(id): S, Auth(ctx): Auth, Path(rid): Path<String>) -> ApiResult {
    let r = id.role(&rid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        role_rule(&r, "identity:get_role", "identity:get_domain_role"),
        &json!({"target": {"role": {"id": r.id, "domain_id": r.domain_id}}}),
    )?;
    ok(
        StatusCode::OK,
        json!({"role": role_json(&id.config.public_url, &r)}),
    )
}

async fn role_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(rid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let mut r = id.role(&rid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        role_rule(&r, "identity:update_role", "identity:update_domain_role"),
        &json!({"target": {"role": {"id": r.id, "domain_id": r.domain_id}}}),
    )?;
    let patch = entity(&body, "role")?;
    if let Some(n) = name_field(patch, "name", 255, false)? {
        r.name = n;
    }
    if patch.contains_key("description") {
        r.description = str_field(patch, "description", true)?;
    }
    r.extra = extra_of(
        patch,
        &["name", "domain_id", "description", "options"],
        Some(&r.extra),
    );
    let mut tx = id.db.begin().await?;
    db::role_update(&mut tx, &r)
        .await
        .map_err(|e| conflict(e, "role", &r.name))?;
    tx.commit().await?;
    id.changed();
    ok(
        StatusCode::OK,
        json!({"role": role_json(&id.config.public_url, &r)}),
    )
}

async fn role_delete(State(id): S, Auth(ctx): Auth, Path(rid): Path<String>) -> ApiResult {
    let r = id.role(&rid).await?;
    authorize(
        &id.enforcer,
        &ctx,
        role_rule(&r, "identity:delete_role", "identity:delete_domain_role"),
        &json!({"target": {"role": {"id": r.id, "domain_id": r.domain_id}}}),
    )?;
    let mut tx = id.db.begin().await?;
    db::role_delete(&mut tx, &rid).await?;
    tx.commit().await?;
    id.changed();
    no_content()
}

// ---- implied roles ----

async fn implied_pair(
    id: &Identity,
    p: &str,
    i: &str,
) -> Result<(db::RoleRow, db::RoleRow), Error> {
    Ok((id.role(p).await?, id.role(i).await?))
}

fn inference_json(base: &str, prior: &db::RoleRow, implies: Value) -> Value {
    json!({"role_inference": {"prior_role": role_ref(base, prior), "implies": implies},
        "links": {"self": format!("{base}/v3/roles/{}/implies", prior.id)}})
}

async fn implied_create(
    State(id): S,
    Auth(ctx): Auth,
    Path((p, i)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:create_implied_role",
        &json!({}),
    )?;
    let (prior, implied) = implied_pair(&id, &p, &i).await?;
    // Keystone's default `[assignment] prohibited_implied_role`.
    if implied.name == "admin" {
        return Err(Error::Forbidden(format!("{i} cannot be an implied roles.")).into());
    }
    if prior.domain_id.is_empty() && !implied.domain_id.is_empty() {
        return Err(
            Error::Forbidden("Global role cannot imply a domain-specific role.".into()).into(),
        );
    }
    // A rule that would close a cycle is refused.
    if id
        .expand_implied(&HashSet::from([i.clone()]))
        .await?
        .contains(&p)
        || p == i
    {
        return Err(
            Error::Forbidden(format!("Implying role {i} from {p} would create a loop.")).into(),
        );
    }
    match db::implied_insert(&mut &id.db, &p, &i).await {
        Ok(()) => {}
        Err(ferro_db::DbError::Duplicate(_)) => {
            return Err(Error::conflict("The role inference rule already exists.").into());
        }
        Err(e) => return Err(e.into()),
    }
    id.changed();
    let base = &id.config.public_url;
    ok(
        StatusCode::CREATED,
        inference_json(base, &prior, role_ref(base, &implied)),
    )
}

async fn implied_exists(id: &Identity, p: &str, i: &str) -> Result<bool, Error> {
    Ok(db::implied_all(&mut &id.db)
        .await?
        .iter()
        .any(|r| r.prior_role_id == p && r.implied_role_id == i))
}

async fn implied_show(
    State(id): S,
    Auth(ctx): Auth,
    Path((p, i)): Path<(String, String)>,
) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:get_implied_role", &json!({}))?;
    let (prior, implied) = implied_pair(&id, &p, &i).await?;
    if !implied_exists(&id, &p, &i).await? {
        return Err(Error::not_found("implied role", format!("{p} implies {i}")).into());
    }
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        inference_json(base, &prior, role_ref(base, &implied)),
    )
}

async fn implied_check(
    State(id): S,
    Auth(ctx): Auth,
    Path((p, i)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:check_implied_role",
        &json!({}),
    )?;
    implied_pair(&id, &p, &i).await?;
    if !implied_exists(&id, &p, &i).await? {
        return Err(Error::not_found("implied role", format!("{p} implies {i}")).into());
    }
    no_content()
}

async fn implied_delete(
    State(id): S,
    Auth(ctx): Auth,
    Path((p, i)): Path<(String, String)>,
) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:delete_implied_role",
        &json!({}),
    )?;
    implied_pair(&id, &p, &i).await?;
    if db::implied_delete(&mut &id.db, &p, &i).await? == 0 {
        return Err(Error::not_found("implied role", format!("{p} implies {i}")).into());
    }
    id.changed();
    no_content()
}

async fn implied_list(State(id): S, Auth(ctx): Auth, Path(p): Path<String>) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_implied_roles",
        &json!({}),
    )?;
    let prior = id.role(&p).await?;
    let base = &id.config.public_url;
    let mut implies = Vec::new();
    for r in db::implied_all(&mut &id.db)
        .await?
        .iter()
        .filter(|r| r.prior_role_id == p)
    {
        if let Some(role) = db::role_get(&mut &id.db, &r.implied_role_id).await? {
            implies.push(role_ref(base, &role));
        }
    }
    ok(StatusCode::OK, inference_json(base, &prior, json!(implies)))
}

async fn role_inferences(State(id): S, Auth(ctx): Auth) -> ApiResult {
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_role_inference_rules",
        &json!({}),
    )?;
    let base = &id.config.public_url;
    let rules = db::implied_all(&mut &id.db).await?;
    let roles: HashMap<String, db::RoleRow> = db::role_list(&mut &id.db, &[])
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let mut by_prior: Vec<(String, Vec<Value>)> = Vec::new();
    for r in &rules {
        let (Some(prior), Some(implied)) =
            (roles.get(&r.prior_role_id), roles.get(&r.implied_role_id))
        else {
            continue;
        };
        match by_prior.iter_mut().find(|(p, _)| *p == prior.id) {
            Some((_, list)) => list.push(role_ref(base, implied)),
            None => by_prior.push((prior.id.clone(), vec![role_ref(base, implied)])),
        }
    }
    let out: Vec<Value> = by_prior
        .into_iter()
        .filter_map(|(p, implies)| {
            roles
                .get(&p)
                .map(|prior| json!({"prior_role": role_ref(base, prior), "implies": implies}))
        })
        .collect();
    ok(
        StatusCode::OK,
        json!({"role_inferences": out, "links": {"self": format!("{base}/v3/role_inferences")}}),
    )
}

// ---- grants ----

type PathMap = Path<HashMap<String, String>>;

/// A grant route: the assignment kind and whether it is an OS-INHERIT grant.
type GrantKind = (&'static str, bool);

async fn grant_parts(
    id: &Identity,
    p: &HashMap<String, String>,
    (kind, inherited): GrantKind,
) -> Result<(AssignmentRow, Value), Error> {
    let aid = p.get("aid").cloned().unwrap_or_default();
    let rid = p.get("rid").cloned().unwrap_or_default();
    let target_id = if kind.ends_with("System") {
        "system".to_string()
    } else {
        p.get("tid").cloned().unwrap_or_default()
    };
    let mut target = Map::new();
    if kind.starts_with("User") {
        let u = id.user(&aid).await?;
        target.insert("user".into(), json!({"id": u.id, "domain_id": u.domain_id}));
    } else {
        let g = group_get(id, &aid).await?;
        target.insert(
            "group".into(),
            json!({"id": g.id, "domain_id": g.domain_id}),
        );
    }
    if kind.ends_with("Project") {
        let pr = id.project(&target_id).await?;
        target.insert(
            "project".into(),
            json!({"id": pr.id, "domain_id": pr.domain_id}),
        );
    } else if kind.ends_with("Domain") {
        let d = id.domain(&target_id).await?;
        target.insert("domain".into(), json!({"id": d.id}));
    }
    if !rid.is_empty() {
        let r = id.role(&rid).await?;
        target.insert("role".into(), json!({"id": r.id, "domain_id": r.domain_id}));
    }
    let row = AssignmentRow {
        kind: kind.to_string(),
        actor_id: aid,
        target_id,
        role_id: rid,
        inherited,
    };
    Ok((row, json!({"target": target})))
}

fn grant_rule(kind: &str, verb: &str) -> String {
    if kind.ends_with("System") {
        let actor = if kind.starts_with("User") {
            "user"
        } else {
            "group"
        };
        return match verb {
            "create" | "check" | "revoke" => format!("identity:{verb}_system_grant_for_{actor}"),
            _ => format!("identity:list_system_grants_for_{actor}"),
        };
    }
    match verb {
        "list" => "identity:list_grants".into(),
        other => format!("identity:{other}_grant"),
    }
}

async fn grant_put(State(id): S, Auth(ctx): Auth, Path(p): PathMap, gk: GrantKind) -> ApiResult {
    let kind = gk.0;
    let (row, target) = grant_parts(&id, &p, gk).await?;
    authorize(&id.enforcer, &ctx, &grant_rule(kind, "create"), &target)?;
    db::assignment_add(&mut &id.db, &row).await?;
    id.changed();
    no_content()
}

async fn grant_check(State(id): S, Auth(ctx): Auth, Path(p): PathMap, gk: GrantKind) -> ApiResult {
    let kind = gk.0;
    let (row, target) = grant_parts(&id, &p, gk).await?;
    authorize(&id.enforcer, &ctx, &grant_rule(kind, "check"), &target)?;
    let all = db::assignment_list(&mut &id.db, Some(std::slice::from_ref(&row.actor_id))).await?;
    if all.contains(&row) {
        no_content()
    } else {
        Err(Error::NotFound {
            kind: "role assignment",
            id: format!(
                "role {} for {} on {}",
                row.role_id, row.actor_id, row.target_id
            ),
        }
        .into())
    }
}

async fn grant_delete(State(id): S, Auth(ctx): Auth, Path(p): PathMap, gk: GrantKind) -> ApiResult {
    let kind = gk.0;
    let (row, target) = grant_parts(&id, &p, gk).await?;
    authorize(&id.enforcer, &ctx, &grant_rule(kind, "revoke"), &target)?;
    if db::assignment_remove(&mut &id.db, &row).await? == 0 {
        return Err(Error::NotFound {
            kind: "role assignment",
            id: format!(
                "role {} for {} on {}",
                row.role_id, row.actor_id, row.target_id
            ),
        }
        .into());
    }
    // As upstream, removing a grant records no revocation event: tokens are rebuilt
    // from the database on validation, so they lose the role (and stop working when
    // no role is left on their scope). A revocation here would also refuse tokens
    // issued later in the same second (Fernet timestamps have whole seconds).
    id.changed();
    no_content()
}

async fn grant_list(State(id): S, Auth(ctx): Auth, Path(p): PathMap, gk: GrantKind) -> ApiResult {
    let kind = gk.0;
    let (row, target) = grant_parts(&id, &p, gk).await?;
    authorize(&id.enforcer, &ctx, &grant_rule(kind, "list"), &target)?;
    let base = &id.config.public_url;
    let mut out = Vec::new();
    for a in db::assignment_list(&mut &id.db, Some(std::slice::from_ref(&row.actor_id))).await? {
        if a.kind == kind
            && a.target_id == row.target_id
            && a.inherited == row.inherited
            && let Some(r) = db::role_get(&mut &id.db, &a.role_id).await?
        {
            out.push(role_json(base, &r));
        }
    }
    ok(
        StatusCode::OK,
        json!({"roles": out, "links": {"self": null, "previous": null, "next": null}}),
    )
}

// ---- role assignments ----

/// One listed assignment: (user or group, actor id, scope kind, target id, role id,
/// inherited, via group).
type AssignmentItem = (
    bool,
    String,
    &'static str,
    String,
    String,
    bool,
    Option<String>,
);

async fn role_assignments(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    let mut target = list_target(&[("domain_id", q.get("scope.domain.id"))]);
    if let Some(p) = q.get("scope.project.id") {
        target["target"]["project"] = json!({"id": p});
    }
    authorize(
        &id.enforcer,
        &ctx,
        "identity:list_role_assignments",
        &target,
    )?;
    let effective = q.contains_key("effective");
    let names = q.contains_key("include_names");
    let rows = db::assignment_list(&mut &id.db, None).await?;
    let mut items: Vec<AssignmentItem> = Vec::new();
    for a in rows {
        let is_user = a.kind.starts_with("User");
        let scope: &'static str = if a.kind.ends_with("Project") {
            "project"
        } else if a.kind.ends_with("Domain") {
            "domain"
        } else {
            "system"
        };
        if effective && !is_user {
            for uid in db::group_member_ids(&mut &id.db, &a.actor_id).await? {
                items.push((
                    true,
                    uid,
                    scope,
                    a.target_id.clone(),
                    a.role_id.clone(),
                    a.inherited,
                    Some(a.actor_id.clone()),
                ));
            }
        } else {
            items.push((
                is_user,
                a.actor_id,
                scope,
                a.target_id,
                a.role_id,
                a.inherited,
                None,
            ));
        }
    }
    if effective {
        // Inherited assignments apply to every project below their target.
        let projects = db::project_list(&mut &id.db, false, &[]).await?;
        let mut expanded = Vec::new();
        for it in items {
            if it.5 {
                for p in &projects {
                    if id.ancestors(p).await?.iter().any(|a| a.id == it.3) {
                        expanded.push((
                            it.0,
                            it.1.clone(),
                            "project",
                            p.id.clone(),
                            it.4.clone(),
                            false,
                            it.6.clone(),
                        ));
                    }
                }
            } else {
                expanded.push(it);
            }
        }
        // Implied roles become assignments of their own; domain-specific roles only imply
        // and are left out, as upstream.
        let domain_roles: HashSet<String> = db::role_list(&mut &id.db, &[])
            .await?
            .into_iter()
            .filter(|r| !r.domain_id.is_empty())
            .map(|r| r.id)
            .collect();
        let mut out = Vec::new();
        for it in expanded {
            let all = id.expand_implied(&HashSet::from([it.4.clone()])).await?;
            for rid in all {
                if domain_roles.contains(&rid) {
                    continue;
                }
                let mut c = it.clone();
                c.4 = rid;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        items = out;
    }
    let want = |k: &str| q.get(k).cloned();
    items.retain(|(is_user, actor, scope, target, role, inherited, _)| {
        want("user.id").is_none_or(|u| *is_user && *actor == u)
            && want("group.id").is_none_or(|g| !*is_user && *actor == g)
            && want("role.id").is_none_or(|r| *role == r)
            && want("scope.project.id").is_none_or(|p| *scope == "project" && *target == p)
            && want("scope.domain.id").is_none_or(|d| *scope == "domain" && *target == d)
            && want("scope.system").is_none_or(|_| *scope == "system")
            && (!q.contains_key("scope.OS-INHERIT:inherited_to") || *inherited)
    });
    let base = &id.config.public_url;
    let mut out = Vec::new();
    for (is_user, actor, scope, target, role, inherited, via) in items {
        let mut role_v = json!({"id": role});
        let mut actor_v = json!({"id": actor});
        let mut scope_v = if scope == "system" {
            json!({"all": true})
        } else {
            json!({"id": target})
        };
        if names {
            if let Some(r) = db::role_get(&mut &id.db, &role).await? {
                role_v["name"] = json!(r.name);
                if !r.domain_id.is_empty() {
                    role_v["domain"] = json!({"id": r.domain_id});
                }
            }
            if is_user {
                if let Some(u) = db::user_get(&mut &id.db, &actor).await? {
                    actor_v["name"] = json!(u.name);
                    let dn = db::project_get(&mut &id.db, &u.domain_id)
                        .await?
                        .map(|d| d.name)
                        .unwrap_or_default();
                    actor_v["domain"] = json!({"id": u.domain_id, "name": dn});
                }
            } else if let Some(g) = db::group_get(&mut &id.db, &actor).await? {
                actor_v["name"] = json!(g.name);
                let dn = db::project_get(&mut &id.db, &g.domain_id)
                    .await?
                    .map(|d| d.name)
                    .unwrap_or_default();
                actor_v["domain"] = json!({"id": g.domain_id, "name": dn});
            }
            if scope != "system"
                && let Some(t) = db::project_get(&mut &id.db, &target).await?
            {
                scope_v["name"] = json!(t.name);
                if scope == "project" {
                    let dn = db::project_get(&mut &id.db, &t.domain_id)
                        .await?
                        .map(|d| d.name)
                        .unwrap_or_default();
                    scope_v["domain"] = json!({"id": t.domain_id, "name": dn});
                }
            }
        }
        let scope_path = match scope {
            "project" => format!("projects/{target}"),
            "domain" => format!("domains/{target}"),
            _ => "system".into(),
        };
        let actor_path = if is_user {
            format!("users/{actor}")
        } else {
            format!("groups/{actor}")
        };
        let mut links =
            json!({"assignment": format!("{base}/v3/{scope_path}/{actor_path}/roles/{role}")});
        if let Some(g) = via {
            links["membership"] = json!(format!("{base}/v3/groups/{g}/users/{actor}"));
        }
        let mut scope_obj = json!({scope: scope_v});
        if inherited {
            scope_obj["OS-INHERIT:inherited_to"] = json!("projects");
        }
        let key = if is_user { "user" } else { "group" };
        out.push(json!({"role": role_v, key: actor_v, "scope": scope_obj, "links": links}));
    }
    ok(
        StatusCode::OK,
        json!({"role_assignments": out, "links": collection_links(base, "role_assignments")}),
    )
}

// ---- catalog: regions, services, endpoints ----

async fn region_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:list_regions", &json!({}))?;
    let list = db::region_list(
        &mut &id.db,
        &[(
            "parent_region_id",
            q.get("parent_region_id").map(Into::into),
        )],
    )
    .await?;
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"regions": list.iter().map(|r| region_json(base, r)).collect::<Vec<_>>(), "links": collection_links(base, "regions")}),
    )
}

async fn region_write(
    id: &Identity,
    rid: Option<String>,
    body: &Value,
    existing: Option<db::RegionRow>,
) -> ApiResult {
    let r = entity(body, "region")?;
    let creating = existing.is_none();
    if let (Some(given), Some(path_id)) = (str_field(r, "id", true)?, &rid)
        && given != *path_id
    {
        return Err(Error::bad_request("The region id in the body does not match the URL.").into());
    }
    let mut row = existing.unwrap_or(db::RegionRow {
        id: rid.or(str_field(r, "id", true)?).unwrap_or_else(new_hex_id),
        description: None,
        parent_region_id: None,
        extra: "{}".into(),
    });
    if r.contains_key("description") {
        row.description = str_field(r, "description", true)?;
    }
    if r.contains_key("parent_region_id") {
        let parent = str_field(r, "parent_region_id", true)?;
        if let Some(pid) = &parent {
            if *pid == row.id {
                return Err(Error::bad_request("A region cannot be its own parent.").into());
            }
            db::region_get(&mut &id.db, pid)
                .await?
                .ok_or_else(|| Error::not_found("region", pid))?;
        }
        row.parent_region_id = parent;
    }
    row.extra = extra_of(r, &["description", "parent_region_id"], Some(&row.extra));
    db::region_upsert(&mut &id.db, &row, creating)
        .await
        .map_err(|e| match e {
            ferro_db::DbError::Duplicate(_) => Error::conflict(format!(
                "Conflict occurred attempting to store region - Duplicate ID, {}.",
                row.id
            )),
            other => other.into(),
        })?;
    id.changed();
    saved(
        creating,
        json!({"region": region_json(&id.config.public_url, &row)}),
    )
}

async fn region_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:create_region", &json!({}))?;
    region_write(&id, None, &body, None).await
}

async fn region_put(
    State(id): S,
    Auth(ctx): Auth,
    Path(rid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:create_region", &json!({}))?;
    region_write(&id, Some(rid), &body, None).await
}

async fn region_show(State(id): S, Auth(ctx): Auth, Path(rid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:get_region", &json!({}))?;
    let r = db::region_get(&mut &id.db, &rid)
        .await?
        .ok_or_else(|| Error::not_found("region", &rid))?;
    ok(
        StatusCode::OK,
        json!({"region": region_json(&id.config.public_url, &r)}),
    )
}

async fn region_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(rid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:update_region", &json!({}))?;
    let r = db::region_get(&mut &id.db, &rid)
        .await?
        .ok_or_else(|| Error::not_found("region", &rid))?;
    region_write(&id, Some(rid), &body, Some(r)).await
}

async fn region_delete(State(id): S, Auth(ctx): Auth, Path(rid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:delete_region", &json!({}))?;
    db::region_get(&mut &id.db, &rid)
        .await?
        .ok_or_else(|| Error::not_found("region", &rid))?;
    if !db::region_list(
        &mut &id.db,
        &[("parent_region_id", Some(rid.clone().into()))],
    )
    .await?
    .is_empty()
    {
        return Err(
            Error::Forbidden(format!("Cannot delete region {rid}: it has child regions.")).into(),
        );
    }
    db::delete_by_id(&mut &id.db, "ks_region", &rid).await?;
    id.changed();
    no_content()
}

async fn service_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:list_services", &json!({}))?;
    let mut list = db::service_list(&mut &id.db, q.get("type").map(String::as_str)).await?;
    if let Some(name) = q.get("name") {
        list.retain(|s| {
            serde_json::from_str::<Value>(&s.extra)
                .ok()
                .and_then(|e| e.get("name").cloned())
                == Some(json!(name))
        });
    }
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"services": list.iter().map(|s| service_json(base, s)).collect::<Vec<_>>(), "links": collection_links(base, "services")}),
    )
}

async fn service_write(id: &Identity, body: &Value, existing: Option<db::ServiceRow>) -> ApiResult {
    let s = entity(body, "service")?;
    let creating = existing.is_none();
    let mut row = match existing {
        Some(r) => r,
        None => db::ServiceRow {
            id: new_hex_id(),
            kind: required_str(s, "type")?,
            enabled: true,
            extra: "{}".into(),
        },
    };
    if let Some(t) = str_field(s, "type", false)? {
        if t.is_empty() || t.len() > 255 {
            return Err(Error::bad_request("Invalid input for field 'type'.").into());
        }
        row.kind = t;
    }
    if let Some(e) = bool_field(s, "enabled")? {
        row.enabled = e;
    }
    row.extra = extra_of(s, &["type", "enabled"], Some(&row.extra));
    db::service_upsert(&mut &id.db, &row, creating).await?;
    id.changed();
    saved(
        creating,
        json!({"service": service_json(&id.config.public_url, &row)}),
    )
}

async fn service_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:create_service", &json!({}))?;
    service_write(&id, &body, None).await
}

async fn service_show(State(id): S, Auth(ctx): Auth, Path(sid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:get_service", &json!({}))?;
    let s = db::service_get(&mut &id.db, &sid)
        .await?
        .ok_or_else(|| Error::not_found("service", &sid))?;
    ok(
        StatusCode::OK,
        json!({"service": service_json(&id.config.public_url, &s)}),
    )
}

async fn service_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(sid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:update_service", &json!({}))?;
    let s = db::service_get(&mut &id.db, &sid)
        .await?
        .ok_or_else(|| Error::not_found("service", &sid))?;
    service_write(&id, &body, Some(s)).await
}

async fn service_delete(State(id): S, Auth(ctx): Auth, Path(sid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:delete_service", &json!({}))?;
    db::service_get(&mut &id.db, &sid)
        .await?
        .ok_or_else(|| Error::not_found("service", &sid))?;
    let mut tx = id.db.begin().await?;
    for e in db::endpoint_list(&mut tx, &[("service_id", Some(sid.clone().into()))]).await? {
        db::delete_by_id(&mut tx, "ks_endpoint", &e.id).await?;
    }
    db::delete_by_id(&mut tx, "ks_service", &sid).await?;
    tx.commit().await?;
    id.changed();
    no_content()
}

async fn endpoint_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:list_endpoints", &json!({}))?;
    let list = db::endpoint_list(
        &mut &id.db,
        &[
            ("interface", q.get("interface").map(Into::into)),
            ("service_id", q.get("service_id").map(Into::into)),
            (
                "region_id",
                q.get("region_id").or(q.get("region")).map(Into::into),
            ),
        ],
    )
    .await?;
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"endpoints": list.iter().map(|e| endpoint_json(base, e)).collect::<Vec<_>>(), "links": collection_links(base, "endpoints")}),
    )
}

async fn endpoint_write(
    id: &Identity,
    body: &Value,
    existing: Option<db::EndpointRow>,
) -> ApiResult {
    let e = entity(body, "endpoint")?;
    let creating = existing.is_none();
    let mut row = match existing {
        Some(r) => r,
        None => db::EndpointRow {
            id: new_hex_id(),
            service_id: required_str(e, "service_id")?,
            interface: required_str(e, "interface")?,
            url: required_str(e, "url")?,
            region_id: None,
            enabled: true,
            extra: "{}".into(),
        },
    };
    if let Some(s) = str_field(e, "service_id", false)? {
        row.service_id = s;
    }
    if let Some(i) = str_field(e, "interface", false)? {
        row.interface = i;
    }
    if !["public", "internal", "admin"].contains(&row.interface.as_str()) {
        return Err(Error::bad_request(format!(
            "Invalid input for field 'interface': {:?} is not one of public, internal, admin.",
            row.interface
        ))
        .into());
    }
    if let Some(u) = str_field(e, "url", false)? {
        row.url = u;
    }
    if !(row.url.starts_with("http://") || row.url.starts_with("https://")) {
        return Err(Error::bad_request(format!(
            "Invalid input for field 'url': {:?} is not a URL.",
            row.url
        ))
        .into());
    }
    if let Some(en) = bool_field(e, "enabled")? {
        row.enabled = en;
    }
    let region_id = str_field(e, "region_id", true)?;
    // The legacy `region` attribute (v2 style) creates its region when missing, as upstream.
    let legacy = if region_id.is_none() {
        str_field(e, "region", true)?
    } else {
        None
    };
    if e.contains_key("region_id") || e.contains_key("region") {
        if let Some(rid) = &region_id {
            db::region_get(&mut &id.db, rid)
                .await?
                .ok_or_else(|| Error::bad_request(format!("Could not find region: {rid}.")))?;
        } else if let Some(rid) = &legacy
            && db::region_get(&mut &id.db, rid).await?.is_none()
        {
            region_auto_create(id, rid).await?;
        }
        row.region_id = region_id.or(legacy);
    }
    db::service_get(&mut &id.db, &row.service_id)
        .await?
        .ok_or_else(|| {
            Error::bad_request(format!("Could not find service: {}.", row.service_id))
        })?;
    row.extra = extra_of(
        e,
        &[
            "service_id",
            "interface",
            "url",
            "enabled",
            "region_id",
            "region",
        ],
        Some(&row.extra),
    );
    db::endpoint_upsert(&mut &id.db, &row, creating).await?;
    id.changed();
    saved(
        creating,
        json!({"endpoint": endpoint_json(&id.config.public_url, &row)}),
    )
}

/// Creates the region an endpoint names through the legacy `region` attribute.
async fn region_auto_create(id: &Identity, rid: &str) -> Result<(), Error> {
    let row = db::RegionRow {
        id: rid.to_string(),
        description: None,
        parent_region_id: None,
        extra: "{}".into(),
    };
    match db::region_upsert(&mut &id.db, &row, true).await {
        // Another request made it meanwhile.
        Ok(()) | Err(ferro_db::DbError::Duplicate(_)) => {}
        Err(e) => return Err(e.into()),
    }
    id.changed();
    Ok(())
}

async fn endpoint_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:create_endpoint", &json!({}))?;
    endpoint_write(&id, &body, None).await
}

async fn endpoint_show(State(id): S, Auth(ctx): Auth, Path(eid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:get_endpoint", &json!({}))?;
    let e = db::endpoint_get(&mut &id.db, &eid)
        .await?
        .ok_or_else(|| Error::not_found("endpoint", &eid))?;
    ok(
        StatusCode::OK,
        json!({"endpoint": endpoint_json(&id.config.public_url, &e)}),
    )
}

async fn endpoint_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(eid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:update_endpoint", &json!({}))?;
    let e = db::endpoint_get(&mut &id.db, &eid)
        .await?
        .ok_or_else(|| Error::not_found("endpoint", &eid))?;
    endpoint_write(&id, &body, Some(e)).await
}

async fn endpoint_delete(State(id): S, Auth(ctx): Auth, Path(eid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:delete_endpoint", &json!({}))?;
    if db::delete_by_id(&mut &id.db, "ks_endpoint", &eid).await? == 0 {
        return Err(Error::not_found("endpoint", eid).into());
    }
    id.changed();
    no_content()
}

// ---- credentials ----

async fn credential_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:list_credentials", &json!({}))?;
    let mut list = db::credential_list(
        &mut &id.db,
        &[
            ("user_id", q.get("user_id").map(Into::into)),
            ("type", q.get("type").map(Into::into)),
        ],
    )
    .await?;
    // Upstream filters the list to what the caller may see.
    list.retain(|c| {
        authorize(
            &id.enforcer,
            &ctx,
            "identity:get_credential",
            &json!({"target": {"credential": {"user_id": c.user_id}}}),
        )
        .is_ok()
    });
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"credentials": list.iter().map(|c| credential_json(base, c)).collect::<Vec<_>>(), "links": collection_links(base, "credentials")}),
    )
}

async fn credential_write(
    id: &Identity,
    ctx: &RequestContext,
    body: &Value,
    existing: Option<db::CredentialRow>,
    rule: &str,
) -> ApiResult {
    let c = entity(body, "credential")?;
    let creating = existing.is_none();
    let mut row = match existing {
        Some(r) => r,
        None => db::CredentialRow {
            id: String::new(),
            user_id: required_str(c, "user_id")?,
            project_id: None,
            kind: required_str(c, "type")?,
            blob: required_str(c, "blob")?,
            extra: "{}".into(),
        },
    };
    if let Some(u) = str_field(c, "user_id", false)? {
        row.user_id = u;
    }
    if c.contains_key("project_id") {
        row.project_id = str_field(c, "project_id", true)?;
    }
    if let Some(t) = str_field(c, "type", false)? {
        row.kind = t;
    }
    if let Some(b) = str_field(c, "blob", false)? {
        row.blob = b;
    }
    authorize(
        &id.enforcer,
        ctx,
        rule,
        &json!({"target": {"credential": {"user_id": row.user_id, "project_id": row.project_id}}}),
    )?;
    if row.kind == "ec2" {
        // EC2 credentials are keyed by the hash of their access key and need a project.
        let blob: Value = serde_json::from_str(&row.blob)
            .map_err(|_| Error::bad_request("Invalid blob in credential: not JSON."))?;
        let access = blob
            .get("access")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("Invalid blob in credential: no access key."))?;
        if row.project_id.is_none() {
            return Err(Error::bad_request(
                "Project ID not found: an ec2 credential needs a project_id.",
            )
            .into());
        }
        if creating {
            use sha2::Digest as _;
            row.id = format!("{:x}", sha2::Sha256::digest(access.as_bytes()));
        }
    } else if creating {
        row.id = new_hex_id();
    }
    row.extra = extra_of(
        c,
        &["user_id", "project_id", "type", "blob"],
        Some(&row.extra),
    );
    db::credential_upsert(&mut &id.db, &row, creating)
        .await
        .map_err(|e| conflict(e, "credential", &row.id))?;
    saved(
        creating,
        json!({"credential": credential_json(&id.config.public_url, &row)}),
    )
}

async fn credential_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    credential_write(&id, &ctx, &body, None, "identity:create_credential").await
}

async fn credential_get(
    id: &Identity,
    ctx: &RequestContext,
    cid: &str,
    rule: &str,
) -> Result<db::CredentialRow, Error> {
    let c = db::credential_get(&mut &id.db, cid).await?;
    let target =
        json!({"target": {"credential": {"user_id": c.as_ref().map(|c| c.user_id.clone())}}});
    authorize(&id.enforcer, ctx, rule, &target)?;
    c.ok_or_else(|| Error::not_found("credential", cid))
}

async fn credential_show(State(id): S, Auth(ctx): Auth, Path(cid): Path<String>) -> ApiResult {
    let c = credential_get(&id, &ctx, &cid, "identity:get_credential").await?;
    ok(
        StatusCode::OK,
        json!({"credential": credential_json(&id.config.public_url, &c)}),
    )
}

async fn credential_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(cid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let c = credential_get(&id, &ctx, &cid, "identity:update_credential").await?;
    credential_write(&id, &ctx, &body, Some(c), "identity:update_credential").await
}

async fn credential_delete(State(id): S, Auth(ctx): Auth, Path(cid): Path<String>) -> ApiResult {
    credential_get(&id, &ctx, &cid, "identity:delete_credential").await?;
    db::delete_by_id(&mut &id.db, "ks_credential", &cid).await?;
    no_content()
}

// ---- policies (stored blobs, /v3/policies) ----

async fn policy_list(State(id): S, Auth(ctx): Auth, Query(q): Q) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:list_policies", &json!({}))?;
    let list = db::policy_list(&mut &id.db, q.get("type").map(String::as_str)).await?;
    let base = &id.config.public_url;
    ok(
        StatusCode::OK,
        json!({"policies": list.iter().map(|p| policy_json(base, p)).collect::<Vec<_>>(), "links": collection_links(base, "policies")}),
    )
}

async fn policy_write(id: &Identity, body: &Value, existing: Option<db::PolicyRow>) -> ApiResult {
    let p = entity(body, "policy")?;
    let creating = existing.is_none();
    let mut row = match existing {
        Some(r) => r,
        None => db::PolicyRow {
            id: new_hex_id(),
            kind: required_str(p, "type")?,
            blob: required_str(p, "blob")?,
            extra: "{}".into(),
        },
    };
    if let Some(t) = str_field(p, "type", false)? {
        row.kind = t;
    }
    if let Some(b) = str_field(p, "blob", false)? {
        row.blob = b;
    }
    row.extra = extra_of(p, &["type", "blob"], Some(&row.extra));
    db::policy_upsert(&mut &id.db, &row, creating).await?;
    saved(
        creating,
        json!({"policy": policy_json(&id.config.public_url, &row)}),
    )
}

async fn policy_create(State(id): S, Auth(ctx): Auth, Json(body): Json<Value>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:create_policy", &json!({}))?;
    policy_write(&id, &body, None).await
}

async fn policy_show(State(id): S, Auth(ctx): Auth, Path(pid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:get_policy", &json!({}))?;
    let p = db::policy_get(&mut &id.db, &pid)
        .await?
        .ok_or_else(|| Error::not_found("policy", &pid))?;
    ok(
        StatusCode::OK,
        json!({"policy": policy_json(&id.config.public_url, &p)}),
    )
}

async fn policy_update(
    State(id): S,
    Auth(ctx): Auth,
    Path(pid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:update_policy", &json!({}))?;
    let p = db::policy_get(&mut &id.db, &pid)
        .await?
        .ok_or_else(|| Error::not_found("policy", &pid))?;
    policy_write(&id, &body, Some(p)).await
}

async fn policy_delete(State(id): S, Auth(ctx): Auth, Path(pid): Path<String>) -> ApiResult {
    authorize(&id.enforcer, &ctx, "identity:delete_policy", &json!({}))?;
    if db::delete_by_id(&mut &id.db, "ks_policy", &pid).await? == 0 {
        return Err(Error::not_found("policy", pid).into());
    }
    no_content()
}
