//! Identity's queries: the only place in this crate that writes SQL.

use ferro_db::{DbError, Executor, Sql};
use sqlx::FromRow;

/// Parent marker of top-level domains, as upstream stores it.
pub const ROOT_DOMAIN: &str = "<<keystone.domain.root>>";

#[derive(FromRow, Clone, Debug)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub parent_id: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub is_domain: bool,
    pub extra: String,
    pub created_at: i64,
}

#[derive(FromRow, Clone, Debug)]
pub struct UserRow {
    pub id: String,
    pub domain_id: String,
    pub name: String,
    pub enabled: bool,
    pub password_hash: Option<String>,
    pub password_created_at: Option<i64>,
    pub default_project_id: Option<String>,
    pub extra: String,
    pub created_at: i64,
    pub last_active_at: Option<i64>,
}

#[derive(FromRow, Clone, Debug)]
pub struct GroupRow {
    pub id: String,
    pub domain_id: String,
    pub name: String,
    pub description: Option<String>,
    pub extra: String,
}

#[derive(FromRow, Clone, Debug)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    /// `""` for a global role.
    pub domain_id: String,
    pub description: Option<String>,
    pub extra: String,
}

#[derive(FromRow, Clone, Debug, PartialEq, Eq)]
pub struct AssignmentRow {
    pub kind: String,
    pub actor_id: String,
    pub target_id: String,
    pub role_id: String,
    pub inherited: bool,
}

#[derive(FromRow, Clone, Debug)]
pub struct RegionRow {
    pub id: String,
    pub description: Option<String>,
    pub parent_region_id: Option<String>,
    pub extra: String,
}

#[derive(FromRow, Clone, Debug)]
pub struct ServiceRow {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    pub extra: String,
}

#[derive(FromRow, Clone, Debug)]
pub struct EndpointRow {
    pub id: String,
    pub service_id: String,
    pub interface: String,
    pub url: String,
    pub region_id: Option<String>,
    pub enabled: bool,
    pub extra: String,
}

#[derive(FromRow, Clone, Debug)]
pub struct AppCredRow {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub secret_hash: String,
    pub description: Option<String>,
    pub expires_at: Option<i64>,
    pub unrestricted: bool,
    /// JSON list of role ids.
    pub roles: String,
    pub created_at: i64,
}

/// A row of a blob resource (credentials, policies).
#[derive(FromRow, Clone, Debug)]
pub struct CredentialRow {
    pub id: String,
    pub user_id: String,
    pub project_id: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: String,
    #[sqlx(rename = "data")]
    pub blob: String,
    pub extra: String,
}

#[derive(FromRow, Clone, Debug)]
pub struct PolicyRow {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    #[sqlx(rename = "data")]
    pub blob: String,
    pub extra: String,
}

#[derive(FromRow, Clone, Debug)]
pub struct RevocationRow {
    pub id: String,
    pub domain_id: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub role_id: Option<String>,
    pub audit_id: Option<String>,
    pub audit_chain_id: Option<String>,
    pub issued_before: i64,
    pub revoked_at: i64,
}

const PROJECT_COLS: &str =
    "id, name, domain_id, parent_id, description, enabled, is_domain, extra, created_at";
const USER_COLS: &str = "id, domain_id, name, enabled, password_hash, password_created_at, default_project_id, extra, created_at, last_active_at";

/// Row `id` of `table`, reading `cols`.
async fn get_by_id<T: ferro_db::Record>(
    ex: &mut impl Executor,
    cols: &str,
    table: &str,
    id: &str,
) -> Result<Option<T>, DbError> {
    ex.fetch_optional(&Sql::new(&format!("SELECT {cols} FROM {table} WHERE id = ?")).arg(id))
        .await
}

