//! `keystone-manage bootstrap`: the first domain, project, user, roles and catalog.
//!
//! A saga of idempotent steps: each one ensures its records exist and notes in the saga
//! state only what it created, so a failure later undoes exactly that and a rerun on an
//! existing cloud changes nothing (an existing admin keeps the password it has).

use std::sync::Arc;

use async_trait::async_trait;
use ferro_common::time::now_micros;
use ferro_common::{Error, new_hex_id};
use ferro_saga::{MemoryLog, Saga, Step, StepError};
use serde_json::{Value, json};

use crate::db::{self, AssignmentRow, ProjectRow, ROOT_DOMAIN};
use crate::manager::Identity;

/// What bootstrap sets up.
#[derive(Clone, Debug)]
pub struct BootstrapParams {
    pub admin_user: String,
    pub admin_password: String,
    pub admin_project: String,
    pub region: String,
    /// Catalog entries: `(type, name, url)`; each gets public, internal and admin endpoints.
    pub services: Vec<(String, String, String)>,
    /// The `service` project and one user per service (DevStack's layout), with this password.
    pub service_password: Option<String>,
}

/// Ids of what bootstrap ensured, for the caller's output.
#[derive(Clone, Debug)]
pub struct Bootstrapped {
    pub admin_user_id: String,
    pub admin_project_id: String,
}

type Ctx = Arc<Identity>;

fn step_err(e: impl std::fmt::Display) -> StepError {
    StepError::new(e)
}

fn created(state: &mut Value, key: &str, id: &str) {
    let list = state
        .as_object_mut()
        .map(|o| o.entry("created").or_insert_with(|| json!({})));
    if let Some(Value::Object(m)) = list {
        let v = m.entry(key.to_string()).or_insert_with(|| json!([]));
        if let Some(a) = v.as_array_mut() {
            a.push(json!(id));
        }
    }
}

fn created_ids<'a>(state: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    state["created"][key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

async fn undo_rows(
    id: &Identity,
    state: &Value,
    key: &str,
    table: &'static str,
) -> Result<(), StepError> {
    for rid in created_ids(state, key) {
        match table {
            "ks_project" => db::project_delete(&mut &id.db, rid).await.map(|_| ()),
            "ks_user" => db::user_delete(&mut &id.db, rid).await.map(|_| ()),
            "ks_role" => db::role_delete(&mut &id.db, rid).await.map(|_| ()),
            other => db::delete_by_id(&mut &id.db, other, rid).await.map(|_| ()),
        }
        .map_err(step_err)?;
    }
    id.changed();
    Ok(())
}

/// Ensures a project (or domain) named `name` in `domain_id`; returns its id.
async fn ensure_project(
    id: &Identity,
    state: &mut Value,
    name: &str,
    domain: Option<&str>,
) -> Result<String, StepError> {
    let (parent, domain_id, is_domain) = match domain {
        Some(d) => (Some(d.to_string()), d.to_string(), false),
        None => (None, ROOT_DOMAIN.to_string(), true),
    };
    if let Some(p) = db::project_by_name(&mut &id.db, &domain_id, name)
        .await
        .map_err(step_err)?
    {
        return Ok(p.id);
    }
    // The first domain has upstream's well-known id `default`.
    let pid = if is_domain && name == "Default" {
        "default".to_string()
    } else {
        new_hex_id()
    };
    let row = ProjectRow {
        id: pid.clone(),
        name: name.into(),
        domain_id,
        parent_id: parent,
        description: Some(if is_domain {
            "The default domain".into()
        } else {
            format!("Bootstrap project {name}")
        }),
        enabled: true,
        is_domain,
        extra: "{}".into(),
        created_at: now_micros(),
    };
    created(state, "projects", &pid);
    db::project_insert(&mut &id.db, &row)
        .await
        .map_err(step_err)?;
    Ok(pid)
}

