//! Placement's default policy (placement/policies/*.py under the new defaults), as data.
//!
//! Nearly every API is `rule:admin_or_service_api`: placement is an operator and
//! service-to-service API. `GET /usages` also lets a project's readers see their own
//! project; `POST /reshaper` is for services only.

use std::path::Path;

use ferro_common::Result;
pub use ferro_http::policy::{allowed, authorize};
use ferro_policy::{DefaultRule, Enforcer, Scope};

const PROJECT: &[Scope] = &[Scope::Project];
const ADMIN_OR_SERVICE: &str = "rule:admin_or_service_api";

const fn rule(
    name: &'static str,
    check_str: &'static str,
    description: &'static str,
) -> DefaultRule {
    DefaultRule {
        name,
        check_str,
        scope_types: PROJECT,
        description,
    }
}

/// Placement's default rules.
pub static PLACEMENT_DEFAULTS: &[DefaultRule] = &[
    rule(
        "admin_api",
        "role:admin",
        "Default rule for most placement APIs.",
    ),
    rule(
        "service_api",
        "role:service",
        "Default rule for service-to-service placement APIs.",
    ),
    rule(
        "admin_or_service_api",
        "role:admin or role:service",
        "Default rule for most placement APIs.",
    ),
    DefaultRule {
        name: "project_reader_api",
        check_str: "role:reader and project_id:%(project_id)s",
        scope_types: &[],
        description: "Default rule for Project level reader APIs.",
    },
    rule(
        "admin_or_project_reader_or_service_api",
        "role:admin or rule:project_reader_api or role:service",
        "Default rule for project level reader APIs.",
    ),
    rule(
        "placement:resource_providers:list",
        ADMIN_OR_SERVICE,
        "List resource providers.",
    ),
    rule(
        "placement:resource_providers:create",
        ADMIN_OR_SERVICE,
        "Create resource provider.",
    ),
    rule(
        "placement:resource_providers:show",
        ADMIN_OR_SERVICE,
        "Show resource provider.",
    ),
    rule(
        "placement:resource_providers:update",
        ADMIN_OR_SERVICE,
        "Update resource provider.",
    ),
    rule(
        "placement:resource_providers:delete",
        ADMIN_OR_SERVICE,
        "Delete resource provider.",
    ),
    rule(
        "placement:resource_providers:inventories:list",
        ADMIN_OR_SERVICE,
        "List resource provider inventories.",
    ),
    rule(
        "placement:resource_providers:inventories:create",
        ADMIN_OR_SERVICE,
        "Create one resource provider inventory.",
    ),
    rule(
        "placement:resource_providers:inventories:show",
        ADMIN_OR_SERVICE,
        "Show resource provider inventory.",
    ),
    rule(
        "placement:resource_providers:inventories:update",
        ADMIN_OR_SERVICE,
        "Update resource provider inventory.",
    ),
    rule(
        "placement:resource_providers:inventories:delete",
        ADMIN_OR_SERVICE,
        "Delete resource provider inventory.",
    ),
    rule(
        "placement:resource_providers:aggregates:list",
        ADMIN_OR_SERVICE,
        "List resource provider aggregates.",
    ),
    rule(
        "placement:resource_providers:aggregates:update",
        ADMIN_OR_SERVICE,
        "Update resource provider aggregates.",
    ),
    rule(
        "placement:resource_providers:usages",
        ADMIN_OR_SERVICE,
        "List resource provider usages.",
    ),
    rule(
        "placement:resource_providers:allocations:list",
        ADMIN_OR_SERVICE,
        "List resource provider allocations.",
    ),
    rule(
        "placement:resource_providers:traits:list",
        ADMIN_OR_SERVICE,
        "List resource provider traits.",
    ),
    rule(
        "placement:resource_providers:traits:update",
        ADMIN_OR_SERVICE,
        "Update resource provider traits.",
    ),
    rule(
        "placement:resource_providers:traits:delete",
        ADMIN_OR_SERVICE,
        "Delete resource provider traits.",
    ),
    rule(
        "placement:resource_classes:list",
        ADMIN_OR_SERVICE,
        "List resource classes.",
    ),
    rule(
        "placement:resource_classes:create",
        ADMIN_OR_SERVICE,
        "Create resource class.",
    ),
    rule(
        "placement:resource_classes:show",
        ADMIN_OR_SERVICE,
        "Show resource class.",
    ),
    rule(
        "placement:resource_classes:update",
        ADMIN_OR_SERVICE,
        "Update resource class.",
    ),
    rule(
        "placement:resource_classes:delete",
        ADMIN_OR_SERVICE,
        "Delete resource class.",
    ),
    rule("placement:traits:list", ADMIN_OR_SERVICE, "List traits."),
    rule("placement:traits:show", ADMIN_OR_SERVICE, "Show trait."),
    rule("placement:traits:update", ADMIN_OR_SERVICE, "Update trait."),
    rule("placement:traits:delete", ADMIN_OR_SERVICE, "Delete trait."),
    rule(
        "placement:allocations:manage",
        ADMIN_OR_SERVICE,
        "Manage allocations.",
    ),
    rule(
        "placement:allocations:list",
        ADMIN_OR_SERVICE,
        "List allocations.",
    ),
    rule(
        "placement:allocations:update",
        ADMIN_OR_SERVICE,
        "Update allocations.",
    ),
    rule(
        "placement:allocations:delete",
        ADMIN_OR_SERVICE,
        "Delete allocations.",
    ),
    rule(
        "placement:allocation_candidates:list",
        ADMIN_OR_SERVICE,
        "List allocation candidates.",
    ),
    rule(
        "placement:usages",
        "rule:admin_or_project_reader_or_service_api",
        "List total resource usages for a given project.",
    ),
    rule(
        "placement:reshaper:reshape",
        "rule:service_api",
        "Reshape Inventory and Allocations.",
    ),
];

/// The enforcer with placement's defaults and the operator's overrides.
pub fn enforcer(policy_file: Option<&Path>) -> Result<Enforcer> {
    ferro_http::policy::enforcer(PLACEMENT_DEFAULTS, policy_file)
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
    fn admins_and_services_manage_members_do_not() {
        let e = enforcer(None).unwrap();
        let t = json!({"project_id": "p"});
        let rule = "placement:resource_providers:create";
        assert!(allowed(&e, &ctx("p", &["admin"]), rule, &t));
        assert!(allowed(&e, &ctx("svc", &["service"]), rule, &t));
        assert!(!allowed(&e, &ctx("p", &["member", "reader"]), rule, &t));
        assert!(allowed(
            &e,
            &ctx("p", &["service"]),
            "placement:reshaper:reshape",
            &json!({})
        ));
        assert!(!allowed(
            &e,
            &ctx("p", &["admin"]),
            "placement:reshaper:reshape",
            &t
        ));
    }

    #[test]
    fn readers_see_their_own_project_usages_only() {
        let e = enforcer(None).unwrap();
        let r = ctx("p", &["reader"]);
        assert!(allowed(
            &e,
            &r,
            "placement:usages",
            &json!({"project_id": "p"})
        ));
        assert!(!allowed(
            &e,
            &r,
            "placement:usages",
            &json!({"project_id": "q"})
        ));
    }
}
