//! Glance's metadef default rules (glance/policies/metadef.py, secure RBAC) as data.
//!
//! Readers see public namespaces and their own project's; only `metadef_admin` (the cloud
//! admin by default) changes anything.

use ferro_policy::{DefaultRule, Scope};

const PROJECT: &[Scope] = &[Scope::Project];

/// `rule:context_is_admin or (role:reader and (project_id:%(project_id)s or
/// 'public':%(visibility)s))`: a namespace's owner project or anyone for a public one.
const READER_OR_PUBLIC: &str = "rule:context_is_admin or (role:reader and \
    (project_id:%(project_id)s or 'public':%(visibility)s))";
const PROJECT_READER: &str = "rule:context_is_admin or (role:reader and project_id:%(project_id)s)";
const ADMIN: &str = "rule:metadef_admin";

macro_rules! rule {
    ($name:literal, $check:expr, $what:literal) => {
        DefaultRule {
            name: $name,
            check_str: $check,
            scope_types: PROJECT,
            description: $what,
        }
    };
}

/// The metadef rules, registered next to the image rules.
pub static METADEF_DEFAULTS: &[DefaultRule] = &[
    DefaultRule {
        name: "metadef_default",
        check_str: "",
        scope_types: &[],
        description: "Base rule of the deprecated metadef defaults.",
    },
    DefaultRule {
        name: "metadef_admin",
        check_str: "rule:context_is_admin",
        scope_types: &[],
        description: "Who may change metadata definitions.",
    },
    rule!(
        "get_metadef_namespace",
        READER_OR_PUBLIC,
        "Show a namespace."
    ),
    rule!("get_metadef_namespaces", PROJECT_READER, "List namespaces."),
    rule!("modify_metadef_namespace", ADMIN, "Update a namespace."),
    rule!("add_metadef_namespace", ADMIN, "Create a namespace."),
    rule!("delete_metadef_namespace", ADMIN, "Delete a namespace."),
    rule!("get_metadef_object", READER_OR_PUBLIC, "Show an object."),
    rule!("get_metadef_objects", READER_OR_PUBLIC, "List objects."),
    rule!("modify_metadef_object", ADMIN, "Update an object."),
    rule!("add_metadef_object", ADMIN, "Create an object."),
    rule!("delete_metadef_object", ADMIN, "Delete an object."),
    rule!(
        "list_metadef_resource_types",
        READER_OR_PUBLIC,
        "List resource types."
    ),
    rule!(
        "get_metadef_resource_type",
        READER_OR_PUBLIC,
        "List a namespace's resource type associations."
    ),
    rule!(
        "add_metadef_resource_type_association",
        ADMIN,
        "Associate a resource type."
    ),
    rule!(
        "remove_metadef_resource_type_association",
        ADMIN,
        "Remove a resource type association."
    ),
    rule!("get_metadef_property", READER_OR_PUBLIC, "Show a property."),
    rule!(
        "get_metadef_properties",
        READER_OR_PUBLIC,
        "List properties."
    ),
    rule!("modify_metadef_property", ADMIN, "Update a property."),
    rule!("add_metadef_property", ADMIN, "Create a property."),
    rule!("remove_metadef_property", ADMIN, "Delete a property."),
    rule!("get_metadef_tag", READER_OR_PUBLIC, "Show a tag."),
    rule!("get_metadef_tags", READER_OR_PUBLIC, "List tags."),
    rule!("modify_metadef_tag", ADMIN, "Update a tag."),
    rule!("add_metadef_tag", ADMIN, "Create a tag."),
    rule!("add_metadef_tags", ADMIN, "Create tags."),
    rule!("delete_metadef_tag", ADMIN, "Delete a tag."),
    rule!("delete_metadef_tags", ADMIN, "Delete all tags."),
];

#[cfg(test)]
mod tests {
    use ferro_common::RequestContext;
    use serde_json::json;

    use super::*;
    use crate::policy::{GLANCE_DEFAULTS, allowed};

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
    fn readers_see_public_and_their_own_admins_change() {
        let rules: Vec<DefaultRule> = GLANCE_DEFAULTS
            .iter()
            .chain(METADEF_DEFAULTS)
            .copied()
            .collect();
        let e = ferro_policy::Enforcer::new(&rules);
        assert!(e.invalid_rules().is_empty(), "{:?}", e.invalid_rules());
        let private = json!({"project_id": "p", "visibility": "private"});
        let public = json!({"project_id": "p", "visibility": "public"});
        let reader = ctx("q", &["reader"]);
        assert!(!allowed(&e, &reader, "get_metadef_namespace", &private));
        assert!(allowed(&e, &reader, "get_metadef_namespace", &public));
        assert!(allowed(
            &e,
            &ctx("p", &["reader"]),
            "get_metadef_namespace",
            &private
        ));
        let member = ctx("p", &["member", "reader"]);
        assert!(!allowed(&e, &member, "add_metadef_object", &private));
        assert!(allowed(
            &e,
            &ctx("q", &["admin"]),
            "add_metadef_object",
            &private
        ));
    }
}