async fn ensure_role(id: &Identity, state: &mut Value, name: &str) -> Result<String, StepError> {
    let existing = db::role_list(
        &mut &id.db,
        &[("name", Some(name.into())), ("domain_id", Some("".into()))],
    )
    .await
    .map_err(step_err)?;
    if let Some(r) = existing.into_iter().next() {
        return Ok(r.id);
    }
    let rid = new_hex_id();
    created(state, "roles", &rid);
    let row = db::RoleRow {
        id: rid.clone(),
        name: name.into(),
        domain_id: String::new(),
        description: None,
        extra: "{}".into(),
    };
    db::role_insert(&mut &id.db, &row).await.map_err(step_err)?;
    Ok(rid)
}

async fn ensure_user(
    id: &Identity,
    state: &mut Value,
    name: &str,
    password: &str,
    project: Option<&str>,
) -> Result<String, StepError> {
    if let Some(u) = db::user_by_name(&mut &id.db, "default", name)
        .await
        .map_err(step_err)?
    {
        return Ok(u.id);
    }
    let uid = new_hex_id();
    let hash = id.hash_password(password).await.map_err(step_err)?;
    let now = now_micros();
    let row = db::UserRow {
        id: uid.clone(),
        domain_id: "default".into(),
        name: name.into(),
        enabled: true,
        password_hash: Some(hash),
        password_created_at: Some(now),
        default_project_id: project.map(str::to_string),
        extra: "{}".into(),
        created_at: now,
        last_active_at: None,
    };
    created(state, "users", &uid);
    db::user_insert(&mut &id.db, &row).await.map_err(step_err)?;
    Ok(uid)
}

async fn grant(
    id: &Identity,
    kind: &str,
    actor: &str,
    target: &str,
    role: &str,
) -> Result<(), StepError> {
    let a = AssignmentRow {
        kind: kind.into(),
        actor_id: actor.into(),
        target_id: target.into(),
        role_id: role.into(),
        inherited: false,
    };
    db::assignment_add(&mut &id.db, &a).await.map_err(step_err)
}

struct EnsureDomain;

#[async_trait]
impl Step<Ctx> for EnsureDomain {
    fn name(&self) -> &'static str {
        "ensure_default_domain"
    }
    async fn run(&self, id: &Ctx, state: &mut Value) -> Result<(), StepError> {
        ensure_project(id, state, "Default", None).await?;
        Ok(())
    }
    async fn undo(&self, id: &Ctx, state: &Value) -> Result<(), StepError> {
        undo_rows(id, state, "projects", "ks_project").await
    }
}

struct EnsureRoles;

#[async_trait]
impl Step<Ctx> for EnsureRoles {
    fn name(&self) -> &'static str {
        "ensure_roles"
    }
    async fn run(&self, id: &Ctx, state: &mut Value) -> Result<(), StepError> {
        let admin = ensure_role(id, state, "admin").await?;
        let member = ensure_role(id, state, "member").await?;
        let reader = ensure_role(id, state, "reader").await?;
        let manager = ensure_role(id, state, "manager").await?;
        ensure_role(id, state, "service").await?;
        // Upstream's implied roles (keystone-manage bootstrap since 2023.2): admin implies
        // manager, manager implies member, member implies reader. The older admin → member
        // rule is dropped, as upstream does.
        db::implied_delete(&mut &id.db, &admin, &member)
            .await
            .map_err(step_err)?;
        for (p, i) in [(&admin, &manager), (&manager, &member), (&member, &reader)] {
            let exists = db::implied_all(&mut &id.db)
                .await
                .map_err(step_err)?
                .iter()
                .any(|r| r.prior_role_id == *p && r.implied_role_id == *i);
            if !exists {
                db::implied_insert(&mut &id.db, p, i)
                    .await
                    .map_err(step_err)?;
            }
        }
        state["admin_role"] = json!(admin);
        state["service_role"] = json!(ensure_role(id, state, "service").await?);
        Ok(())
    }
    async fn undo(&self, id: &Ctx, state: &Value) -> Result<(), StepError> {
        undo_rows(id, state, "roles", "ks_role").await
    }
}

struct EnsureAdmin(BootstrapParams);

