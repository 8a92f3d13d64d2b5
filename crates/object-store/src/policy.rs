//! Who may do what, as Swift's `keystoneauth` middleware decides: the account
//! `AUTH_<project_id>` belongs to users holding an operator role on that project; the
//! reseller admin role may act on every account; everyone else needs a container ACL.

use ferro_common::RequestContext;

use crate::ObjectStoreConfig;
use crate::model::{SwiftError, SwiftResult};

/// The account prefix of Keystone projects (`reseller_prefix`).
pub const RESELLER_PREFIX: &str = "AUTH_";

/// What the request wants to do, for the ACL check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Read an object (GET/HEAD).
    ReadObject,
    /// List a container (GET/HEAD on the container).
    ListContainer,
    /// Write, post or delete an object.
    WriteObject,
    /// Anything on the account, or creating, changing or deleting a container.
    Manage,
}

/// Whether the caller owns `account` (operator role on its project, or reseller admin).
pub fn is_owner(config: &ObjectStoreConfig, ctx: Option<&RequestContext>, account: &str) -> bool {
    let Some(ctx) = ctx else { return false };
    if ctx.role_names().any(|r| r == config.reseller_admin_role) {
        return true;
    }
    let Some(project) = account.strip_prefix(RESELLER_PREFIX) else {
        return false;
    };
    ctx.project_id.as_deref() == Some(project)
        && ctx.role_names().any(|r| {
            config
                .operator_roles
                .iter()
                .any(|o| o.eq_ignore_ascii_case(r))
        })
}

/// Whether one ACL (`X-Container-Read` or `-Write`) grants the caller, given `want`.
/// Entries: `.r:*` (any referrer: anonymous reads), `.rlistings` (anonymous listings too),
/// `<project>:<user>` with `*` wildcards (ids or the user's name), or a role name.
// TODO-compat: `.r:<domain>` referrer matching and project names are not supported.
fn acl_grants(acl: &str, ctx: Option<&RequestContext>, want: Want) -> bool {
    let entries: Vec<&str> = acl
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let referrer_any = entries
        .iter()
        .any(|e| matches!(*e, ".r:*" | ".referrer:*" | ".r:*.*"));
    match want {
        Want::ReadObject if referrer_any => return true,
        Want::ListContainer if referrer_any && entries.contains(&".rlistings") => return true,
        _ => {}
    }
    let Some(ctx) = ctx else { return false };
    entries.iter().any(|e| {
        if let Some((p, u)) = e.split_once(':') {
            if p.starts_with('.') {
                return false;
            }
            let project_ok = p == "*" || ctx.project_id.as_deref() == Some(p);
            let user_ok = u == "*" || u == ctx.user_id || u == ctx.user_name;
            project_ok && user_ok
        } else {
            ctx.role_names().any(|r| r == *e)
        }
    })
}

/// Allows or refuses: 401 without a token, 403 with one.
pub fn authorize(
    config: &ObjectStoreConfig,
    ctx: Option<&RequestContext>,
    account: &str,
    want: Want,
    read_acl: Option<&str>,
    write_acl: Option<&str>,
) -> SwiftResult<()> {
    if is_owner(config, ctx, account) {
        return Ok(());
    }
    let granted = match want {
        Want::ReadObject | Want::ListContainer => {
            read_acl.is_some_and(|a| acl_grants(a, ctx, want))
        }
        Want::WriteObject => write_acl.is_some_and(|a| acl_grants(a, ctx, want)),
        Want::Manage => false,
    };
    match (granted, ctx) {
        (true, _) => Ok(()),
        (false, None) => Err(SwiftError::status(401)),
        (false, Some(_)) => Err(SwiftError::status(403)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(project: &str, roles: &[&str]) -> RequestContext {
        RequestContext {
            user_id: "u1".into(),
            user_name: "alice".into(),
            project_id: Some(project.into()),
            roles: roles
                .iter()
                .map(|r| (r.to_string(), r.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn owners_acls_and_anonymous_readers() {
        let c = ObjectStoreConfig::new(std::path::Path::new("/tmp"), "http://x");
        let member = ctx("p1", &["member", "reader"]);
        assert!(authorize(&c, Some(&member), "AUTH_p1", Want::Manage, None, None).is_ok());
        let reader = ctx("p1", &["reader"]);
        let e = authorize(&c, Some(&reader), "AUTH_p1", Want::Manage, None, None).unwrap_err();
        assert_eq!(e.status, 403);
        let other = ctx("p2", &["member"]);
        assert_eq!(
            authorize(&c, Some(&other), "AUTH_p1", Want::ReadObject, None, None)
                .unwrap_err()
                .status,
            403
        );
        assert!(
            authorize(
                &c,
                Some(&other),
                "AUTH_p1",
                Want::ReadObject,
                Some("p2:*"),
                None
            )
            .is_ok()
        );
        assert!(
            authorize(
                &c,
                Some(&other),
                "AUTH_p1",
                Want::WriteObject,
                None,
                Some("*:alice")
            )
            .is_ok()
        );
        assert_eq!(
            authorize(&c, None, "AUTH_p1", Want::ReadObject, None, None)
                .unwrap_err()
                .status,
            401
        );
        assert!(authorize(&c, None, "AUTH_p1", Want::ReadObject, Some(".r:*"), None).is_ok());
        assert!(authorize(&c, None, "AUTH_p1", Want::ListContainer, Some(".r:*"), None).is_err());
        assert!(
            authorize(
                &c,
                None,
                "AUTH_p1",
                Want::ListContainer,
                Some(".r:*,.rlistings"),
                None
            )
            .is_ok()
        );
        let reseller = ctx("p9", &["ResellerAdmin"]);
        assert!(authorize(&c, Some(&reseller), "AUTH_p1", Want::Manage, None, None).is_ok());
    }
}
