//! Glance's default policy (glance/policies/base.py and image.py, secure RBAC), as data,
//! and the check every handler makes.
//!
//! Tag changes are governed by `modify_image`, as upstream's image_tags controller does.

use std::path::Path;

use ferro_common::Result;
pub use ferro_http::policy::{allowed, authorize};
use ferro_policy::{DefaultRule, Enforcer, Scope};

const PROJECT: &[Scope] = &[Scope::Project];

macro_rules! admin_or {
    ($rest:expr) => {
        concat!("rule:context_is_admin or (", $rest, ")")
    };
}

/// `role:member and project_id:%(project_id)s`.
macro_rules! project_member {
    () => {
        "role:member and project_id:%(project_id)s"
    };
}

/// Any of: the owner's project, an image member, or a community/public/shared image.
macro_rules! visible_image {
    () => {
        "project_id:%(project_id)s or project_id:%(member_id)s or \
         'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s"
    };
}

/// `rule:context_is_admin or role:reader and (project_id:%(project_id)s or
/// project_id:%(member_id)s)` (no parentheses round the `and`, exactly as upstream writes it).
const ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER: &str = "rule:context_is_admin or role:reader and \
    (project_id:%(project_id)s or project_id:%(member_id)s)";

/// Glance's default rules.
pub static GLANCE_DEFAULTS: &[DefaultRule] = &[
    DefaultRule {
        name: "default",
        check_str: "",
        scope_types: &[],
        description: "Defines the default rule used for policies that historically had an empty policy in the supplied policy.json file.",
    },
    DefaultRule {
        name: "context_is_admin",
        check_str: "role:admin",
        scope_types: &[],
        description: "Defines the rule for the is_admin:True check.",
    },
    DefaultRule {
        name: "service_api",
        check_str: "role:service or role:admin",
        scope_types: &[],
        description: "Default rule for the service-to-service API.",
    },
    DefaultRule {
        name: "add_image",
        check_str: admin_or!(concat!(project_member!(), " and project_id:%(owner)s")),
        scope_types: PROJECT,
        description: "Create new image",
    },
    DefaultRule {
        name: "delete_image",
        check_str: admin_or!(project_member!()),
        scope_types: PROJECT,
        description: "Deletes the image",
    },
    DefaultRule {
        name: "get_image",
        check_str: admin_or!(concat!("role:reader and (", visible_image!(), ")")),
        scope_types: PROJECT,
        description: "Get specified image",
    },
    DefaultRule {
        name: "get_images",
        check_str: admin_or!("role:reader and project_id:%(project_id)s"),
        scope_types: PROJECT,
        description: "Get all available images",
    },
    DefaultRule {
        name: "modify_image",
        check_str: admin_or!(project_member!()),
        scope_types: PROJECT,
        description: "Updates given image",
    },
    DefaultRule {
        name: "publicize_image",
        check_str: "rule:context_is_admin",
        scope_types: PROJECT,
        description: "Publicize given image",
    },
    DefaultRule {
        name: "communitize_image",
        check_str: admin_or!(project_member!()),
        scope_types: PROJECT,
        description: "Communitize given image",
    },
    DefaultRule {
        name: "download_image",
        check_str: admin_or!(concat!("role:member and (", visible_image!(), ")")),
        scope_types: PROJECT,
        description: "Downloads given image",
    },
    DefaultRule {
        name: "upload_image",
        check_str: admin_or!(project_member!()),
        scope_types: PROJECT,
        description: "Uploads data to specified image",
    },
    DefaultRule {
        name: "tasks_api_access",
        check_str: "role:admin",
        scope_types: &[],
        description: "Access the tasks API (admins only)",
    },
    DefaultRule {
        name: "get_task",
        check_str: "rule:default",
        scope_types: PROJECT,
        description: "Get an image task",
    },
    DefaultRule {
        name: "get_tasks",
        check_str: "rule:default",
        scope_types: PROJECT,
        description: "List image tasks",
    },
    DefaultRule {
        name: "add_task",
        check_str: "rule:default",
        scope_types: PROJECT,
        description: "Create an image task",
    },
    DefaultRule {
        name: "modify_task",
        check_str: "rule:default",
        scope_types: PROJECT,
        description: "Modify an image task",
    },
    DefaultRule {
        name: "add_member",
        check_str: admin_or!(project_member!()),
        scope_types: PROJECT,
        description: "Create image member",
    },
    DefaultRule {
        name: "delete_member",
        check_str: admin_or!(project_member!()),
        scope_types: PROJECT,
        description: "Delete image member",
    },
    DefaultRule {
        name: "get_member",
        check_str: ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER,
        scope_types: PROJECT,
        description: "Show image member details",
    },
    DefaultRule {
        name: "get_members",
        check_str: ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER,
        scope_types: PROJECT,
        description: "List image members",
    },
    DefaultRule {
        name: "modify_member",
        check_str: "rule:context_is_admin or (role:member and project_id:%(member_id)s)",
        scope_types: PROJECT,
        description: "Update image member",
    },
    DefaultRule {
        name: "deactivate",
        check_str: admin_or!(project_member!()),
        scope_types: PROJECT,
        description: "Deactivate image",
    },
    DefaultRule {
        name: "reactivate",
        check_str: admin_or!(project_member!()),
        scope_types: PROJECT,
        description: "Reactivate image",
    },
];

/// The enforcer with Glance's defaults and the operator's overrides.
pub fn enforcer(policy_file: Option<&Path>) -> Result<Enforcer> {
    ferro_http::policy::enforcer(GLANCE_DEFAULTS, policy_file)
}

#[cfg(test)]
mod tests {
    use ferro_common::RequestContext;
    use serde_json::json;

    use super::*;

    fn ctx(project: &str, roles: &[&str]) -> RequestContext {
        RequestContext {
            user_id: "u".into(),
            project_id: Some(project.into()),
            roles: roles
                .iter()
                .map(|r| (r.to_string(), r.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_parse() {
        let e = enforcer(None).unwrap();
        assert!(e.invalid_rules().is_empty(), "{:?}", e.invalid_rules());
    }

    #[test]
    fn members_modify_their_own_images_readers_only_look() {
        let e = enforcer(None).unwrap();
        let own =
            json!({"project_id": "p", "owner": "p", "visibility": "private", "member_id": ""});
        assert!(allowed(
            &e,
            &ctx("p", &["member", "reader"]),
            "modify_image",
            &own
        ));
        assert!(!allowed(&e, &ctx("p", &["reader"]), "modify_image", &own));
        assert!(allowed(&e, &ctx("p", &["reader"]), "get_image", &own));
        assert!(!allowed(
            &e,
            &ctx("q", &["member", "reader"]),
            "get_image",
            &own
        ));
        assert!(!allowed(&e, &ctx("q", &["member"]), "modify_image", &own));
        let public =
            json!({"project_id": "p", "owner": "p", "visibility": "public", "member_id": ""});
        assert!(allowed(&e, &ctx("q", &["reader"]), "get_image", &public));
        assert!(allowed(
            &e,
            &ctx("q", &["admin"]),
            "publicize_image",
            &public
        ));
        assert!(!allowed(
            &e,
            &ctx("p", &["member"]),
            "publicize_image",
            &public
        ));
    }

    #[test]
    fn add_image_requires_owning_the_new_image() {
        let e = enforcer(None).unwrap();
        let t = json!({"project_id": "p", "owner": "q"});
        assert!(!allowed(&e, &ctx("p", &["member"]), "add_image", &t));
        let t = json!({"project_id": "p", "owner": "p"});
        assert!(allowed(&e, &ctx("p", &["member"]), "add_image", &t));
    }
}