#[async_trait]
impl Step<Ctx> for EnsureAdmin {
    fn name(&self) -> &'static str {
        "ensure_admin"
    }
    async fn run(&self, id: &Ctx, state: &mut Value) -> Result<(), StepError> {
        let p = &self.0;
        let project = ensure_project(id, state, &p.admin_project, Some("default")).await?;
        let user = ensure_user(id, state, &p.admin_user, &p.admin_password, Some(&project)).await?;
        let admin = state["admin_role"].as_str().unwrap_or_default().to_string();
        grant(id, "UserProject", &user, &project, &admin).await?;
        grant(id, "UserSystem", &user, "system", &admin).await?;
        state["admin_user_id"] = json!(user);
        state["admin_project_id"] = json!(project);
        if let Some(pw) = &p.service_password {
            let service_project = ensure_project(id, state, "service", Some("default")).await?;
            let service_role = state["service_role"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for (kind, name, _) in &p.services {
                if kind == "identity" {
                    continue;
                }
                let uid = ensure_user(id, state, name, pw, Some(&service_project)).await?;
                grant(id, "UserProject", &uid, &service_project, &admin).await?;
                grant(id, "UserProject", &uid, &service_project, &service_role).await?;
            }
        }
        Ok(())
    }
    async fn undo(&self, id: &Ctx, state: &Value) -> Result<(), StepError> {
        undo_rows(id, state, "users", "ks_user").await?;
        undo_rows(id, state, "projects", "ks_project").await
    }
}

struct EnsureCatalog(BootstrapParams);

#[async_trait]
impl Step<Ctx> for EnsureCatalog {
    fn name(&self) -> &'static str {
        "ensure_catalog"
    }
    async fn run(&self, id: &Ctx, state: &mut Value) -> Result<(), StepError> {
        let p = &self.0;
        if db::region_get(&mut &id.db, &p.region)
            .await
            .map_err(step_err)?
            .is_none()
        {
            created(state, "regions", &p.region);
            let r = db::RegionRow {
                id: p.region.clone(),
                description: None,
                parent_region_id: None,
                extra: "{}".into(),
            };
            db::region_upsert(&mut &id.db, &r, true)
                .await
                .map_err(step_err)?;
        }
        let services = db::service_list(&mut &id.db, None)
            .await
            .map_err(step_err)?;
        for (kind, name, url) in &p.services {
            if services.iter().any(|s| s.kind == *kind) {
                continue;
            }
            let sid = new_hex_id();
            created(state, "services", &sid);
            let s = db::ServiceRow {
                id: sid.clone(),
                kind: kind.clone(),
                enabled: true,
                extra: json!({"name": name}).to_string(),
            };
            db::service_upsert(&mut &id.db, &s, true)
                .await
                .map_err(step_err)?;
            for interface in ["public", "internal", "admin"] {
                let eid = new_hex_id();
                created(state, "endpoints", &eid);
                let e = db::EndpointRow {
                    id: eid,
                    service_id: sid.clone(),
                    interface: interface.into(),
                    url: url.clone(),
                    region_id: Some(p.region.clone()),
                    enabled: true,
                    extra: "{}".into(),
                };
                db::endpoint_upsert(&mut &id.db, &e, true)
                    .await
                    .map_err(step_err)?;
            }
        }
        id.changed();
        Ok(())
    }
    async fn undo(&self, id: &Ctx, state: &Value) -> Result<(), StepError> {
        undo_rows(id, state, "endpoints", "ks_endpoint").await?;
        undo_rows(id, state, "services", "ks_service").await?;
        undo_rows(id, state, "regions", "ks_region").await
    }
}

/// The bootstrap saga.
pub fn saga(p: &BootstrapParams) -> Saga<Ctx> {
    Saga::new("identity_bootstrap")
        .step(EnsureDomain)
        .step(EnsureRoles)
        .step(EnsureAdmin(p.clone()))
        .step(EnsureCatalog(p.clone()))
}

/// Runs bootstrap; on any failure nothing it created remains.
pub async fn bootstrap(id: &Ctx, p: &BootstrapParams) -> Result<Bootstrapped, Error> {
    let state = saga(p)
        .execute(id, &MemoryLog::new(), json!({}))
        .await
        .map_err(|e| Error::internal(format!("bootstrap: {e}")))?;
    id.changed();
    Ok(Bootstrapped {
        admin_user_id: state["admin_user_id"].as_str().unwrap_or_default().into(),
        admin_project_id: state["admin_project_id"]
            .as_str()
            .unwrap_or_default()
            .into(),
    })
}