/// The rows of `table` matching the equality filters `eq`, ordered by id.
async fn list_eq<T: ferro_db::Record>(
    ex: &mut impl Executor,
    cols: &str,
    table: &str,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<T>, DbError> {
    let mut sql = Sql::new(&format!("SELECT {cols} FROM {table} WHERE 1 = 1"));
    filters(&mut sql, eq);
    sql.push(" ORDER BY id");
    ex.fetch_all(&sql).await
}

/// Equality filters appended as `AND col = ?` for each `Some`.
pub fn filters(sql: &mut Sql, pairs: &[(&str, Option<ferro_db::Value>)]) {
    for (col, v) in pairs {
        if let Some(v) = v {
            sql.push(" AND ").push(col).push(" = ").bind(v.clone());
        }
    }
}

// ---- projects and domains ----

pub async fn project_get(ex: &mut impl Executor, id: &str) -> Result<Option<ProjectRow>, DbError> {
    get_by_id(ex, PROJECT_COLS, "ks_project", id).await
}

pub async fn project_by_name(
    ex: &mut impl Executor,
    domain_id: &str,
    name: &str,
) -> Result<Option<ProjectRow>, DbError> {
    ex.fetch_optional(
        &Sql::new(&format!(
            "SELECT {PROJECT_COLS} FROM ks_project WHERE domain_id = ? AND name = ?"
        ))
        .arg(domain_id)
        .arg(name),
    )
    .await
}

/// Projects (or domains, with `is_domain`) matching the equality filters, ordered by id.
pub async fn project_list(
    ex: &mut impl Executor,
    is_domain: bool,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<ProjectRow>, DbError> {
    let mut sql = Sql::new(&format!(
        "SELECT {PROJECT_COLS} FROM ks_project WHERE is_domain = ?"
    ))
    .arg(is_domain);
    filters(&mut sql, eq);
    sql.push(" ORDER BY id");
    ex.fetch_all(&sql).await
}

pub async fn project_insert(ex: &mut impl Executor, p: &ProjectRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO ks_project ({PROJECT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&p.id)
        .arg(&p.name)
        .arg(&p.domain_id)
        .arg(p.parent_id.clone())
        .arg(p.description.clone())
        .arg(p.enabled)
        .arg(p.is_domain)
        .arg(&p.extra)
        .arg(p.created_at),
    )
    .await?;
    Ok(())
}

pub async fn project_update(ex: &mut impl Executor, p: &ProjectRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(
            "UPDATE ks_project SET name = ?, description = ?, enabled = ?, extra = ? WHERE id = ?",
        )
        .arg(&p.name)
        .arg(p.description.clone())
        .arg(p.enabled)
        .arg(&p.extra)
        .arg(&p.id),
    )
    .await?;
    Ok(())
}

pub async fn project_children(
    ex: &mut impl Executor,
    id: &str,
) -> Result<Vec<ProjectRow>, DbError> {
    ex.fetch_all(
        &Sql::new(&format!("SELECT {PROJECT_COLS} FROM ks_project WHERE parent_id = ? AND is_domain = ? ORDER BY id"))
            .arg(id)
            .arg(false),
    )
    .await
}

pub async fn project_tags(ex: &mut impl Executor, id: &str) -> Result<Vec<String>, DbError> {
    #[derive(FromRow)]
    struct Tag {
        name: String,
    }
    let rows: Vec<Tag> = ex
        .fetch_all(
            &Sql::new("SELECT name FROM ks_project_tag WHERE project_id = ? ORDER BY name").arg(id),
        )
        .await?;
    Ok(rows.into_iter().map(|t| t.name).collect())
}

/// The tags of every project in `ids`, in one query.
pub async fn project_tags_of(
    ex: &mut impl Executor,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<String>>, DbError> {
    #[derive(FromRow)]
    struct Tag {
        project_id: String,
        name: String,
    }
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    // Chunks keep the parameter count inside every engine's limit.
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new("SELECT project_id, name FROM ks_project_tag WHERE project_id IN ");
        sql.bind_list(chunk.iter().cloned()).push(" ORDER BY name");
        for t in ex.fetch_all::<Tag>(&sql).await? {
            out.entry(t.project_id).or_default().push(t.name);
        }
    }
    Ok(out)
}

pub async fn project_set_tags(
    ex: &mut impl Executor,
    id: &str,
    tags: &[String],
) -> Result<(), DbError> {
    ex.execute(&Sql::new("DELETE FROM ks_project_tag WHERE project_id = ?").arg(id))
        .await?;
    for t in tags {
        ex.execute(
            &Sql::new("INSERT INTO ks_project_tag (project_id, name) VALUES (?, ?)")
                .arg(id)
                .arg(t),
        )
        .await?;
    }
    Ok(())
}

pub async fn projects_with_tags(
    ex: &mut impl Executor,
    tags: &[String],
    all: bool,
) -> Result<Vec<String>, DbError> {
    #[derive(FromRow)]
    struct Id {
        project_id: String,
    }
    let mut sql = Sql::new("SELECT project_id FROM ks_project_tag WHERE name IN ");
    sql.bind_list(tags.iter().cloned())
        .push(" GROUP BY project_id");
    if all {
        sql.push(" HAVING COUNT(*) = ").bind(tags.len() as i64);
    }
    Ok(ex
        .fetch_all::<Id>(&sql)
        .await?
        .into_iter()
        .map(|r| r.project_id)
        .collect())
}

/// Deletes a project and what hangs off it (tags, assignments on it).
pub async fn project_delete(ex: &mut impl Executor, id: &str) -> Result<u64, DbError> {
    ex.execute(&Sql::new("DELETE FROM ks_project_tag WHERE project_id = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM ks_assignment WHERE target_id = ?").arg(id))
        .await?;
    // Keystone drops a project's limits with it; a domain's too, which upstream leaves behind.
    ex.execute(
        &Sql::new("DELETE FROM ks_limit WHERE project_id = ? OR domain_id = ?")
            .arg(id)
            .arg(id),
    )
    .await?;
    ex.execute(&Sql::new("DELETE FROM ks_project WHERE id = ?").arg(id))
        .await
}

/// Whether anything still lives in domain `id` (projects, users, groups, roles).
pub async fn domain_has_contents(ex: &mut impl Executor, id: &str) -> Result<bool, DbError> {
    #[derive(FromRow)]
    struct N {
        n: i64,
    }
    for table in ["ks_project", "ks_user", "ks_group", "ks_role"] {
        let n: Option<N> = ex
            .fetch_optional(
                &Sql::new(&format!(
                    "SELECT COUNT(*) AS n FROM {table} WHERE domain_id = ?"
                ))
                .arg(id),
            )
            .await?;
        if n.is_some_and(|n| n.n > 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

// ---- users ----

pub async fn user_get(ex: &mut impl Executor, id: &str) -> Result<Option<UserRow>, DbError> {
    get_by_id(ex, USER_COLS, "ks_user", id).await
}

pub async fn user_by_name(
    ex: &mut impl Executor,
    domain_id: &str,
    name: &str,
) -> Result<Option<UserRow>, DbError> {
    ex.fetch_optional(
        &Sql::new(&format!(
            "SELECT {USER_COLS} FROM ks_user WHERE domain_id = ? AND name = ?"
        ))
        .arg(domain_id)
        .arg(name),
    )
    .await
}

pub async fn user_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<UserRow>, DbError> {
    list_eq(ex, USER_COLS, "ks_user", eq).await
}

pub async fn user_insert(ex: &mut impl Executor, u: &UserRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO ks_user ({USER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&u.id)
        .arg(&u.domain_id)
        .arg(&u.name)
        .arg(u.enabled)
        .arg(u.password_hash.clone())
        .arg(u.password_created_at)
        .arg(u.default_project_id.clone())
        .arg(&u.extra)
        .arg(u.created_at)
        .arg(u.last_active_at),
    )
    .await?;
    Ok(())
}

pub async fn user_update(ex: &mut impl Executor, u: &UserRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(
            "UPDATE ks_user SET name = ?, enabled = ?, password_hash = ?, password_created_at = ?, \
             default_project_id = ?, extra = ? WHERE id = ?",
        )
        .arg(&u.name)
        .arg(u.enabled)
        .arg(u.password_hash.clone())
        .arg(u.password_created_at)
        .arg(u.default_project_id.clone())
        .arg(&u.extra)
        .arg(&u.id),
    )
    .await?;
    Ok(())
}

/// Deletes a user with its memberships, assignments, application credentials (and their
/// access rules), trusts and credentials.
pub async fn user_delete(ex: &mut impl Executor, id: &str) -> Result<u64, DbError> {
    ex.execute(&Sql::new("DELETE FROM ks_user_group WHERE user_id = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM ks_assignment WHERE actor_id = ?").arg(id))
        .await?;
    ex.execute(
        &Sql::new(
            "DELETE FROM ks_app_cred_access_rule WHERE app_cred_id IN (SELECT id FROM ks_app_cred WHERE user_id = ?)",
        )
        .arg(id),
    )
    .await?;
    ex.execute(&Sql::new("DELETE FROM ks_app_cred WHERE user_id = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM ks_access_rule WHERE user_id = ?").arg(id))
        .await?;
    ex.execute(
        &Sql::new("DELETE FROM ks_trust WHERE trustor_user_id = ? OR trustee_user_id = ?")
            .arg(id)
            .arg(id),
    )
    .await?;
    ex.execute(&Sql::new("DELETE FROM ks_credential WHERE user_id = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM ks_user WHERE id = ?").arg(id))
        .await
}

// ---- groups ----

pub async fn group_get(ex: &mut impl Executor, id: &str) -> Result<Option<GroupRow>, DbError> {
    get_by_id(
        ex,
        "id, domain_id, name, description, extra",
        "ks_group",
        id,
    )
    .await
}

pub async fn group_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<GroupRow>, DbError> {
    list_eq(
        ex,
        "id, domain_id, name, description, extra",
        "ks_group",
        eq,
    )
    .await
}

pub async fn group_insert(ex: &mut impl Executor, g: &GroupRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(
            "INSERT INTO ks_group (id, domain_id, name, description, extra) VALUES (?, ?, ?, ?, ?)",
        )
        .arg(&g.id)
        .arg(&g.domain_id)
        .arg(&g.name)
        .arg(g.description.clone())
        .arg(&g.extra),
    )
    .await?;
    Ok(())
}

pub async fn group_update(ex: &mut impl Executor, g: &GroupRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new("UPDATE ks_group SET name = ?, description = ?, extra = ? WHERE id = ?")
            .arg(&g.name)
            .arg(g.description.clone())
            .arg(&g.extra)
            .arg(&g.id),
    )
    .await?;
    Ok(())
}

pub async fn group_delete(ex: &mut impl Executor, id: &str) -> Result<u64, DbError> {
    ex.execute(&Sql::new("DELETE FROM ks_user_group WHERE group_id = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM ks_assignment WHERE actor_id = ?").arg(id))
        .await?;
    ex.execute(&Sql::new("DELETE FROM ks_group WHERE id = ?").arg(id))
        .await
}

pub async fn group_member_ids(
    ex: &mut impl Executor,
    group_id: &str,
) -> Result<Vec<String>, DbError> {
    #[derive(FromRow)]
    struct U {
        user_id: String,
    }
    let rows: Vec<U> = ex
        .fetch_all(
            &Sql::new("SELECT user_id FROM ks_user_group WHERE group_id = ? ORDER BY user_id")
                .arg(group_id),
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}

pub async fn user_group_ids(ex: &mut impl Executor, user_id: &str) -> Result<Vec<String>, DbError> {
    #[derive(FromRow)]
    struct G {
        group_id: String,
    }
    let rows: Vec<G> = ex
        .fetch_all(
            &Sql::new("SELECT group_id FROM ks_user_group WHERE user_id = ? ORDER BY group_id")
                .arg(user_id),
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.group_id).collect())
}

pub async fn membership_add(
    ex: &mut impl Executor,
    user_id: &str,
    group_id: &str,
) -> Result<(), DbError> {
    match ex
        .execute(
            &Sql::new("INSERT INTO ks_user_group (user_id, group_id) VALUES (?, ?)")
                .arg(user_id)
                .arg(group_id),
        )
        .await
    {
        Ok(_) | Err(DbError::Duplicate(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn membership_remove(
    ex: &mut impl Executor,
    user_id: &str,
    group_id: &str,
) -> Result<u64, DbError> {
    ex.execute(
        &Sql::new("DELETE FROM ks_user_group WHERE user_id = ? AND group_id = ?")
            .arg(user_id)
            .arg(group_id),
    )
    .await
}

// ---- roles ----

const ROLE_COLS: &str = "id, name, domain_id, description, extra";

pub async fn role_get(ex: &mut impl Executor, id: &str) -> Result<Option<RoleRow>, DbError> {
    get_by_id(ex, ROLE_COLS, "ks_role", id).await
}

pub async fn role_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<RoleRow>, DbError> {
    list_eq(ex, ROLE_COLS, "ks_role", eq).await
}

pub async fn role_insert(ex: &mut impl Executor, r: &RoleRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO ks_role ({ROLE_COLS}) VALUES (?, ?, ?, ?, ?)"
        ))
        .arg(&r.id)
        .arg(&r.name)
        .arg(&r.domain_id)
        .arg(r.description.clone())
        .arg(&r.extra),
    )
    .await?;
    Ok(())
}

pub async fn role_update(ex: &mut impl Executor, r: &RoleRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new("UPDATE ks_role SET name = ?, description = ?, extra = ? WHERE id = ?")
            .arg(&r.name)
            .arg(r.description.clone())
            .arg(&r.extra)
            .arg(&r.id),
    )
    .await?;
    Ok(())
}

pub async fn role_delete(ex: &mut impl Executor, id: &str) -> Result<u64, DbError> {
    ex.execute(&Sql::new("DELETE FROM ks_assignment WHERE role_id = ?").arg(id))
        .await?;
    ex.execute(
        &Sql::new("DELETE FROM ks_implied_role WHERE prior_role_id = ? OR implied_role_id = ?")
            .arg(id)
            .arg(id),
    )
    .await?;
    ex.execute(&Sql::new("DELETE FROM ks_role WHERE id = ?").arg(id))
        .await
}

#[derive(FromRow, Clone, Debug)]
pub struct ImpliedRow {
    pub prior_role_id: String,
    pub implied_role_id: String,
}

pub async fn implied_all(ex: &mut impl Executor) -> Result<Vec<ImpliedRow>, DbError> {
    ex.fetch_all(&Sql::new("SELECT prior_role_id, implied_role_id FROM ks_implied_role ORDER BY prior_role_id, implied_role_id"))
        .await
}

pub async fn implied_insert(
    ex: &mut impl Executor,
    prior: &str,
    implied: &str,
) -> Result<(), DbError> {
    ex.execute(
        &Sql::new("INSERT INTO ks_implied_role (prior_role_id, implied_role_id) VALUES (?, ?)")
            .arg(prior)
            .arg(implied),
    )
    .await?;
    Ok(())
}

pub async fn implied_delete(
    ex: &mut impl Executor,
    prior: &str,
    implied: &str,
) -> Result<u64, DbError> {
    ex.execute(
        &Sql::new("DELETE FROM ks_implied_role WHERE prior_role_id = ? AND implied_role_id = ?")
            .arg(prior)
            .arg(implied),
    )
    .await
}

// ---- assignments ----

pub async fn assignment_add(ex: &mut impl Executor, a: &AssignmentRow) -> Result<(), DbError> {
    let r = ex
        .execute(
            &Sql::new("INSERT INTO ks_assignment (kind, actor_id, target_id, role_id, inherited) VALUES (?, ?, ?, ?, ?)")
                .arg(&a.kind)
                .arg(&a.actor_id)
                .arg(&a.target_id)
                .arg(&a.role_id)
                .arg(a.inherited),
        )
        .await;
    match r {
        Ok(_) | Err(DbError::Duplicate(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn assignment_remove(ex: &mut impl Executor, a: &AssignmentRow) -> Result<u64, DbError> {
    ex.execute(
        &Sql::new(
            "DELETE FROM ks_assignment WHERE kind = ? AND actor_id = ? AND target_id = ? AND role_id = ? AND inherited = ?",
        )
        .arg(&a.kind)
        .arg(&a.actor_id)
        .arg(&a.target_id)
        .arg(&a.role_id)
        .arg(a.inherited),
    )
    .await
}

/// Assignments whose actor is one of `actors` (a user and their groups), or all of them
/// when `actors` is `None`.
pub async fn assignment_list(
    ex: &mut impl Executor,
    actors: Option<&[String]>,
) -> Result<Vec<AssignmentRow>, DbError> {
    let mut sql =
        Sql::new("SELECT kind, actor_id, target_id, role_id, inherited FROM ks_assignment");
    if let Some(actors) = actors {
        sql.push(" WHERE actor_id IN ")
            .bind_list(actors.iter().cloned());
    }
    sql.push(" ORDER BY kind, actor_id, target_id, role_id");
    ex.fetch_all(&sql).await
}

// ---- catalog ----

pub async fn region_get(ex: &mut impl Executor, id: &str) -> Result<Option<RegionRow>, DbError> {
    get_by_id(
        ex,
        "id, description, parent_region_id, extra",
        "ks_region",
        id,
    )
    .await
}

pub async fn region_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<RegionRow>, DbError> {
    list_eq(
        ex,
        "id, description, parent_region_id, extra",
        "ks_region",
        eq,
    )
    .await
}

pub async fn region_upsert(
    ex: &mut impl Executor,
    r: &RegionRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new(
            "INSERT INTO ks_region (description, parent_region_id, extra, id) VALUES (?, ?, ?, ?)",
        )
    } else {
        Sql::new(
            "UPDATE ks_region SET description = ?, parent_region_id = ?, extra = ? WHERE id = ?",
        )
    };
    ex.execute(
        &sql.arg(r.description.clone())
            .arg(r.parent_region_id.clone())
            .arg(&r.extra)
            .arg(&r.id),
    )
    .await?;
    Ok(())
}

pub async fn service_get(ex: &mut impl Executor, id: &str) -> Result<Option<ServiceRow>, DbError> {
    get_by_id(ex, "id, type, enabled, extra", "ks_service", id).await
}

pub async fn service_list(
    ex: &mut impl Executor,
    kind: Option<&str>,
) -> Result<Vec<ServiceRow>, DbError> {
    list_eq(
        ex,
        "id, type, enabled, extra",
        "ks_service",
        &[("type", kind.map(Into::into))],
    )
    .await
}

pub async fn service_upsert(
    ex: &mut impl Executor,
    s: &ServiceRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new("INSERT INTO ks_service (type, enabled, extra, id) VALUES (?, ?, ?, ?)")
    } else {
        Sql::new("UPDATE ks_service SET type = ?, enabled = ?, extra = ? WHERE id = ?")
    };
    ex.execute(&sql.arg(&s.kind).arg(s.enabled).arg(&s.extra).arg(&s.id))
        .await?;
    Ok(())
}

const ENDPOINT_COLS: &str = "id, service_id, interface, url, region_id, enabled, extra";

pub async fn endpoint_get(
    ex: &mut impl Executor,
    id: &str,
) -> Result<Option<EndpointRow>, DbError> {
    get_by_id(ex, ENDPOINT_COLS, "ks_endpoint", id).await
}

pub async fn endpoint_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<EndpointRow>, DbError> {
    list_eq(ex, ENDPOINT_COLS, "ks_endpoint", eq).await
}

pub async fn endpoint_upsert(
    ex: &mut impl Executor,
    e: &EndpointRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new(
            "INSERT INTO ks_endpoint (service_id, interface, url, region_id, enabled, extra, id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
    } else {
        Sql::new(
            "UPDATE ks_endpoint SET service_id = ?, interface = ?, url = ?, region_id = ?, enabled = ?, extra = ? WHERE id = ?",
        )
    };
    ex.execute(
        &sql.arg(&e.service_id)
            .arg(&e.interface)
            .arg(&e.url)
            .arg(e.region_id.clone())
            .arg(e.enabled)
            .arg(&e.extra)
            .arg(&e.id),
    )
    .await?;
    Ok(())
}

/// Deletes row `id` of a table whose key column is `id`.
pub async fn delete_by_id(
    ex: &mut impl Executor,
    table: &'static str,
    id: &str,
) -> Result<u64, DbError> {
    ex.execute(&Sql::new(&format!("DELETE FROM {table} WHERE id = ?")).arg(id))
        .await
}

// ---- application credentials, credentials, policies ----

const APP_CRED_COLS: &str = "id, name, user_id, project_id, secret_hash, description, expires_at, unrestricted, roles, created_at";

pub async fn app_cred_get(ex: &mut impl Executor, id: &str) -> Result<Option<AppCredRow>, DbError> {
    get_by_id(ex, APP_CRED_COLS, "ks_app_cred", id).await
}

pub async fn app_cred_list(
    ex: &mut impl Executor,
    user_id: &str,
    name: Option<&str>,
) -> Result<Vec<AppCredRow>, DbError> {
    let mut sql = Sql::new(&format!(
        "SELECT {APP_CRED_COLS} FROM ks_app_cred WHERE user_id = ?"
    ))
    .arg(user_id);
    filters(&mut sql, &[("name", name.map(Into::into))]);
    sql.push(" ORDER BY id");
    ex.fetch_all(&sql).await
}

pub async fn app_cred_insert(ex: &mut impl Executor, a: &AppCredRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO ks_app_cred ({APP_CRED_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&a.id)
        .arg(&a.name)
        .arg(&a.user_id)
        .arg(a.project_id.clone())
        .arg(&a.secret_hash)
        .arg(a.description.clone())
        .arg(a.expires_at)
        .arg(a.unrestricted)
        .arg(&a.roles)
        .arg(a.created_at),
    )
    .await?;
    Ok(())
}

pub async fn credential_get(
    ex: &mut impl Executor,
    id: &str,
) -> Result<Option<CredentialRow>, DbError> {
    get_by_id(
        ex,
        "id, user_id, project_id, type, data, extra",
        "ks_credential",
        id,
    )
    .await
}

pub async fn credential_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<CredentialRow>, DbError> {
    list_eq(
        ex,
        "id, user_id, project_id, type, data, extra",
        "ks_credential",
        eq,
    )
    .await
}

pub async fn credential_upsert(
    ex: &mut impl Executor,
    c: &CredentialRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new(
            "INSERT INTO ks_credential (user_id, project_id, type, data, extra, id) VALUES (?, ?, ?, ?, ?, ?)",
        )
    } else {
        Sql::new(
            "UPDATE ks_credential SET user_id = ?, project_id = ?, type = ?, data = ?, extra = ? WHERE id = ?",
        )
    };
    ex.execute(
        &sql.arg(&c.user_id)
            .arg(c.project_id.clone())
            .arg(&c.kind)
            .arg(&c.blob)
            .arg(&c.extra)
            .arg(&c.id),
    )
    .await?;
    Ok(())
}

pub async fn policy_get(ex: &mut impl Executor, id: &str) -> Result<Option<PolicyRow>, DbError> {
    get_by_id(ex, "id, type, data, extra", "ks_policy", id).await
}

pub async fn policy_list(
    ex: &mut impl Executor,
    kind: Option<&str>,
) -> Result<Vec<PolicyRow>, DbError> {
    list_eq(
        ex,
        "id, type, data, extra",
        "ks_policy",
        &[("type", kind.map(Into::into))],
    )
    .await
}

pub async fn policy_upsert(
    ex: &mut impl Executor,
    p: &PolicyRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new("INSERT INTO ks_policy (type, data, extra, id) VALUES (?, ?, ?, ?)")
    } else {
        Sql::new("UPDATE ks_policy SET type = ?, data = ?, extra = ? WHERE id = ?")
    };
    ex.execute(&sql.arg(&p.kind).arg(&p.blob).arg(&p.extra).arg(&p.id))
        .await?;
    Ok(())
}

// ---- revocation events ----

pub async fn revocation_insert(ex: &mut impl Executor, r: &RevocationRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(
            "INSERT INTO ks_revocation_event (id, domain_id, project_id, user_id, role_id, audit_id, audit_chain_id, \
             issued_before, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(&r.id)
        .arg(r.domain_id.clone())
        .arg(r.project_id.clone())
        .arg(r.user_id.clone())
        .arg(r.role_id.clone())
        .arg(r.audit_id.clone())
        .arg(r.audit_chain_id.clone())
        .arg(r.issued_before)
        .arg(r.revoked_at),
    )
    .await?;
    Ok(())
}

/// Events revoked after `since` (epoch micros), oldest first.
pub async fn revocations_since(
    ex: &mut impl Executor,
    since: i64,
) -> Result<Vec<RevocationRow>, DbError> {
    ex.fetch_all(
        &Sql::new(
            "SELECT id, domain_id, project_id, user_id, role_id, audit_id, audit_chain_id, issued_before, revoked_at \
             FROM ks_revocation_event WHERE revoked_at > ? ORDER BY revoked_at",
        )
        .arg(since),
    )
    .await
}

/// Drops events older than any token that could still be valid.
pub async fn revocations_prune(ex: &mut impl Executor, before: i64) -> Result<u64, DbError> {
    ex.execute(&Sql::new("DELETE FROM ks_revocation_event WHERE revoked_at < ?").arg(before))
        .await
}

// ---- extensions: OAuth1 consumers, endpoint groups, access rules, trusts ----

#[derive(FromRow, Clone, Debug)]
pub struct ConsumerRow {
    pub id: String,
    pub description: Option<String>,
    pub secret: String,
    pub extra: String,
}

pub async fn consumer_get(
    ex: &mut impl Executor,
    id: &str,
) -> Result<Option<ConsumerRow>, DbError> {
    get_by_id(ex, "id, description, secret, extra", "ks_consumer", id).await
}

pub async fn consumer_list(ex: &mut impl Executor) -> Result<Vec<ConsumerRow>, DbError> {
    ex.fetch_all(&Sql::new(
        "SELECT id, description, secret, extra FROM ks_consumer ORDER BY id",
    ))
    .await
}

pub async fn consumer_upsert(
    ex: &mut impl Executor,
    c: &ConsumerRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new("INSERT INTO ks_consumer (description, secret, extra, id) VALUES (?, ?, ?, ?)")
    } else {
        Sql::new("UPDATE ks_consumer SET description = ?, secret = ?, extra = ? WHERE id = ?")
    };
    ex.execute(
        &sql.arg(c.description.clone())
            .arg(&c.secret)
            .arg(&c.extra)
            .arg(&c.id),
    )
    .await?;
    Ok(())
}

