//! The work behind the identity API: authentication, token issue and validation, effective
//! role computation, revocation, and the catalog.
//!
//! Validation is the hot path of the whole cloud (every API call of every service asks it),
//! so its result is cached per token and dropped whenever identity data changes (a
//! generation counter), and revocation events live in memory, indexed by what they match,
//! so their number does not slow validation down.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ferro_common::time::now_micros;
use ferro_common::{Error, RequestContext, Result, new_hex_id};
use ferro_db::Db;
use serde_json::{Value, json};

use crate::IdentityConfig;
use crate::db::{self, ProjectRow, RevocationRow, UserRow};
use crate::token::{self, KeyRing, PackedId, Payload};

/// The message upstream gives for every authentication failure, so a caller cannot tell a
/// wrong password from an unknown user.
pub const AUTH_FAILED: &str = "The request you have made requires authentication.";

fn unauthorized() -> Error {
    Error::Unauthenticated(AUTH_FAILED.into())
}

/// What a token is scoped to.
#[derive(Clone, Debug)]
pub enum TokenScope {
    Unscoped,
    Project {
        project: ProjectRow,
        domain_name: String,
    },
    Domain(ProjectRow),
    System,
}

/// A validated (or freshly issued) token, with everything its body shows.
#[derive(Clone, Debug)]
pub struct TokenData {
    pub id: String,
    pub user: UserRow,
    pub user_domain_name: String,
    pub methods: Vec<String>,
    pub scope: TokenScope,
    pub issued_at: i64,
    pub expires_at: i64,
    pub audit_ids: Vec<String>,
    pub roles: Vec<(String, String)>,
    /// `(id, name, unrestricted)` of the application credential that made the token.
    pub app_cred: Option<(String, String, bool)>,
}

impl TokenData {
    pub fn project_id(&self) -> Option<&str> {
        match &self.scope {
            TokenScope::Project { project, .. } => Some(&project.id),
            _ => None,
        }
    }

    /// The caller context other code sees.
    pub fn context(&self) -> RequestContext {
        let (project_id, project_domain_id, domain_id) = match &self.scope {
            TokenScope::Project { project, .. } => (
                Some(project.id.clone()),
                Some(project.domain_id.clone()),
                None,
            ),
            TokenScope::Domain(d) => (None, None, Some(d.id.clone())),
            _ => (None, None, None),
        };
        RequestContext {
            request_id: String::new(),
            user_id: self.user.id.clone(),
            user_name: self.user.name.clone(),
            user_domain_id: self.user.domain_id.clone(),
            project_id,
            project_domain_id,
            domain_id,
            system_scope: matches!(self.scope, TokenScope::System).then(|| "all".to_string()),
            roles: self.roles.clone(),
            audit_ids: self.audit_ids.clone(),
            methods: self.methods.clone(),
            application_credential_id: self.app_cred.as_ref().map(|a| a.0.clone()),
            token: self.id.clone(),
        }
    }
}

/// Revocation events indexed by the one or two fields they match on.
#[derive(Default)]
struct RevocationIndex {
    by_audit: HashMap<String, i64>,
    by_user: HashMap<String, i64>,
    by_project: HashMap<String, i64>,
    by_domain: HashMap<String, i64>,
    by_user_project: HashMap<(String, String), i64>,
    /// Newest `revoked_at` seen, to fetch only newer events from the database.
    high_water: i64,
    count: usize,
}

fn note(map: &mut HashMap<String, i64>, key: &Option<String>, before: i64) {
    if let Some(k) = key {
        let e = map.entry(k.clone()).or_insert(before);
        *e = (*e).max(before);
    }
}

impl RevocationIndex {
    fn add(&mut self, r: &RevocationRow) {
        self.count += 1;
        self.high_water = self.high_water.max(r.revoked_at);
        let b = r.issued_before;
        note(&mut self.by_audit, &r.audit_id, b);
        note(&mut self.by_audit, &r.audit_chain_id, b);
        match (&r.user_id, &r.project_id) {
            (Some(u), Some(p)) => {
                let e = self
                    .by_user_project
                    .entry((u.clone(), p.clone()))
                    .or_insert(b);
                *e = (*e).max(b);
            }
            _ => {
                note(&mut self.by_user, &r.user_id, b);
                note(&mut self.by_project, &r.project_id, b);
            }
        }
        note(&mut self.by_domain, &r.domain_id, b);
    }

    fn revokes(&self, t: &TokenData) -> bool {
        let hit = |m: &HashMap<String, i64>, k: &str| m.get(k).is_some_and(|b| t.issued_at <= *b);
        if t.audit_ids.iter().any(|a| hit(&self.by_audit, a)) || hit(&self.by_user, &t.user.id) {
            return true;
        }
        if hit(&self.by_domain, &t.user.domain_id) {
            return true;
        }
        match &t.scope {
            TokenScope::Project { project, .. } => {
                hit(&self.by_project, &project.id)
                    || hit(&self.by_domain, &project.domain_id)
                    || self
                        .by_user_project
                        .get(&(t.user.id.clone(), project.id.clone()))
                        .is_some_and(|b| t.issued_at <= *b)
            }
            TokenScope::Domain(d) => hit(&self.by_domain, &d.id),
            _ => false,
        }
    }
}