#[derive(FromRow, Clone, Debug)]
pub struct EndpointGroupRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// JSON object of filters (`service_id`, `interface`, `region_id`).
    pub filters: String,
}

pub async fn endpoint_group_get(
    ex: &mut impl Executor,
    id: &str,
) -> Result<Option<EndpointGroupRow>, DbError> {
    get_by_id(
        ex,
        "id, name, description, filters",
        "ks_endpoint_group",
        id,
    )
    .await
}

pub async fn endpoint_group_list(
    ex: &mut impl Executor,
    name: Option<&str>,
) -> Result<Vec<EndpointGroupRow>, DbError> {
    list_eq(
        ex,
        "id, name, description, filters",
        "ks_endpoint_group",
        &[("name", name.map(Into::into))],
    )
    .await
}

pub async fn endpoint_group_upsert(
    ex: &mut impl Executor,
    g: &EndpointGroupRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new(
            "INSERT INTO ks_endpoint_group (name, description, filters, id) VALUES (?, ?, ?, ?)",
        )
    } else {
        Sql::new("UPDATE ks_endpoint_group SET name = ?, description = ?, filters = ? WHERE id = ?")
    };
    ex.execute(
        &sql.arg(&g.name)
            .arg(g.description.clone())
            .arg(&g.filters)
            .arg(&g.id),
    )
    .await?;
    Ok(())
}

#[derive(FromRow, Clone, Debug, PartialEq, Eq)]
pub struct AccessRuleRow {
    pub id: String,
    pub user_id: String,
    pub service: String,
    pub path: String,
    pub method: String,
}

const ACCESS_RULE_COLS: &str = "id, user_id, service, path, method";

pub async fn access_rule_list(
    ex: &mut impl Executor,
    user_id: &str,
) -> Result<Vec<AccessRuleRow>, DbError> {
    ex.fetch_all(
        &Sql::new(&format!(
            "SELECT {ACCESS_RULE_COLS} FROM ks_access_rule WHERE user_id = ? ORDER BY id"
        ))
        .arg(user_id),
    )
    .await
}

pub async fn access_rule_insert(ex: &mut impl Executor, r: &AccessRuleRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO ks_access_rule ({ACCESS_RULE_COLS}) VALUES (?, ?, ?, ?, ?)"
        ))
        .arg(&r.id)
        .arg(&r.user_id)
        .arg(&r.service)
        .arg(&r.path)
        .arg(&r.method),
    )
    .await?;
    Ok(())
}

/// The access rules of an application credential.
pub async fn app_cred_access_rules(
    ex: &mut impl Executor,
    app_cred_id: &str,
) -> Result<Vec<AccessRuleRow>, DbError> {
    ex.fetch_all(
        &Sql::new(
            "SELECT r.id, r.user_id, r.service, r.path, r.method FROM ks_access_rule r \
             JOIN ks_app_cred_access_rule l ON l.access_rule_id = r.id \
             WHERE l.app_cred_id = ? ORDER BY r.id",
        )
        .arg(app_cred_id),
    )
    .await
}