/// The identity service's state, shared by its handlers.
pub struct Identity {
    pub db: Db,
    pub config: IdentityConfig,
    keys: RwLock<Arc<KeyRing>>,
    revocations: RwLock<RevocationIndex>,
    generation: AtomicU64,
    /// Set by `changed`, cleared when the change is written to the shared counter.
    unpublished: std::sync::atomic::AtomicBool,
    publish: tokio::sync::Notify,
    /// The shared change counter as last read.
    seen_changes: std::sync::atomic::AtomicI64,
    cache: Mutex<TokenCache>,
    /// Modification time of the key repository when it was last read.
    keys_mtime: Mutex<Option<std::time::SystemTime>>,
    catalog_cache: Mutex<Option<(u64, Arc<Vec<CatalogService>>)>>,
    pub enforcer: ferro_policy::Enforcer,
}

/// One service of the catalog with its enabled endpoints.
#[derive(Clone, Debug)]
pub struct CatalogService {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub endpoints: Vec<db::EndpointRow>,
}

const CACHE_LIMIT: usize = 20_000;

/// Validated tokens of one generation of identity data. Entries of an older generation are
/// useless, so a change empties the map instead of letting stale entries pile up.
#[derive(Default)]
struct TokenCache {
    generation: u64,
    map: HashMap<String, Arc<TokenData>>,
}

impl Identity {
    /// Opens identity on a migrated database: loads the keys and the revocation events.
    pub async fn open(db: Db, config: IdentityConfig) -> Result<Arc<Identity>> {
        token::setup_repository(&config.key_repository)
            .map_err(|e| Error::internal(format!("fernet key repository: {e}")))?;
        let keys = KeyRing::load(&config.key_repository)?;
        let keys_mtime = std::fs::metadata(&config.key_repository)
            .and_then(|m| m.modified())
            .ok();
        let enforcer = crate::policy::enforcer(config.policy_file.as_deref())?;
        let me = Arc::new(Identity {
            db,
            config,
            keys: RwLock::new(Arc::new(keys)),
            revocations: RwLock::new(RevocationIndex::default()),
            generation: AtomicU64::new(1),
            seen_changes: std::sync::atomic::AtomicI64::new(0),
            unpublished: std::sync::atomic::AtomicBool::new(false),
            publish: tokio::sync::Notify::new(),
            cache: Mutex::new(TokenCache::default()),
            keys_mtime: Mutex::new(keys_mtime),
            catalog_cache: Mutex::new(None),
            enforcer,
        });
        me.refresh_revocations().await?;
        Ok(me)
    }

    /// Reads revocation events newer than those already indexed (other processes write
    /// them too).
    pub async fn refresh_revocations(&self) -> Result<()> {
        let since = self.revocations.read().map_err(Error::internal)?.high_water;
        let rows = db::revocations_since(&mut &self.db, since).await?;
        if !rows.is_empty() {
            let mut idx = self.revocations.write().map_err(Error::internal)?;
            for r in &rows {
                idx.add(r);
            }
            drop(idx);
            self.changed();
        }
        Ok(())
    }

    /// Number of revocation events in memory.
    pub fn revocation_count(&self) -> usize {
        self.revocations.read().map(|r| r.count).unwrap_or(0)
    }