pub async fn app_cred_access_rule_link(
    ex: &mut impl Executor,
    app_cred_id: &str,
    access_rule_id: &str,
) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(
            "INSERT INTO ks_app_cred_access_rule (app_cred_id, access_rule_id) VALUES (?, ?)",
        )
        .arg(app_cred_id)
        .arg(access_rule_id),
    )
    .await?;
    Ok(())
}

/// Removes the links of a deleted application credential (the rules stay, as upstream).
pub async fn app_cred_access_rule_unlink(
    ex: &mut impl Executor,
    app_cred_id: &str,
) -> Result<u64, DbError> {
    ex.execute(
        &Sql::new("DELETE FROM ks_app_cred_access_rule WHERE app_cred_id = ?").arg(app_cred_id),
    )
    .await
}

/// How many application credentials use an access rule.
pub async fn access_rule_uses(ex: &mut impl Executor, id: &str) -> Result<usize, DbError> {
    #[derive(FromRow)]
    struct Link {
        #[allow(dead_code)]
        app_cred_id: String,
    }
    let rows: Vec<Link> = ex
        .fetch_all(
            &Sql::new("SELECT app_cred_id FROM ks_app_cred_access_rule WHERE access_rule_id = ?")
                .arg(id),
        )
        .await?;
    Ok(rows.len())
}

#[derive(FromRow, Clone, Debug)]
pub struct TrustRow {
    pub id: String,
    pub trustor_user_id: String,
    pub trustee_user_id: String,
    pub project_id: Option<String>,
    pub impersonation: bool,
    pub expires_at: Option<i64>,
    pub remaining_uses: Option<i64>,
    pub allow_redelegation: bool,
    pub redelegation_count: i64,
    pub redelegated_trust_id: Option<String>,
    /// JSON list of role ids.
    pub roles: String,
    pub extra: String,
    pub created_at: i64,
}

const TRUST_COLS: &str = "id, trustor_user_id, trustee_user_id, project_id, impersonation, expires_at, remaining_uses, allow_redelegation, redelegation_count, redelegated_trust_id, roles, extra, created_at";

pub async fn trust_get(ex: &mut impl Executor, id: &str) -> Result<Option<TrustRow>, DbError> {
    get_by_id(ex, TRUST_COLS, "ks_trust", id).await
}

pub async fn trust_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<TrustRow>, DbError> {
    list_eq(ex, TRUST_COLS, "ks_trust", eq).await
}

pub async fn trust_insert(ex: &mut impl Executor, t: &TrustRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new(&format!(
            "INSERT INTO ks_trust ({TRUST_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .arg(&t.id)
        .arg(&t.trustor_user_id)
        .arg(&t.trustee_user_id)
        .arg(t.project_id.clone())
        .arg(t.impersonation)
        .arg(t.expires_at)
        .arg(t.remaining_uses)
        .arg(t.allow_redelegation)
        .arg(t.redelegation_count)
        .arg(t.redelegated_trust_id.clone())
        .arg(&t.roles)
        .arg(&t.extra)
        .arg(t.created_at),
    )
    .await?;
    Ok(())
}

#[derive(FromRow, Clone, Debug)]
pub struct DomainConfigRow {
    pub domain_id: String,
    pub grp: String,
    pub opt: String,
    /// JSON of the value.
    pub opt_value: String,
    #[sqlx(rename = "is_sensitive")]
    pub sensitive: bool,
}

/// A domain's config options, ordered by group and option.
pub async fn domain_config_list(
    ex: &mut impl Executor,
    domain_id: &str,
) -> Result<Vec<DomainConfigRow>, DbError> {
    ex.fetch_all(
        &Sql::new(
            "SELECT domain_id, grp, opt, opt_value, is_sensitive FROM ks_domain_config \
             WHERE domain_id = ? ORDER BY grp, opt",
        )
        .arg(domain_id),
    )
    .await
}

/// Sets one option (insert or replace).
pub async fn domain_config_set(ex: &mut impl Executor, r: &DomainConfigRow) -> Result<(), DbError> {
    ex.execute(
        &Sql::new("DELETE FROM ks_domain_config WHERE domain_id = ? AND grp = ? AND opt = ?")
            .arg(&r.domain_id)
            .arg(&r.grp)
            .arg(&r.opt),
    )
    .await?;
    ex.execute(
        &Sql::new(
            "INSERT INTO ks_domain_config (domain_id, grp, opt, opt_value, is_sensitive) VALUES (?, ?, ?, ?, ?)",
        )
        .arg(&r.domain_id)
        .arg(&r.grp)
        .arg(&r.opt)
        .arg(&r.opt_value)
        .arg(r.sensitive),
    )
    .await?;
    Ok(())
}

/// Deletes a domain's options: all, one group's, or one option.
pub async fn domain_config_delete(
    ex: &mut impl Executor,
    domain_id: &str,
    group: Option<&str>,
    option: Option<&str>,
) -> Result<u64, DbError> {
    let mut sql = Sql::new("DELETE FROM ks_domain_config WHERE domain_id = ?").arg(domain_id);
    filters(
        &mut sql,
        &[
            ("grp", group.map(Into::into)),
            ("opt", option.map(Into::into)),
        ],
    );
    ex.execute(&sql).await
}

// ---- unified limits ----

/// A registered limit: a service's default for one resource. `region_id` is `""` for a
/// registration of no region (see migration 0004).
#[derive(FromRow, Clone, Debug, PartialEq, Eq)]
pub struct RegisteredLimitRow {
    pub id: String,
    pub service_id: String,
    pub region_id: String,
    pub resource_name: String,
    pub default_limit: i64,
    pub description: Option<String>,
}

/// A project or domain limit, with the service, region and resource of its registered limit.
#[derive(FromRow, Clone, Debug, PartialEq, Eq)]
pub struct LimitRow {
    pub id: String,
    pub registered_limit_id: String,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub resource_limit: i64,
    pub description: Option<String>,
    pub service_id: String,
    pub region_id: String,
    pub resource_name: String,
}

const REGISTERED_LIMIT_COLS: &str =
    "id, service_id, region_id, resource_name, default_limit, description";

const LIMIT_SELECT: &str = "SELECT l.id, l.registered_limit_id, l.project_id, l.domain_id, \
     l.resource_limit, l.description, r.service_id, r.region_id, r.resource_name \
     FROM ks_limit l JOIN ks_registered_limit r ON r.id = l.registered_limit_id WHERE 1 = 1";

pub async fn registered_limit_get(
    ex: &mut impl Executor,
    id: &str,
) -> Result<Option<RegisteredLimitRow>, DbError> {
    get_by_id(ex, REGISTERED_LIMIT_COLS, "ks_registered_limit", id).await
}

/// Registered limits matching the equality filters (`service_id`, `region_id` with `""`
/// for none, `resource_name`), ordered by id.
pub async fn registered_limit_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<RegisteredLimitRow>, DbError> {
    list_eq(ex, REGISTERED_LIMIT_COLS, "ks_registered_limit", eq).await
}

/// The registered limits of `resource_name` for every service of type `service_type`.
pub async fn service_type_registered_limits(
    ex: &mut impl Executor,
    service_type: &str,
    resource_name: &str,
) -> Result<Vec<RegisteredLimitRow>, DbError> {
    ex.fetch_all(
        &Sql::new(
            "SELECT r.id, r.service_id, r.region_id, r.resource_name, r.default_limit, r.description \
             FROM ks_registered_limit r JOIN ks_service s ON s.id = r.service_id \
             WHERE s.type = ? AND r.resource_name = ? ORDER BY r.region_id, r.id",
        )
        .arg(service_type)
        .arg(resource_name),
    )
    .await
}

pub async fn registered_limit_upsert(
    ex: &mut impl Executor,
    r: &RegisteredLimitRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new(
            "INSERT INTO ks_registered_limit (service_id, region_id, resource_name, default_limit, description, id) VALUES (?, ?, ?, ?, ?, ?)",
        )
    } else {
        Sql::new(
            "UPDATE ks_registered_limit SET service_id = ?, region_id = ?, resource_name = ?, default_limit = ?, description = ? WHERE id = ?",
        )
    };
    ex.execute(
        &sql.arg(&r.service_id)
            .arg(&r.region_id)
            .arg(&r.resource_name)
            .arg(r.default_limit)
            .arg(r.description.clone())
            .arg(&r.id),
    )
    .await?;
    Ok(())
}