    /// Marks identity data as changed: cached validations and the catalog are recomputed.
    ///
    /// Other processes on the same database learn of it through the shared change counter
    /// (`ks_change`), which their workers poll every 2 s.
    // TODO-correctness: between a write here and the next poll there, another process may
    // still answer from its cache for up to 2 s (revocation events, which every disable and
    // delete writes, travel the same way).
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // The publisher (see `publish_changes`) writes the counter once per burst: 10,000
        // revocations in a row must not queue 10,000 database writes.
        self.unpublished.store(true, Ordering::SeqCst);
        self.publish.notify_one();
    }

    /// Publishes local changes to the shared counter, one write per burst; runs for ever
    /// (one of identity's workers).
    pub async fn publish_changes(&self) {
        let bump = ferro_db::Sql::new("UPDATE ks_change SET counter = counter + 1 WHERE id = 1");
        loop {
            self.publish.notified().await;
            if self.unpublished.swap(false, Ordering::SeqCst)
                && let Err(e) = self.db.execute(&bump).await
            {
                tracing::warn!(error = %e, "could not publish an identity change");
                self.unpublished.store(true, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                self.publish.notify_one();
            }
        }
    }

    /// Drops cached validations when another process changed identity data since the last
    /// look at the shared counter.
    pub async fn refresh_changes(&self) -> Result<()> {
        #[derive(sqlx::FromRow)]
        struct Counter {
            counter: i64,
        }
        let now = self
            .db
            .fetch_optional::<Counter>(&ferro_db::Sql::new(
                "SELECT counter FROM ks_change WHERE id = 1",
            ))
            .await?
            .map_or(0, |c| c.counter);
        let previous = self.seen_changes.swap(now, Ordering::SeqCst);
        if previous != now {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn keyring(&self) -> Arc<KeyRing> {
        self.keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Re-reads the key repository when its directory changed since the last read; says
    /// whether it did. Garbage tokens therefore cost no disk reads.
    pub fn reload_keys_if_changed(&self) -> Result<bool> {
        let mtime = std::fs::metadata(&self.config.key_repository)
            .and_then(|m| m.modified())
            .ok();
        let mut seen = self.keys_mtime.lock().map_err(Error::internal)?;
        if mtime.is_some() && *seen == mtime {
            return Ok(false);
        }
        self.reload_keys()?;
        *seen = mtime;
        Ok(true)
    }

    /// Re-reads the key repository (after `ferrostack fernet rotate`).
    pub fn reload_keys(&self) -> Result<()> {
        let ring = KeyRing::load(&self.config.key_repository)?;
        *self.keys.write().map_err(Error::internal)? = Arc::new(ring);
        Ok(())
    }

    /// Records a revocation event and applies it at once.
    pub async fn revoke(&self, mut event: RevocationRow) -> Result<()> {
        event.id = new_hex_id();
        event.revoked_at =
            now_micros().max(self.revocations.read().map_err(Error::internal)?.high_water + 1);
        db::revocation_insert(&mut &self.db, &event).await?;
        self.revocations
            .write()
            .map_err(Error::internal)?
            .add(&event);
        self.changed();
        Ok(())
    }

    /// An event that revokes every token matching the given fields issued up to now.
    pub fn event() -> RevocationRow {
        RevocationRow {
            id: String::new(),
            domain_id: None,
            project_id: None,
            user_id: None,
            role_id: None,
            audit_id: None,
            audit_chain_id: None,
            issued_before: now_micros(),
            revoked_at: 0,
        }
    }

    // ---- password hashing ----

    /// Hashes a password with bcrypt off the async threads.
    pub async fn hash_password(&self, password: &str) -> Result<String> {
        if password.len() > 72 {
            // keystone: "The bcrypt max_password_length is 72 bytes"; longer passwords are
            // refused rather than silently truncated.
            return Err(Error::bad_request("Password is longer than 72 bytes."));
        }
        let (pw, cost) = (password.to_string(), self.config.bcrypt_cost);
        on_hash_thread(move || bcrypt::hash(pw, cost))
            .await?
            .map_err(Error::internal)
    }

    /// Checks a password against a bcrypt hash off the async threads.
    pub async fn verify_password(password: &str, hash: &str) -> bool {
        let (pw, h) = (password.to_string(), hash.to_string());
        on_hash_thread(move || bcrypt::verify(pw, &h).unwrap_or(false))
            .await
            .unwrap_or(false)
    }

    // ---- lookups ----

    pub async fn project(&self, id: &str) -> Result<ProjectRow> {
        db::project_get(&mut &self.db, id)
            .await?
            .filter(|p| !p.is_domain)
            .ok_or_else(|| Error::not_found("project", id))
    }

    pub async fn domain(&self, id: &str) -> Result<ProjectRow> {
        db::project_get(&mut &self.db, id)
            .await?
            .filter(|p| p.is_domain)
            .ok_or_else(|| Error::not_found("domain", id))
    }

    /// The limit on `resource_name` of the service of type `service_type` for project
    /// `project_id` under the flat model, as oslo.limit computes it for a service: the
    /// project's own limit if it has one, else the registered default. `None` means
    /// unlimited: nothing is registered for the resource, or the value is -1.
    ///
    /// With `limits_region` configured only that region's registration (or a region-less
    /// one) counts; without, a region-less registration wins over regional ones, and among
    /// those the lowest region id, so the answer does not depend on row order.
    pub async fn effective_limit(
        &self,
        project_id: &str,
        service_type: &str,
        resource_name: &str,
    ) -> Result<Option<i64>> {
        let mut registered =
            db::service_type_registered_limits(&mut &self.db, service_type, resource_name).await?;
        if let Some(region) = &self.config.limits_region {
            registered.retain(|r| r.region_id.is_empty() || r.region_id == *region);
            // The configured region's own registration is more specific than a region-less one.
            registered.sort_by_key(|r| r.region_id.is_empty());
        }
        let Some(registered) = registered.into_iter().next() else {
            return Ok(None);
        };
        let own = db::limit_list(
            &mut &self.db,
            &[
                ("l.registered_limit_id", Some(registered.id.into())),
                ("l.project_id", Some(project_id.into())),
            ],
        )
        .await?;
        let value = own
            .first()
            .map_or(registered.default_limit, |l| l.resource_limit);
        // -1 is unlimited for keystone and oslo.limit alike.
        Ok((value >= 0).then_some(value))
    }

    pub async fn domain_by_name(&self, name: &str) -> Result<ProjectRow> {
        db::project_by_name(&mut &self.db, db::ROOT_DOMAIN, name)
            .await?
            .ok_or_else(|| Error::not_found("domain", name))
    }

    pub async fn user(&self, id: &str) -> Result<UserRow> {
        db::user_get(&mut &self.db, id)
            .await?
            .ok_or_else(|| Error::not_found("user", id))
    }

    pub async fn role(&self, id: &str) -> Result<db::RoleRow> {
        db::role_get(&mut &self.db, id)
            .await?
            .ok_or_else(|| Error::not_found("role", id))
    }

    /// A domain reference `{"id": ...}` or `{"name": ...}` from an auth request.
    async fn domain_ref(&self, r: &Value) -> Result<ProjectRow> {
        if let Some(id) = r.get("id").and_then(Value::as_str) {
            self.domain(id).await
        } else if let Some(name) = r.get("name").and_then(Value::as_str) {
            self.domain_by_name(name).await
        } else {
            Err(Error::bad_request("Expected a domain id or name."))
        }
    }

    /// All ancestors of a project, nearest first, ending with its domain.
    pub async fn ancestors(&self, project: &ProjectRow) -> Result<Vec<ProjectRow>> {
        let mut out = Vec::new();
        let mut next = project.parent_id.clone();
        while let Some(id) = next {
            if out.len() > 64 {
                break;
            }
            let Some(p) = db::project_get(&mut &self.db, &id).await? else {
                break;
            };
            next = if p.is_domain {
                None
            } else {
                p.parent_id.clone()
            };
            out.push(p);
        }
        Ok(out)
    }

    // ---- effective roles ----

    /// Role ids implied by `roles`, transitively, the given ones included.
    pub async fn expand_implied(&self, roles: &HashSet<String>) -> Result<HashSet<String>> {
        let rules = db::implied_all(&mut &self.db).await?;
        let mut out = roles.clone();
        let mut frontier: Vec<String> = roles.iter().cloned().collect();
        while let Some(r) = frontier.pop() {
            for rule in rules.iter().filter(|x| x.prior_role_id == r) {
                if out.insert(rule.implied_role_id.clone()) {
                    frontier.push(rule.implied_role_id.clone());
                }
            }
        }
        Ok(out)
    }

    /// Direct (unexpanded) role ids `user_id` holds on a scope, through groups and
    /// inheritance. `target` is `None` for the system scope.
    pub async fn direct_roles(&self, user_id: &str, scope: &TokenScope) -> Result<HashSet<String>> {
        let mut actors = vec![user_id.to_string()];
        actors.extend(db::user_group_ids(&mut &self.db, user_id).await?);
        let rows = db::assignment_list(&mut &self.db, Some(&actors)).await?;
        let mut out = HashSet::new();
        match scope {
            TokenScope::Project { project, .. } => {
                let ancestors = self.ancestors(project).await?;
                for a in &rows {
                    let on_self =
                        a.target_id == project.id && !a.inherited && a.kind.ends_with("Project");
                    let inherited = a.inherited && ancestors.iter().any(|p| p.id == a.target_id);
                    if on_self || inherited {
                        out.insert(a.role_id.clone());
                    }
                }
            }
            TokenScope::Domain(d) => {
                out.extend(
                    rows.iter()
                        .filter(|a| {
                            a.target_id == d.id && !a.inherited && a.kind.ends_with("Domain")
                        })
                        .map(|a| a.role_id.clone()),
                );
            }
            TokenScope::System => {
                out.extend(
                    rows.iter()
                        .filter(|a| a.kind.ends_with("System"))
                        .map(|a| a.role_id.clone()),
                );
            }
            TokenScope::Unscoped => {}
        }
        Ok(out)
    }

    /// The `(id, name)` roles a token on `scope` carries: implied roles included,
    /// domain-specific roles left out (upstream puts only global roles in tokens).
    pub async fn token_roles(
        &self,
        user_id: &str,
        scope: &TokenScope,
    ) -> Result<Vec<(String, String)>> {
        let direct = self.direct_roles(user_id, scope).await?;
        let all = self.expand_implied(&direct).await?;
        let mut roles: Vec<(String, String)> =
            db::role_list(&mut &self.db, &[("domain_id", Some("".into()))])
                .await?
                .into_iter()
                .filter(|r| all.contains(&r.id))
                .map(|r| (r.id, r.name))
                .collect();
        roles.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(roles)
    }

    // ---- authentication ----

    /// `POST /v3/auth/tokens`: authenticates `auth` and issues a token.
    pub async fn authenticate(&self, auth: &Value) -> Result<TokenData> {
        let identity = auth
            .get("identity")
            .ok_or_else(|| Error::bad_request("'identity' is a required property"))?;
        let methods: Vec<String> = identity
            .get("methods")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::bad_request("'methods' is a required property"))?
            .iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect();
        if methods.is_empty() {
            return Err(Error::bad_request(
                "'methods' must name at least one method.",
            ));
        }
        let scope_req = auth.get("scope");
        let method = methods[0].as_str();
        if methods.len() > 1 {
            // Multi-factor combinations (password + totp ...) are not offered here.
            return Err(unauthorized());
        }
        let body = identity
            .get(method)
            .ok_or_else(|| Error::bad_request(format!("'{method}' is a required property")))?;
        match method {
            "password" => {
                let user = self.password_user(body).await?;
                let scope = self.resolve_scope(&user, scope_req).await?;
                self.issue(user, vec!["password".into()], scope, None, None, None)
                    .await
            }
            "token" => {
                let id = body
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::bad_request("'id' is a required property"))?;
                let old = self
                    .validate(id)
                    .await
                    .map_err(|_| Error::not_found("token", "(redacted)"))?;
                if old.app_cred.is_some() {
                    return Err(Error::Forbidden(
                        "Cannot rescope a token made from an application credential.".into(),
                    ));
                }
                let user = self.user(&old.user.id).await?;
                let scope = self.resolve_scope(&user, scope_req).await?;
                let mut methods = old.methods.clone();
                methods.push("token".into());
                let chain = old.audit_ids.last().cloned();
                self.issue(user, methods, scope, Some(old.expires_at), chain, None)
                    .await
            }
            "application_credential" => self.app_cred_auth(body, scope_req).await,
            _ => Err(unauthorized()),
        }
    }

    async fn password_user(&self, body: &Value) -> Result<UserRow> {
        let u = body
            .get("user")
            .ok_or_else(|| Error::bad_request("'user' is a required property"))?;
        let password = u
            .get("password")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("'password' is a required property"))?;
        let user = if let Some(id) = u.get("id").and_then(Value::as_str) {
            db::user_get(&mut &self.db, id).await?
        } else if let Some(name) = u.get("name").and_then(Value::as_str) {
            let d = u
                .get("domain")
                .ok_or_else(|| Error::bad_request("User name requires a domain."))?;
            match self.domain_ref(d).await {
                Ok(domain) => db::user_by_name(&mut &self.db, &domain.id, name).await?,
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            return Err(Error::bad_request("Expected a user id or name."));
        };
        let Some(user) = user else {
            return Err(unauthorized());
        };
        let ok = match &user.password_hash {
            Some(h) => Self::verify_password(password, h).await,
            None => false,
        };
        if !ok {
            return Err(unauthorized());
        }
        self.check_user_enabled(&user).await?;
        Ok(user)
    }

    async fn check_user_enabled(&self, user: &UserRow) -> Result<()> {
        if !user.enabled {
            return Err(unauthorized());
        }
        let domain = self
            .domain(&user.domain_id)
            .await
            .map_err(|_| unauthorized())?;
        if !domain.enabled {
            return Err(unauthorized());
        }
        Ok(())
    }

    /// Turns the request's `scope` (or the user's default project) into a token scope.
    async fn resolve_scope(&self, user: &UserRow, scope: Option<&Value>) -> Result<TokenScope> {
        let Some(scope) = scope else {
            // No scope: the default project if the user still has a role there.
            if let Some(pid) = &user.default_project_id
                && let Ok(p) = self.project(pid).await
                && p.enabled
            {
                let d = self.domain(&p.domain_id).await?;
                let s = TokenScope::Project {
                    project: p,
                    domain_name: d.name,
                };
                if !self.direct_roles(&user.id, &s).await?.is_empty() {
                    return Ok(s);
                }
            }
            return Ok(TokenScope::Unscoped);
        };
        if scope.as_str() == Some("unscoped") {
            return Ok(TokenScope::Unscoped);
        }
        let s = if let Some(p) = scope.get("project") {
            let project = if let Some(id) = p.get("id").and_then(Value::as_str) {
                db::project_get(&mut &self.db, id).await?
            } else if let Some(name) = p.get("name").and_then(Value::as_str) {
                let d = p
                    .get("domain")
                    .ok_or_else(|| Error::bad_request("Project name requires a domain."))?;
                let domain = self.domain_ref(d).await.map_err(|_| unauthorized())?;
                db::project_by_name(&mut &self.db, &domain.id, name).await?
            } else {
                return Err(Error::bad_request("Expected a project id or name."));
            };
            let project = project.filter(|p| !p.is_domain).ok_or_else(unauthorized)?;
            let domain = self
                .domain(&project.domain_id)
                .await
                .map_err(|_| unauthorized())?;
            if !project.enabled || !domain.enabled {
                return Err(unauthorized());
            }
            TokenScope::Project {
                project,
                domain_name: domain.name,
            }
        } else if let Some(d) = scope.get("domain") {
            let domain = self.domain_ref(d).await.map_err(|_| unauthorized())?;
            if !domain.enabled {
                return Err(unauthorized());
            }
            TokenScope::Domain(domain)
        } else if let Some(sys) = scope.get("system") {
            if sys.get("all").and_then(Value::as_bool) != Some(true) {
                return Err(Error::bad_request("System scope must be {\"all\": true}."));
            }
            TokenScope::System
        } else if scope.get("OS-TRUST:trust").is_some() {
            return Err(Error::Forbidden(
                "Trusts are not supported by this deployment.".into(),
            ));
        } else {
            return Err(Error::bad_request("Unsupported scope."));
        };
        if self.direct_roles(&user.id, &s).await?.is_empty() {
            return Err(unauthorized());
        }
        Ok(s)
    }

    async fn app_cred_auth(&self, body: &Value, scope: Option<&Value>) -> Result<TokenData> {
        let secret = body
            .get("secret")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("'secret' is a required property"))?;
        let cred = if let Some(id) = body.get("id").and_then(Value::as_str) {
            db::app_cred_get(&mut &self.db, id).await?
        } else if let Some(name) = body.get("name").and_then(Value::as_str) {
            let u = body.get("user").ok_or_else(|| {
                Error::bad_request("Application credential name requires a user.")
            })?;
            let user = if let Some(id) = u.get("id").and_then(Value::as_str) {
                db::user_get(&mut &self.db, id).await?
            } else {
                let uname = u
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::bad_request("Expected a user id or name."))?;
                let d = u
                    .get("domain")
                    .ok_or_else(|| Error::bad_request("User name requires a domain."))?;
                match self.domain_ref(d).await {
                    Ok(domain) => db::user_by_name(&mut &self.db, &domain.id, uname).await?,
                    Err(_) => None,
                }
            };
            match user {
                Some(user) => db::app_cred_list(&mut &self.db, &user.id, Some(name))
                    .await?
                    .into_iter()
                    .next(),
                None => None,
            }
        } else {
            return Err(Error::bad_request(
                "Expected an application credential id or name.",
            ));
        };
        let cred = cred.ok_or_else(unauthorized)?;
        if !Self::verify_password(secret, &cred.secret_hash).await {
            return Err(unauthorized());
        }
        if cred.expires_at.is_some_and(|e| e <= now_micros()) {
            return Err(unauthorized());
        }
        if scope.is_some_and(|s| {
            s.get("project")
                .and_then(|p| p.get("id"))
                .and_then(Value::as_str)
                != cred.project_id.as_deref()
        }) {
            // Upstream refuses a scope other than the credential's own project.
            return Err(unauthorized());
        }
        let user = self.user(&cred.user_id).await.map_err(|_| unauthorized())?;
        self.check_user_enabled(&user).await?;
        let pid = cred.project_id.clone().ok_or_else(unauthorized)?;
        let project = self.project(&pid).await.map_err(|_| unauthorized())?;
        let domain = self
            .domain(&project.domain_id)
            .await
            .map_err(|_| unauthorized())?;
        if !project.enabled || !domain.enabled {
            return Err(unauthorized());
        }
        let scope = TokenScope::Project {
            project,
            domain_name: domain.name,
        };
        let app = (cred.id.clone(), cred.name.clone(), cred.unrestricted);
        self.issue(
            user,
            vec!["application_credential".into()],
            scope,
            None,
            None,
            Some(app),
        )
        .await
    }

    /// Seals a new token for `user` on `scope`.
    async fn issue(
        &self,
        user: UserRow,
        methods: Vec<String>,
        scope: TokenScope,
        expires_at: Option<i64>,
        audit_chain: Option<String>,
        app_cred: Option<(String, String, bool)>,
    ) -> Result<TokenData> {
        let now = now_micros();
        // Fernet timestamps have whole seconds; issued_at is what validation will read back.
        let issued_at = now - now % 1_000_000;
        let expires_at = expires_at.unwrap_or(issued_at + self.config.token_expiration * 1_000_000);
        let mut audit_ids = vec![token::new_audit_id()];
        audit_ids.extend(audit_chain);
        let (version, scope_id) = match (&scope, &app_cred) {
            (TokenScope::Project { project, .. }, Some(_)) => (
                token::version::APPLICATION_CREDENTIAL,
                Some(project.id.clone()),
            ),
            (TokenScope::Project { project, .. }, None) => {
                (token::version::PROJECT, Some(project.id.clone()))
            }
            (TokenScope::Domain(d), _) => (token::version::DOMAIN, Some(d.id.clone())),
            (TokenScope::System, _) => (token::version::SYSTEM, Some("all".to_string())),
            (TokenScope::Unscoped, _) => (token::version::UNSCOPED, None),
        };
        let payload = Payload {
            version,
            user_id: PackedId::pack(&user.id),
            methods: token::methods_to_int(&methods),
            scope: scope_id.as_deref().map(PackedId::pack),
            expires_at: expires_at as f64 / 1e6,
            audit_ids: audit_ids.iter().map(|a| token::pack_audit_id(a)).collect(),
            app_cred_id: app_cred.as_ref().map(|a| PackedId::pack(&a.0)),
        };
        let id = self.keyring().seal(&payload)?;
        // A token only just issued is validated to fill in names and roles, exactly as a
        // later validation would see it.
        // Whatever makes a fresh token unusable (no role left on the scope, say) is an
        // authentication failure to the caller, as upstream answers it.
        self.build(&id, payload, issued_at)
            .await
            .map_err(|e| match e {
                Error::Internal(_) => e,
                _ => unauthorized(),
            })
    }

    /// Validates a token: decrypts it, refuses it if expired or revoked, and reloads the
    /// user, scope and roles (a disabled user or project stops its tokens at once).
    pub async fn validate(&self, token: &str) -> Result<TokenData> {
        let generation = self.generation.load(Ordering::SeqCst);
        let hit = {
            let cache = self.cache.lock().map_err(Error::internal)?;
            (cache.generation == generation)
                .then(|| cache.map.get(token).cloned())
                .flatten()
        };
        if let Some(data) = hit {
            if data.expires_at <= now_micros() {
                return Err(not_found_token());
            }
            return Ok((*data).clone());
        }
        let (payload, issued_at) = match self.keyring().open(token) {
            Some(p) => p,
            None => {
                // Another process may have rotated the keys: read them again if they changed.
                if !self.reload_keys_if_changed()? {
                    return Err(not_found_token());
                }
                self.keyring().open(token).ok_or_else(not_found_token)?
            }
        };
        let data = self
            .build(token, payload, issued_at)
            .await
            .map_err(|e| match e {
                Error::Internal(_) => e,
                _ => not_found_token(),
            })?;
        let mut cache = self.cache.lock().map_err(Error::internal)?;
        if cache.generation != generation || cache.map.len() >= CACHE_LIMIT {
            cache.map.clear();
            cache.generation = generation;
        }
        cache.map.insert(token.to_string(), Arc::new(data.clone()));
        Ok(data)
    }

    async fn build(&self, id: &str, p: Payload, issued_at: i64) -> Result<TokenData> {
        let expires_at = (p.expires_at * 1e6) as i64;
        if expires_at <= now_micros() {
            return Err(not_found_token());
        }
        let user_id = p.user_id.unpack().ok_or_else(not_found_token)?;
        let user = self.user(&user_id).await?;
        self.check_user_enabled(&user).await?;
        let user_domain_name = self.domain(&user.domain_id).await?.name;
        let scope_id = p.scope.as_ref().and_then(PackedId::unpack);
        let scope = match (p.version, scope_id) {
            (token::version::UNSCOPED, _) => TokenScope::Unscoped,
            (token::version::PROJECT | token::version::APPLICATION_CREDENTIAL, Some(pid)) => {
                let project = self.project(&pid).await?;
                let domain = self.domain(&project.domain_id).await?;
                if !project.enabled || !domain.enabled {
                    return Err(not_found_token());
                }
                TokenScope::Project {
                    project,
                    domain_name: domain.name,
                }
            }
            (token::version::DOMAIN, Some(did)) => {
                let d = self.domain(&did).await?;
                if !d.enabled {
                    return Err(not_found_token());
                }
                TokenScope::Domain(d)
            }
            (token::version::SYSTEM, _) => TokenScope::System,
            _ => return Err(not_found_token()),
        };
        let mut roles = self.token_roles(&user.id, &scope).await?;
        let app_cred = match p.app_cred_id.as_ref().and_then(PackedId::unpack) {
            Some(cid) => {
                let cred = db::app_cred_get(&mut &self.db, &cid)
                    .await?
                    .ok_or_else(not_found_token)?;
                if cred.expires_at.is_some_and(|e| e <= now_micros()) {
                    return Err(not_found_token());
                }
                let allowed: Vec<String> = serde_json::from_str(&cred.roles).unwrap_or_default();
                let allowed = self.expand_implied(&allowed.into_iter().collect()).await?;
                roles.retain(|(rid, _)| allowed.contains(rid));
                Some((cred.id, cred.name, cred.unrestricted))
            }
            None => None,
        };
        if !matches!(scope, TokenScope::Unscoped) && roles.is_empty() {
            return Err(not_found_token());
        }
        let data = TokenData {
            id: id.to_string(),
            user,
            user_domain_name,
            methods: token::int_to_methods(p.methods),
            scope,
            issued_at,
            expires_at,
            audit_ids: p.audit_ids.iter().map(token::unpack_audit_id).collect(),
            roles,
            app_cred,
        };
        if self
            .revocations
            .read()
            .map_err(Error::internal)?
            .revokes(&data)
        {
            return Err(not_found_token());
        }
        Ok(data)
    }

    /// Revokes one token (its audit id), as `DELETE /v3/auth/tokens`.
    pub async fn revoke_token(&self, data: &TokenData) -> Result<()> {
        let mut e = Self::event();
        e.audit_id = data.audit_ids.first().cloned();
        e.issued_before = data.issued_at;
        self.revoke(e).await
    }

    // ---- catalog ----

    /// Enabled services with their enabled endpoints, cached until identity data changes.
    pub async fn catalog(&self) -> Result<Arc<Vec<CatalogService>>> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((g, c)) = self.catalog_cache.lock().map_err(Error::internal)?.clone()
            && g == generation
        {
            return Ok(c);
        }
        let services = db::service_list(&mut &self.db, None).await?;
        let endpoints = db::endpoint_list(&mut &self.db, &[]).await?;
        let out: Vec<CatalogService> = services
            .into_iter()
            .filter(|s| s.enabled)
            .map(|s| {
                let extra: Value = serde_json::from_str(&s.extra).unwrap_or(json!({}));
                CatalogService {
                    endpoints: endpoints
                        .iter()
                        .filter(|e| e.service_id == s.id && e.enabled)
                        .cloned()
                        .collect(),
                    name: extra
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    id: s.id,
                    kind: s.kind,
                }
            })
            .collect();
        let out = Arc::new(out);
        *self.catalog_cache.lock().map_err(Error::internal)? = Some((generation, out.clone()));
        Ok(out)
    }

    /// The catalog as a token shows it: `$(project_id)s`-style placeholders filled in,
    /// endpoints that need a project left out when the token has none.
    pub async fn catalog_json(&self, project_id: Option<&str>) -> Result<Value> {
        let cat = self.catalog().await?;
        let mut out = Vec::new();
        for s in cat.iter() {
            let endpoints: Vec<Value> = s
                .endpoints
                .iter()
                .filter_map(|e| {
                    let url = substitute_url(&e.url, project_id)?;
                    Some(
                        json!({"id": e.id, "interface": e.interface, "region_id": e.region_id,
                        "region": e.region_id, "url": url}),
                    )
                })
                .collect();
            out.push(json!({"id": s.id, "type": s.kind, "name": s.name, "endpoints": endpoints}));
        }
        Ok(Value::Array(out))
    }
}