/// Whether any project or domain limit refers to registered limit `id`.
pub async fn registered_limit_in_use(ex: &mut impl Executor, id: &str) -> Result<bool, DbError> {
    #[derive(FromRow)]
    struct One {
        id: String,
    }
    let hit: Option<One> = ex
        .fetch_optional(
            &Sql::new("SELECT id FROM ks_limit WHERE registered_limit_id = ? ORDER BY id LIMIT 1")
                .arg(id),
        )
        .await?;
    Ok(hit.is_some_and(|h| !h.id.is_empty()))
}

pub async fn limit_get(ex: &mut impl Executor, id: &str) -> Result<Option<LimitRow>, DbError> {
    ex.fetch_optional(&Sql::new(&format!("{LIMIT_SELECT} AND l.id = ?")).arg(id))
        .await
}

/// Limits matching the equality filters, which name columns of the limit (`l.`) or of its
/// registered limit (`r.`); ordered by id.
pub async fn limit_list(
    ex: &mut impl Executor,
    eq: &[(&str, Option<ferro_db::Value>)],
) -> Result<Vec<LimitRow>, DbError> {
    let mut sql = Sql::new(LIMIT_SELECT);
    filters(&mut sql, eq);
    sql.push(" ORDER BY l.id");
    ex.fetch_all(&sql).await
}

pub async fn limit_upsert(
    ex: &mut impl Executor,
    l: &LimitRow,
    insert: bool,
) -> Result<(), DbError> {
    let sql = if insert {
        Sql::new(
            "INSERT INTO ks_limit (registered_limit_id, project_id, domain_id, resource_limit, description, id) VALUES (?, ?, ?, ?, ?, ?)",
        )
    } else {
        Sql::new(
            "UPDATE ks_limit SET registered_limit_id = ?, project_id = ?, domain_id = ?, resource_limit = ?, description = ? WHERE id = ?",
        )
    };
    ex.execute(
        &sql.arg(&l.registered_limit_id)
            .arg(l.project_id.clone())
            .arg(l.domain_id.clone())
            .arg(l.resource_limit)
            .arg(l.description.clone())
            .arg(&l.id),
    )
    .await?;
    Ok(())
}