/// Runs a password hash or verify on a blocking thread, at most one per core at a time.
///
/// bcrypt is pure CPU: more hashes in flight than cores only adds context switches and
/// cache misses (measured: 16 concurrent logins cost 20 % more CPU each than 4), so the
/// excess waits its turn instead.
async fn on_hash_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _permit = slots.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::internal)
}

fn not_found_token() -> Error {
    Error::not_found("token", "(redacted)")
}

/// Fills `$(project_id)s`, `$(tenant_id)s`, `%(project_id)s` and `%(tenant_id)s` in an
/// endpoint URL; `None` when the URL needs a project and there is none.
pub fn substitute_url(url: &str, project_id: Option<&str>) -> Option<String> {
    let mut out = url.to_string();
    for pat in [
        "$(project_id)s",
        "$(tenant_id)s",
        "%(project_id)s",
        "%(tenant_id)s",
    ] {
        if out.contains(pat) {
            out = out.replace(pat, project_id?);
        }
    }
    Some(out)
}

#[async_trait::async_trait]
impl ferro_http::TokenValidator for Identity {
    async fn validate(&self, token: &str) -> Result<RequestContext> {
        match Identity::validate(self, token).await {
            Ok(d) => Ok(d.context()),
            Err(Error::Internal(e)) => Err(Error::Internal(e)),
            Err(_) => Err(unauthorized()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_urls_fill_project_placeholders() {
        assert_eq!(
            substitute_url("http://h:8776/v3/%(project_id)s", Some("p1")).as_deref(),
            Some("http://h:8776/v3/p1")
        );
        assert_eq!(
            substitute_url("http://h/v1/AUTH_$(tenant_id)s", Some("p")).as_deref(),
            Some("http://h/v1/AUTH_p")
        );
        assert_eq!(substitute_url("http://h/v1/AUTH_$(tenant_id)s", None), None);
        assert_eq!(
            substitute_url("http://h:5000/v3", None).as_deref(),
            Some("http://h:5000/v3")
        );
    }
}
