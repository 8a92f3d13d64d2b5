//! Keystone's default policy rules, transcribed as data from upstream
//! `keystone/common/policies/*.py` (base rules from `base.py`, then one block per
//! module in the order `keystone.common.policies.list_rules()` chains them).
//!
//! These are the secure-RBAC defaults of the Keystone master branch that becomes
//! 30.0.0 (after 2026.1 / 29.0.0): with `enforce_new_defaults = True` the
//! `deprecated_rule` alternatives are never OR'd in, so only the new check strings
//! are listed. Each block names its upstream module; the comment above a rule lists
//! the API operations upstream documents for it. Upstream `base.py` rules carry no
//! description; theirs here are written for this crate.

use crate::{DefaultRule, Scope};

/// `scope_types=None`: usable with any token scope.
const UNSCOPED: &[Scope] = &[];
/// `scope_types=['project']`.
const PROJECT: &[Scope] = &[Scope::Project];
/// `scope_types=['system', 'project']`.
const SYSTEM_PROJECT: &[Scope] = &[Scope::System, Scope::Project];
/// `scope_types=['system', 'domain', 'project']`.
const ALL_SCOPES: &[Scope] = &[Scope::System, Scope::Domain, Scope::Project];

/// Keystone's registered default rules (`keystone.common.policies.list_rules()`).
pub fn keystone_defaults() -> &'static [DefaultRule] {
    KEYSTONE_DEFAULTS
}

static KEYSTONE_DEFAULTS: &[DefaultRule] = &[
    // ---- keystone/common/policies/base.py ----
    DefaultRule {
        name: "admin_required",
        check_str: "role:admin or is_admin:1",
        scope_types: UNSCOPED,
        description: "Base rule: caller holds the admin role (or the legacy is_admin flag).",
    },
    DefaultRule {
        name: "service_role",
        check_str: "role:service",
        scope_types: UNSCOPED,
        description: "Base rule: caller holds the service role.",
    },
    DefaultRule {
        name: "service_or_admin",
        check_str: "rule:admin_required or rule:service_role",
        scope_types: UNSCOPED,
        description: "Base rule: caller is an admin or a service user.",
    },
    DefaultRule {
        name: "owner",
        check_str: "user_id:%(user_id)s",
        scope_types: UNSCOPED,
        description: "Base rule: caller is the user named by the user_id in the request path.",
    },
    DefaultRule {
        name: "admin_or_owner",
        check_str: "rule:admin_required or rule:owner",
        scope_types: UNSCOPED,
        description: "Base rule: caller is an admin or the owner.",
    },
    DefaultRule {
        name: "token_subject",
        check_str: "user_id:%(target.token.user_id)s",
        scope_types: UNSCOPED,
        description: "Base rule: caller is the user the subject token (X-Subject-Token) was issued to.",
    },
    DefaultRule {
        name: "admin_or_token_subject",
        check_str: "rule:admin_required or rule:token_subject",
        scope_types: UNSCOPED,
        description: "Base rule: caller is an admin or the subject of the token.",
    },
    DefaultRule {
        name: "service_admin_or_token_subject",
        check_str: "rule:service_or_admin or rule:token_subject",
        scope_types: UNSCOPED,
        description: "Base rule: caller is an admin, a service user or the subject of the token.",
    },
    DefaultRule {
        name: "domain_managed_target_role",
        check_str: "'manager':%(target.role.name)s or 'member':%(target.role.name)s or 'reader':%(target.role.name)s",
        scope_types: UNSCOPED,
        description: "Base rule: the roles a domain manager may assign or revoke (manager, member, reader).",
    },
    // ---- keystone/common/policies/access_rule.py ----
    // GET /v3/users/{user_id}/access_rules/{access_rule_id}
    // HEAD /v3/users/{user_id}/access_rules/{access_rule_id}
    DefaultRule {
        name: "identity:get_access_rule",
        check_str: "(role:reader and system_scope:all) or user_id:%(target.user.id)s",
        scope_types: SYSTEM_PROJECT,
        description: "Show access rule details.",
    },
    // GET /v3/users/{user_id}/access_rules
    // HEAD /v3/users/{user_id}/access_rules
    DefaultRule {
        name: "identity:list_access_rules",
        check_str: "(role:reader and system_scope:all) or user_id:%(target.user.id)s",
        scope_types: SYSTEM_PROJECT,
        description: "List access rules for a user.",
    },
    // DELETE /v3/users/{user_id}/access_rules/{access_rule_id}
    DefaultRule {
        name: "identity:delete_access_rule",
        check_str: "(role:admin and system_scope:all) or user_id:%(target.user.id)s",
        scope_types: SYSTEM_PROJECT,
        description: "Delete an access_rule.",
    },
    // ---- keystone/common/policies/access_token.py ----
    // PUT /v3/OS-OAUTH1/authorize/{request_token_id}
    DefaultRule {
        name: "identity:authorize_request_token",
        check_str: "rule:admin_required",
        scope_types: PROJECT,
        description: "Authorize OAUTH1 request token.",
    },
    // GET /v3/users/{user_id}/OS-OAUTH1/access_tokens/{access_token_id}
    DefaultRule {
        name: "identity:get_access_token",
        check_str: "rule:admin_required",
        scope_types: PROJECT,
        description: "Get OAUTH1 access token for user by access token ID.",
    },
    // GET /v3/users/{user_id}/OS-OAUTH1/access_tokens/{access_token_id}/roles/{role_id}
    DefaultRule {
        name: "identity:get_access_token_role",
        check_str: "rule:admin_required",
        scope_types: PROJECT,
        description: "Get role for user OAUTH1 access token.",
    },
    // GET /v3/users/{user_id}/OS-OAUTH1/access_tokens
    DefaultRule {
        name: "identity:list_access_tokens",
        check_str: "rule:admin_required",
        scope_types: PROJECT,
        description: "List OAUTH1 access tokens for user.",
    },
    // GET /v3/users/{user_id}/OS-OAUTH1/access_tokens/{access_token_id}/roles
    DefaultRule {
        name: "identity:list_access_token_roles",
        check_str: "rule:admin_required",
        scope_types: PROJECT,
        description: "List OAUTH1 access token roles.",
    },
    // DELETE /v3/users/{user_id}/OS-OAUTH1/access_tokens/{access_token_id}
    DefaultRule {
        name: "identity:delete_access_token",
        check_str: "rule:admin_required",
        scope_types: PROJECT,
        description: "Delete OAUTH1 access token.",
    },
    // ---- keystone/common/policies/application_credential.py ----
    // GET /v3/users/{user_id}/application_credentials/{application_credential_id}
    // HEAD /v3/users/{user_id}/application_credentials/{application_credential_id}
    DefaultRule {
        name: "identity:get_application_credential",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or rule:owner",
        scope_types: SYSTEM_PROJECT,
        description: "Show application credential details.",
    },
    // GET /v3/users/{user_id}/application_credentials
    // HEAD /v3/users/{user_id}/application_credentials
    DefaultRule {
        name: "identity:list_application_credentials",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or rule:owner",
        scope_types: SYSTEM_PROJECT,
        description: "List application credentials for a user.",
    },
    // POST /v3/users/{user_id}/application_credentials
    DefaultRule {
        name: "identity:create_application_credential",
        check_str: "user_id:%(user_id)s",
        scope_types: PROJECT,
        description: "Create an application credential.",
    },
    // DELETE /v3/users/{user_id}/application_credentials/{application_credential_id}
    DefaultRule {
        name: "identity:delete_application_credential",
        check_str: "rule:admin_or_owner",
        scope_types: SYSTEM_PROJECT,
        description: "Delete an application credential.",
    },
    // ---- keystone/common/policies/auth.py ----
    // GET /v3/auth/catalog
    // HEAD /v3/auth/catalog
    DefaultRule {
        name: "identity:get_auth_catalog",
        check_str: "",
        scope_types: UNSCOPED,
        description: "Get service catalog.",
    },
    // GET /v3/auth/projects
    // HEAD /v3/auth/projects
    DefaultRule {
        name: "identity:get_auth_projects",
        check_str: "",
        scope_types: UNSCOPED,
        description: "List all projects a user has access to via role assignments.",
    },
    // GET /v3/auth/domains
    // HEAD /v3/auth/domains
    DefaultRule {
        name: "identity:get_auth_domains",
        check_str: "",
        scope_types: UNSCOPED,
        description: "List all domains a user has access to via role assignments.",
    },
    // GET /v3/auth/system
    // HEAD /v3/auth/system
    DefaultRule {
        name: "identity:get_auth_system",
        check_str: "",
        scope_types: UNSCOPED,
        description: "List systems a user has access to via role assignments.",
    },
    // ---- keystone/common/policies/consumer.py ----
    // GET /v3/OS-OAUTH1/consumers/{consumer_id}
    DefaultRule {
        name: "identity:get_consumer",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Show OAUTH1 consumer details.",
    },
    // GET /v3/OS-OAUTH1/consumers
    DefaultRule {
        name: "identity:list_consumers",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List OAUTH1 consumers.",
    },
    // POST /v3/OS-OAUTH1/consumers
    DefaultRule {
        name: "identity:create_consumer",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create OAUTH1 consumer.",
    },
    // PATCH /v3/OS-OAUTH1/consumers/{consumer_id}
    DefaultRule {
        name: "identity:update_consumer",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update OAUTH1 consumer.",
    },
    // DELETE /v3/OS-OAUTH1/consumers/{consumer_id}
    DefaultRule {
        name: "identity:delete_consumer",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete OAUTH1 consumer.",
    },
    // ---- keystone/common/policies/credential.py ----
    // GET /v3/credentials/{credential_id}
    DefaultRule {
        name: "identity:get_credential",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or user_id:%(target.credential.user_id)s",
        scope_types: ALL_SCOPES,
        description: "Show credentials details.",
    },
    // GET /v3/credentials
    DefaultRule {
        name: "identity:list_credentials",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or user_id:%(target.credential.user_id)s",
        scope_types: ALL_SCOPES,
        description: "List credentials.",
    },
    // POST /v3/credentials
    DefaultRule {
        name: "identity:create_credential",
        check_str: "(rule:admin_required) or user_id:%(target.credential.user_id)s",
        scope_types: ALL_SCOPES,
        description: "Create credential.",
    },
    // PATCH /v3/credentials/{credential_id}
    DefaultRule {
        name: "identity:update_credential",
        check_str: "(rule:admin_required) or user_id:%(target.credential.user_id)s",
        scope_types: ALL_SCOPES,
        description: "Update credential.",
    },
    // DELETE /v3/credentials/{credential_id}
    DefaultRule {
        name: "identity:delete_credential",
        check_str: "(rule:admin_required) or user_id:%(target.credential.user_id)s",
        scope_types: ALL_SCOPES,
        description: "Delete credential.",
    },
    // ---- keystone/common/policies/domain.py ----
    // GET /v3/domains/{domain_id}
    DefaultRule {
        name: "identity:get_domain",
        check_str: "rule:admin_required or (role:reader and system_scope:all) or token.domain.id:%(target.domain.id)s or token.project.domain.id:%(target.domain.id)s",
        scope_types: ALL_SCOPES,
        description: "Show domain details.",
    },
    // GET /v3/domains
    DefaultRule {
        name: "identity:list_domains",
        check_str: "rule:admin_required or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain.id)s)",
        scope_types: ALL_SCOPES,
        description: "List domains.",
    },
    // POST /v3/domains
    DefaultRule {
        name: "identity:create_domain",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create domain.",
    },
    // PATCH /v3/domains/{domain_id}
    DefaultRule {
        name: "identity:update_domain",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update domain.",
    },
    // DELETE /v3/domains/{domain_id}
    DefaultRule {
        name: "identity:delete_domain",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete domain.",
    },
    // ---- keystone/common/policies/domain_config.py ----
    // PUT /v3/domains/{domain_id}/config
    DefaultRule {
        name: "identity:create_domain_config",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create domain configuration.",
    },
    // GET /v3/domains/{domain_id}/config
    // HEAD /v3/domains/{domain_id}/config
    // GET /v3/domains/{domain_id}/config/{group}
    // HEAD /v3/domains/{domain_id}/config/{group}
    // GET /v3/domains/{domain_id}/config/{group}/{option}
    // HEAD /v3/domains/{domain_id}/config/{group}/{option}
    DefaultRule {
        name: "identity:get_domain_config",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get the entire domain configuration for a domain, an option group within a domain, or a specific configuration option within a group for a domain.",
    },
    // GET /v3/domains/{domain_id}/config/security_compliance
    // HEAD /v3/domains/{domain_id}/config/security_compliance
    // GET /v3/domains/{domain_id}/config/security_compliance/{option}
    // HEAD /v3/domains/{domain_id}/config/security_compliance/{option}
    DefaultRule {
        name: "identity:get_security_compliance_domain_config",
        check_str: "",
        scope_types: ALL_SCOPES,
        description: "Get security compliance domain configuration for either a domain or a specific option in a domain.",
    },
    // PATCH /v3/domains/{domain_id}/config
    // PATCH /v3/domains/{domain_id}/config/{group}
    // PATCH /v3/domains/{domain_id}/config/{group}/{option}
    DefaultRule {
        name: "identity:update_domain_config",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update domain configuration for either a domain, specific group or a specific option in a group.",
    },
    // DELETE /v3/domains/{domain_id}/config
    // DELETE /v3/domains/{domain_id}/config/{group}
    // DELETE /v3/domains/{domain_id}/config/{group}/{option}
    DefaultRule {
        name: "identity:delete_domain_config",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete domain configuration for either a domain, specific group or a specific option in a group.",
    },
    // GET /v3/domains/config/default
    // HEAD /v3/domains/config/default
    // GET /v3/domains/config/{group}/default
    // HEAD /v3/domains/config/{group}/default
    // GET /v3/domains/config/{group}/{option}/default
    // HEAD /v3/domains/config/{group}/{option}/default
    DefaultRule {
        name: "identity:get_domain_config_default",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get domain configuration default for either a domain, specific group or a specific option in a group.",
    },
    // ---- keystone/common/policies/ec2_credential.py ----
    // GET /v3/users/{user_id}/credentials/OS-EC2/{credential_id}
    DefaultRule {
        name: "identity:ec2_get_credential",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or user_id:%(target.credential.user_id)s",
        scope_types: SYSTEM_PROJECT,
        description: "Show ec2 credential details.",
    },
    // GET /v3/users/{user_id}/credentials/OS-EC2
    DefaultRule {
        name: "identity:ec2_list_credentials",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or rule:owner",
        scope_types: SYSTEM_PROJECT,
        description: "List ec2 credentials.",
    },
    // POST /v3/users/{user_id}/credentials/OS-EC2
    DefaultRule {
        name: "identity:ec2_create_credential",
        check_str: "(rule:admin_required) or (role:member and user_id:%(target.credential.user_id)s)",
        scope_types: SYSTEM_PROJECT,
        description: "Create ec2 credential.",
    },
    // DELETE /v3/users/{user_id}/credentials/OS-EC2/{credential_id}
    DefaultRule {
        name: "identity:ec2_delete_credential",
        check_str: "(rule:admin_required) or (role:member and user_id:%(target.credential.user_id)s)",
        scope_types: SYSTEM_PROJECT,
        description: "Delete ec2 credential.",
    },
    // ---- keystone/common/policies/endpoint.py ----
    // GET /v3/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:get_endpoint",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Show endpoint details.",
    },
    // GET /v3/endpoints
    DefaultRule {
        name: "identity:list_endpoints",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List endpoints.",
    },
    // POST /v3/endpoints
    DefaultRule {
        name: "identity:create_endpoint",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create endpoint.",
    },
    // PATCH /v3/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:update_endpoint",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update endpoint.",
    },
    // DELETE /v3/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:delete_endpoint",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete endpoint.",
    },
    // ---- keystone/common/policies/endpoint_group.py ----
    // POST /v3/OS-EP-FILTER/endpoint_groups
    DefaultRule {
        name: "identity:create_endpoint_group",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create endpoint group.",
    },
    // GET /v3/OS-EP-FILTER/endpoint_groups
    DefaultRule {
        name: "identity:list_endpoint_groups",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List endpoint groups.",
    },
    // GET /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}
    // HEAD /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}
    DefaultRule {
        name: "identity:get_endpoint_group",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get endpoint group.",
    },
    // PATCH /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}
    DefaultRule {
        name: "identity:update_endpoint_group",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update endpoint group.",
    },
    // DELETE /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}
    DefaultRule {
        name: "identity:delete_endpoint_group",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete endpoint group.",
    },
    // GET /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}/projects
    DefaultRule {
        name: "identity:list_projects_associated_with_endpoint_group",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List all projects associated with a specific endpoint group.",
    },
    // GET /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}/endpoints
    DefaultRule {
        name: "identity:list_endpoints_associated_with_endpoint_group",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List all endpoints associated with an endpoint group.",
    },
    // GET /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}/projects/{project_id}
    // HEAD /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}/projects/{project_id}
    DefaultRule {
        name: "identity:get_endpoint_group_in_project",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Check if an endpoint group is associated with a project.",
    },
    // GET /v3/OS-EP-FILTER/projects/{project_id}/endpoint_groups
    DefaultRule {
        name: "identity:list_endpoint_groups_for_project",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List endpoint groups associated with a specific project.",
    },
    // PUT /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}/projects/{project_id}
    DefaultRule {
        name: "identity:add_endpoint_group_to_project",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Allow a project to access an endpoint group.",
    },
    // DELETE /v3/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}/projects/{project_id}
    DefaultRule {
        name: "identity:remove_endpoint_group_from_project",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Remove endpoint group from project.",
    },
    // ---- keystone/common/policies/grant.py ----
    // HEAD /v3/projects/{project_id}/users/{user_id}/roles/{role_id}
    // GET /v3/projects/{project_id}/users/{user_id}/roles/{role_id}
    // HEAD /v3/projects/{project_id}/groups/{group_id}/roles/{role_id}
    // GET /v3/projects/{project_id}/groups/{group_id}/roles/{role_id}
    // HEAD /v3/domains/{domain_id}/users/{user_id}/roles/{role_id}
    // GET /v3/domains/{domain_id}/users/{user_id}/roles/{role_id}
    // HEAD /v3/domains/{domain_id}/groups/{group_id}/roles/{role_id}
    // GET /v3/domains/{domain_id}/groups/{group_id}/roles/{role_id}
    // HEAD /v3/OS-INHERIT/projects/{project_id}/users/{user_id}/roles/{role_id}/inherited_to_projects
    // GET /v3/OS-INHERIT/projects/{project_id}/users/{user_id}/roles/{role_id}/inherited_to_projects
    // HEAD /v3/OS-INHERIT/projects/{project_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects
    // GET /v3/OS-INHERIT/projects/{project_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects
    // HEAD /v3/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/{role_id}/inherited_to_projects
    // GET /v3/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/{role_id}/inherited_to_projects
    // HEAD /v3/OS-INHERIT/domains/{domain_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects
    // GET /v3/OS-INHERIT/domains/{domain_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects
    DefaultRule {
        name: "identity:check_grant",
        check_str: "(rule:admin_required) or ((role:reader and system_scope:all) or ((role:reader and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:reader and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and (domain_id:%(target.role.domain_id)s or None:%(target.role.domain_id)s))",
        scope_types: ALL_SCOPES,
        description: "Check a role grant between a target and an actor. A target can be either a domain or a project. An actor can be either a user or a group. These terms also apply to the OS-INHERIT APIs, where grants on the target are inherited to all projects in the subtree, if applicable.",
    },
    // GET /v3/projects/{project_id}/users/{user_id}/roles
    // HEAD /v3/projects/{project_id}/users/{user_id}/roles
    // GET /v3/projects/{project_id}/groups/{group_id}/roles
    // HEAD /v3/projects/{project_id}/groups/{group_id}/roles
    // GET /v3/domains/{domain_id}/users/{user_id}/roles
    // HEAD /v3/domains/{domain_id}/users/{user_id}/roles
    // GET /v3/domains/{domain_id}/groups/{group_id}/roles
    // HEAD /v3/domains/{domain_id}/groups/{group_id}/roles
    // GET /v3/OS-INHERIT/domains/{domain_id}/groups/{group_id}/roles/inherited_to_projects
    // GET /v3/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/inherited_to_projects
    DefaultRule {
        name: "identity:list_grants",
        check_str: "(rule:admin_required) or ((role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:reader and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s))",
        scope_types: ALL_SCOPES,
        description: "List roles granted to an actor on a target. A target can be either a domain or a project. An actor can be either a user or a group. For the OS-INHERIT APIs, it is possible to list inherited role grants for actors on domains, where grants are inherited to all projects in the specified domain.",
    },
    // PUT /v3/projects/{project_id}/users/{user_id}/roles/{role_id}
    // PUT /v3/projects/{project_id}/groups/{group_id}/roles/{role_id}
    // PUT /v3/domains/{domain_id}/users/{user_id}/roles/{role_id}
    // PUT /v3/domains/{domain_id}/groups/{group_id}/roles/{role_id}
    // PUT /v3/OS-INHERIT/projects/{project_id}/users/{user_id}/roles/{role_id}/inherited_to_projects
    // PUT /v3/OS-INHERIT/projects/{project_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects
    // PUT /v3/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/{role_id}/inherited_to_projects
    // PUT /v3/OS-INHERIT/domains/{domain_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects
    DefaultRule {
        name: "identity:create_grant",
        check_str: "(rule:admin_required) or ((role:admin and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:admin and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:admin and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:admin and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and (domain_id:%(target.role.domain_id)s or None:%(target.role.domain_id)s) or ((role:manager and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:manager and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and rule:domain_managed_target_role",
        scope_types: ALL_SCOPES,
        description: "Create a role grant between a target and an actor. A target can be either a domain or a project. An actor can be either a user or a group. These terms also apply to the OS-INHERIT APIs, where grants on the target are inherited to all projects in the subtree, if applicable.",
    },
    // DELETE /v3/projects/{project_id}/users/{user_id}/roles/{role_id}
    // DELETE /v3/projects/{project_id}/groups/{group_id}/roles/{role_id}
    // DELETE /v3/domains/{domain_id}/users/{user_id}/roles/{role_id}
    // DELETE /v3/domains/{domain_id}/groups/{group_id}/roles/{role_id}
    // DELETE /v3/OS-INHERIT/projects/{project_id}/users/{user_id}/roles/{role_id}/inherited_to_projects
    // DELETE /v3/OS-INHERIT/projects/{project_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects
    // DELETE /v3/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/{role_id}/inherited_to_projects
    // DELETE /v3/OS-INHERIT/domains/{domain_id}/groups/{group_id}/roles/{role_id}/inherited_to_projects
    DefaultRule {
        name: "identity:revoke_grant",
        check_str: "(rule:admin_required) or ((role:admin and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:admin and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:admin and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:admin and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and (domain_id:%(target.role.domain_id)s or None:%(target.role.domain_id)s) or ((role:manager and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:manager and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and rule:domain_managed_target_role",
        scope_types: ALL_SCOPES,
        description: "Revoke a role grant between a target and an actor. A target can be either a domain or a project. An actor can be either a user or a group. These terms also apply to the OS-INHERIT APIs, where grants on the target are inherited to all projects in the subtree, if applicable. In that case, revoking the role grant in the target would remove the logical effect of inheriting it to the target's projects subtree.",
    },
    // ['HEAD', 'GET'] /v3/system/users/{user_id}/roles
    DefaultRule {
        name: "identity:list_system_grants_for_user",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List all grants a specific user has on the system.",
    },
    // ['HEAD', 'GET'] /v3/system/users/{user_id}/roles/{role_id}
    DefaultRule {
        name: "identity:check_system_grant_for_user",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Check if a user has a role on the system.",
    },
    // ['PUT'] /v3/system/users/{user_id}/roles/{role_id}
    DefaultRule {
        name: "identity:create_system_grant_for_user",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Grant a user a role on the system.",
    },
    // ['DELETE'] /v3/system/users/{user_id}/roles/{role_id}
    DefaultRule {
        name: "identity:revoke_system_grant_for_user",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Remove a role from a user on the system.",
    },
    // ['HEAD', 'GET'] /v3/system/groups/{group_id}/roles
    DefaultRule {
        name: "identity:list_system_grants_for_group",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List all grants a specific group has on the system.",
    },
    // ['HEAD', 'GET'] /v3/system/groups/{group_id}/roles/{role_id}
    DefaultRule {
        name: "identity:check_system_grant_for_group",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Check if a group has a role on the system.",
    },
    // ['PUT'] /v3/system/groups/{group_id}/roles/{role_id}
    DefaultRule {
        name: "identity:create_system_grant_for_group",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Grant a group a role on the system.",
    },
    // ['DELETE'] /v3/system/groups/{group_id}/roles/{role_id}
    DefaultRule {
        name: "identity:revoke_system_grant_for_group",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Remove a role from a group on the system.",
    },
    // ---- keystone/common/policies/group.py ----
    // GET /v3/groups/{group_id}
    // HEAD /v3/groups/{group_id}
    DefaultRule {
        name: "identity:get_group",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.group.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Show group details.",
    },
    // GET /v3/groups
    // HEAD /v3/groups
    DefaultRule {
        name: "identity:list_groups",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.group.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "List groups.",
    },
    // GET /v3/users/{user_id}/groups
    // HEAD /v3/users/{user_id}/groups
    DefaultRule {
        name: "identity:list_groups_for_user",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s) or user_id:%(user_id)s",
        scope_types: ALL_SCOPES,
        description: "List groups to which a user belongs.",
    },
    // POST /v3/groups
    DefaultRule {
        name: "identity:create_group",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Create group.",
    },
    // PATCH /v3/groups/{group_id}
    DefaultRule {
        name: "identity:update_group",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Update group.",
    },
    // DELETE /v3/groups/{group_id}
    DefaultRule {
        name: "identity:delete_group",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Delete group.",
    },
    // GET /v3/groups/{group_id}/users
    // HEAD /v3/groups/{group_id}/users
    DefaultRule {
        name: "identity:list_users_in_group",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.group.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "List members of a specific group.",
    },
    // DELETE /v3/groups/{group_id}/users/{user_id}
    DefaultRule {
        name: "identity:remove_user_from_group",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.user.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Remove user from group.",
    },
    // HEAD /v3/groups/{group_id}/users/{user_id}
    // GET /v3/groups/{group_id}/users/{user_id}
    DefaultRule {
        name: "identity:check_user_in_group",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.user.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Check whether a user is a member of a group.",
    },
    // PUT /v3/groups/{group_id}/users/{user_id}
    DefaultRule {
        name: "identity:add_user_to_group",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.user.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Add user to group.",
    },
    // ---- keystone/common/policies/identity_provider.py ----
    // PUT /v3/OS-FEDERATION/identity_providers/{idp_id}
    DefaultRule {
        name: "identity:create_identity_provider",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create identity provider.",
    },
    // GET /v3/OS-FEDERATION/identity_providers
    // HEAD /v3/OS-FEDERATION/identity_providers
    DefaultRule {
        name: "identity:list_identity_providers",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List identity providers.",
    },
    // GET /v3/OS-FEDERATION/identity_providers/{idp_id}
    // HEAD /v3/OS-FEDERATION/identity_providers/{idp_id}
    DefaultRule {
        name: "identity:get_identity_provider",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get identity provider.",
    },
    // PATCH /v3/OS-FEDERATION/identity_providers/{idp_id}
    DefaultRule {
        name: "identity:update_identity_provider",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update identity provider.",
    },
    // DELETE /v3/OS-FEDERATION/identity_providers/{idp_id}
    DefaultRule {
        name: "identity:delete_identity_provider",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete identity provider.",
    },
    // ---- keystone/common/policies/implied_role.py ----
    // GET /v3/roles/{prior_role_id}/implies/{implied_role_id}
    DefaultRule {
        name: "identity:get_implied_role",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get information about an association between two roles. When a relationship exists between a prior role and an implied role and the prior role is assigned to a user, the user also assumes the implied role.",
    },
    // GET /v3/roles/{prior_role_id}/implies
    // HEAD /v3/roles/{prior_role_id}/implies
    DefaultRule {
        name: "identity:list_implied_roles",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List associations between two roles. When a relationship exists between a prior role and an implied role and the prior role is assigned to a user, the user also assumes the implied role. This will return all the implied roles that would be assumed by the user who gets the specified prior role.",
    },
    // PUT /v3/roles/{prior_role_id}/implies/{implied_role_id}
    DefaultRule {
        name: "identity:create_implied_role",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create an association between two roles. When a relationship exists between a prior role and an implied role and the prior role is assigned to a user, the user also assumes the implied role.",
    },
    // DELETE /v3/roles/{prior_role_id}/implies/{implied_role_id}
    DefaultRule {
        name: "identity:delete_implied_role",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete the association between two roles. When a relationship exists between a prior role and an implied role and the prior role is assigned to a user, the user also assumes the implied role. Removing the association will cause that effect to be eliminated.",
    },
    // GET /v3/role_inferences
    // HEAD /v3/role_inferences
    DefaultRule {
        name: "identity:list_role_inference_rules",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List all associations between two roles in the system. When a relationship exists between a prior role and an implied role and the prior role is assigned to a user, the user also assumes the implied role.",
    },
    // HEAD /v3/roles/{prior_role_id}/implies/{implied_role_id}
    DefaultRule {
        name: "identity:check_implied_role",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Check an association between two roles. When a relationship exists between a prior role and an implied role and the prior role is assigned to a user, the user also assumes the implied role.",
    },
    // ---- keystone/common/policies/limit.py ----
    // GET /v3/limits/model
    // HEAD /v3/limits/model
    DefaultRule {
        name: "identity:get_limit_model",
        check_str: "",
        scope_types: ALL_SCOPES,
        description: "Get limit enforcement model.",
    },
    // GET /v3/limits/{limit_id}
    // HEAD /v3/limits/{limit_id}
    DefaultRule {
        name: "identity:get_limit",
        check_str: "rule:admin_required or (role:reader and system_scope:all) or (domain_id:%(target.limit.domain.id)s or domain_id:%(target.limit.project.domain_id)s) or (project_id:%(target.limit.project_id)s and not None:%(target.limit.project_id)s)",
        scope_types: ALL_SCOPES,
        description: "Show limit details.",
    },
    // GET /v3/limits
    // HEAD /v3/limits
    DefaultRule {
        name: "identity:list_limits",
        check_str: "",
        scope_types: ALL_SCOPES,
        description: "List limits.",
    },
    // POST /v3/limits
    DefaultRule {
        name: "identity:create_limits",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create limits.",
    },
    // PATCH /v3/limits/{limit_id}
    DefaultRule {
        name: "identity:update_limit",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update limit.",
    },
    // DELETE /v3/limits/{limit_id}
    DefaultRule {
        name: "identity:delete_limit",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete limit.",
    },
    // ---- keystone/common/policies/mapping.py ----
    // PUT /v3/OS-FEDERATION/mappings/{mapping_id}
    DefaultRule {
        name: "identity:create_mapping",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create a new federated mapping containing one or more sets of rules.",
    },
    // GET /v3/OS-FEDERATION/mappings/{mapping_id}
    // HEAD /v3/OS-FEDERATION/mappings/{mapping_id}
    DefaultRule {
        name: "identity:get_mapping",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get a federated mapping.",
    },
    // GET /v3/OS-FEDERATION/mappings
    // HEAD /v3/OS-FEDERATION/mappings
    DefaultRule {
        name: "identity:list_mappings",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List federated mappings.",
    },
    // DELETE /v3/OS-FEDERATION/mappings/{mapping_id}
    DefaultRule {
        name: "identity:delete_mapping",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete a federated mapping.",
    },
    // PATCH /v3/OS-FEDERATION/mappings/{mapping_id}
    DefaultRule {
        name: "identity:update_mapping",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update a federated mapping.",
    },
    // ---- keystone/common/policies/policy.py ----
    // GET /v3/policies/{policy_id}
    DefaultRule {
        name: "identity:get_policy",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Show policy details.",
    },
    // GET /v3/policies
    DefaultRule {
        name: "identity:list_policies",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List policies.",
    },
    // POST /v3/policies
    DefaultRule {
        name: "identity:create_policy",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create policy.",
    },
    // PATCH /v3/policies/{policy_id}
    DefaultRule {
        name: "identity:update_policy",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update policy.",
    },
    // DELETE /v3/policies/{policy_id}
    DefaultRule {
        name: "identity:delete_policy",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete policy.",
    },
    // ---- keystone/common/policies/policy_association.py ----
    // PUT /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:create_policy_association_for_endpoint",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Associate a policy to a specific endpoint.",
    },
    // GET /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/endpoints/{endpoint_id}
    // HEAD /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:check_policy_association_for_endpoint",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Check policy association for endpoint.",
    },
    // DELETE /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:delete_policy_association_for_endpoint",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete policy association for endpoint.",
    },
    // PUT /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/services/{service_id}
    DefaultRule {
        name: "identity:create_policy_association_for_service",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Associate a policy to a specific service.",
    },
    // GET /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/services/{service_id}
    // HEAD /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/services/{service_id}
    DefaultRule {
        name: "identity:check_policy_association_for_service",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Check policy association for service.",
    },
    // DELETE /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/services/{service_id}
    DefaultRule {
        name: "identity:delete_policy_association_for_service",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete policy association for service.",
    },
    // PUT /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/services/{service_id}/regions/{region_id}
    DefaultRule {
        name: "identity:create_policy_association_for_region_and_service",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Associate a policy to a specific region and service combination.",
    },
    // GET /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/services/{service_id}/regions/{region_id}
    // HEAD /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/services/{service_id}/regions/{region_id}
    DefaultRule {
        name: "identity:check_policy_association_for_region_and_service",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Check policy association for region and service.",
    },
    // DELETE /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/services/{service_id}/regions/{region_id}
    DefaultRule {
        name: "identity:delete_policy_association_for_region_and_service",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete policy association for region and service.",
    },
    // GET /v3/endpoints/{endpoint_id}/OS-ENDPOINT-POLICY/policy
    // HEAD /v3/endpoints/{endpoint_id}/OS-ENDPOINT-POLICY/policy
    DefaultRule {
        name: "identity:get_policy_for_endpoint",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get policy for endpoint.",
    },
    // GET /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/endpoints
    DefaultRule {
        name: "identity:list_endpoints_for_policy",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List endpoints for policy.",
    },
    // ---- keystone/common/policies/project.py ----
    // GET /v3/projects/{project_id}
    DefaultRule {
        name: "identity:get_project",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s) or project_id:%(target.project.id)s",
        scope_types: ALL_SCOPES,
        description: "Show project details.",
    },
    // GET /v3/projects
    DefaultRule {
        name: "identity:list_projects",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "List projects.",
    },
    // GET /v3/users/{user_id}/projects
    DefaultRule {
        name: "identity:list_user_projects",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s) or user_id:%(target.user.id)s",
        scope_types: ALL_SCOPES,
        description: "List projects for user.",
    },
    // POST /v3/projects
    DefaultRule {
        name: "identity:create_project",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Create project.",
    },
    // PATCH /v3/projects/{project_id}
    DefaultRule {
        name: "identity:update_project",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Update project.",
    },
    // DELETE /v3/projects/{project_id}
    DefaultRule {
        name: "identity:delete_project",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Delete project.",
    },
    // GET /v3/projects/{project_id}/tags
    // HEAD /v3/projects/{project_id}/tags
    DefaultRule {
        name: "identity:list_project_tags",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s) or project_id:%(target.project.id)s",
        scope_types: ALL_SCOPES,
        description: "List tags for a project.",
    },
    // GET /v3/projects/{project_id}/tags/{value}
    // HEAD /v3/projects/{project_id}/tags/{value}
    DefaultRule {
        name: "identity:get_project_tag",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s) or project_id:%(target.project.id)s",
        scope_types: ALL_SCOPES,
        description: "Check if project contains a tag.",
    },
    // PUT /v3/projects/{project_id}/tags
    DefaultRule {
        name: "identity:update_project_tags",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Replace all tags on a project with the new set of tags.",
    },
    // PUT /v3/projects/{project_id}/tags/{value}
    DefaultRule {
        name: "identity:create_project_tag",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Add a single tag to a project.",
    },
    // DELETE /v3/projects/{project_id}/tags
    DefaultRule {
        name: "identity:delete_project_tags",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Remove all tags from a project.",
    },
    // DELETE /v3/projects/{project_id}/tags/{value}
    DefaultRule {
        name: "identity:delete_project_tag",
        check_str: "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Delete a specified tag from project.",
    },
    // ---- keystone/common/policies/project_endpoint.py ----
    // GET /v3/OS-EP-FILTER/endpoints/{endpoint_id}/projects
    DefaultRule {
        name: "identity:list_projects_for_endpoint",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List projects allowed to access an endpoint.",
    },
    // PUT /v3/OS-EP-FILTER/projects/{project_id}/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:add_endpoint_to_project",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Allow project to access an endpoint.",
    },
    // GET /v3/OS-EP-FILTER/projects/{project_id}/endpoints/{endpoint_id}
    // HEAD /v3/OS-EP-FILTER/projects/{project_id}/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:check_endpoint_in_project",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Check if a project is allowed to access an endpoint.",
    },
    // GET /v3/OS-EP-FILTER/projects/{project_id}/endpoints
    DefaultRule {
        name: "identity:list_endpoints_for_project",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List the endpoints a project is allowed to access.",
    },
    // DELETE /v3/OS-EP-FILTER/projects/{project_id}/endpoints/{endpoint_id}
    DefaultRule {
        name: "identity:remove_endpoint_from_project",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Remove access to an endpoint from a project that has previously been given explicit access.",
    },
    // ---- keystone/common/policies/protocol.py ----
    // PUT /v3/OS-FEDERATION/identity_providers/{idp_id}/protocols/{protocol_id}
    DefaultRule {
        name: "identity:create_protocol",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create federated protocol.",
    },
    // PATCH /v3/OS-FEDERATION/identity_providers/{idp_id}/protocols/{protocol_id}
    DefaultRule {
        name: "identity:update_protocol",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update federated protocol.",
    },
    // GET /v3/OS-FEDERATION/identity_providers/{idp_id}/protocols/{protocol_id}
    DefaultRule {
        name: "identity:get_protocol",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get federated protocol.",
    },
    // GET /v3/OS-FEDERATION/identity_providers/{idp_id}/protocols
    DefaultRule {
        name: "identity:list_protocols",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List federated protocols.",
    },
    // DELETE /v3/OS-FEDERATION/identity_providers/{idp_id}/protocols/{protocol_id}
    DefaultRule {
        name: "identity:delete_protocol",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete federated protocol.",
    },
    // ---- keystone/common/policies/region.py ----
    // GET /v3/regions/{region_id}
    // HEAD /v3/regions/{region_id}
    DefaultRule {
        name: "identity:get_region",
        check_str: "",
        scope_types: ALL_SCOPES,
        description: "Show region details.",
    },
    // GET /v3/regions
    // HEAD /v3/regions
    DefaultRule {
        name: "identity:list_regions",
        check_str: "",
        scope_types: ALL_SCOPES,
        description: "List regions.",
    },
    // POST /v3/regions
    // PUT /v3/regions/{region_id}
    DefaultRule {
        name: "identity:create_region",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create region.",
    },
    // PATCH /v3/regions/{region_id}
    DefaultRule {
        name: "identity:update_region",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update region.",
    },
    // DELETE /v3/regions/{region_id}
    DefaultRule {
        name: "identity:delete_region",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete region.",
    },
    // ---- keystone/common/policies/registered_limit.py ----
    // GET /v3/registered_limits/{registered_limit_id}
    // HEAD /v3/registered_limits/{registered_limit_id}
    DefaultRule {
        name: "identity:get_registered_limit",
        check_str: "",
        scope_types: ALL_SCOPES,
        description: "Show registered limit details.",
    },
    // GET /v3/registered_limits
    // HEAD /v3/registered_limits
    DefaultRule {
        name: "identity:list_registered_limits",
        check_str: "",
        scope_types: ALL_SCOPES,
        description: "List registered limits.",
    },
    // POST /v3/registered_limits
    DefaultRule {
        name: "identity:create_registered_limits",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create registered limits.",
    },
    // PATCH /v3/registered_limits/{registered_limit_id}
    DefaultRule {
        name: "identity:update_registered_limit",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update registered limit.",
    },
    // DELETE /v3/registered_limits/{registered_limit_id}
    DefaultRule {
        name: "identity:delete_registered_limit",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete registered limit.",
    },
    // ---- keystone/common/policies/revoke_event.py ----
    // GET /v3/OS-REVOKE/events
    DefaultRule {
        name: "identity:list_revoke_events",
        check_str: "rule:service_or_admin",
        scope_types: SYSTEM_PROJECT,
        description: "List revocation events.",
    },
    // ---- keystone/common/policies/role.py ----
    // GET /v3/roles/{role_id}
    // HEAD /v3/roles/{role_id}
    DefaultRule {
        name: "identity:get_role",
        check_str: "(rule:admin_required or (role:reader and system_scope:all)) or (role:manager and rule:domain_managed_target_role)",
        scope_types: ALL_SCOPES,
        description: "Show role details.",
    },
    // GET /v3/roles
    // HEAD /v3/roles
    DefaultRule {
        name: "identity:list_roles",
        check_str: "(rule:admin_required or (role:reader and system_scope:all)) or (role:manager and not domain_id:None)",
        scope_types: ALL_SCOPES,
        description: "List roles.",
    },
    // POST /v3/roles
    DefaultRule {
        name: "identity:create_role",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create role.",
    },
    // PATCH /v3/roles/{role_id}
    DefaultRule {
        name: "identity:update_role",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update role.",
    },
    // DELETE /v3/roles/{role_id}
    DefaultRule {
        name: "identity:delete_role",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete role.",
    },
    // GET /v3/roles/{role_id}
    // HEAD /v3/roles/{role_id}
    DefaultRule {
        name: "identity:get_domain_role",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Show domain role.",
    },
    // GET /v3/roles?domain_id={domain_id}
    // HEAD /v3/roles?domain_id={domain_id}
    DefaultRule {
        name: "identity:list_domain_roles",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List domain roles.",
    },
    // POST /v3/roles
    DefaultRule {
        name: "identity:create_domain_role",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create domain role.",
    },
    // PATCH /v3/roles/{role_id}
    DefaultRule {
        name: "identity:update_domain_role",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update domain role.",
    },
    // DELETE /v3/roles/{role_id}
    DefaultRule {
        name: "identity:delete_domain_role",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete domain role.",
    },
    // ---- keystone/common/policies/role_assignment.py ----
    // GET /v3/role_assignments
    // HEAD /v3/role_assignments
    DefaultRule {
        name: "identity:list_role_assignments",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "List role assignments.",
    },
    // GET /v3/role_assignments?include_subtree
    // HEAD /v3/role_assignments?include_subtree
    DefaultRule {
        name: "identity:list_role_assignments_for_tree",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "List all role assignments for a given tree of hierarchical projects.",
    },
    // ---- keystone/common/policies/s3tokens.py ----
    // POST /v3/s3tokens
    DefaultRule {
        name: "identity:s3tokens_validate",
        check_str: "rule:service_or_admin",
        scope_types: ALL_SCOPES,
        description: "Validate S3 credentials and create a Keystone token. Restricted to service users or administrators to prevent exploitation via presigned URLs.",
    },
    // ---- keystone/common/policies/ec2tokens.py ----
    // POST /v3/ec2tokens
    DefaultRule {
        name: "identity:ec2tokens_validate",
        check_str: "rule:service_or_admin",
        scope_types: ALL_SCOPES,
        description: "Validate EC2 credentials and create a Keystone token. Restricted to service users or administrators.",
    },
    // ---- keystone/common/policies/service.py ----
    // GET /v3/services/{service_id}
    DefaultRule {
        name: "identity:get_service",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Show service details.",
    },
    // GET /v3/services
    DefaultRule {
        name: "identity:list_services",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List services.",
    },
    // POST /v3/services
    DefaultRule {
        name: "identity:create_service",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create service.",
    },
    // PATCH /v3/services/{service_id}
    DefaultRule {
        name: "identity:update_service",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update service.",
    },
    // DELETE /v3/services/{service_id}
    DefaultRule {
        name: "identity:delete_service",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete service.",
    },
    // ---- keystone/common/policies/service_provider.py ----
    // PUT /v3/OS-FEDERATION/service_providers/{service_provider_id}
    DefaultRule {
        name: "identity:create_service_provider",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Create federated service provider.",
    },
    // GET /v3/OS-FEDERATION/service_providers
    // HEAD /v3/OS-FEDERATION/service_providers
    DefaultRule {
        name: "identity:list_service_providers",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List federated service providers.",
    },
    // GET /v3/OS-FEDERATION/service_providers/{service_provider_id}
    // HEAD /v3/OS-FEDERATION/service_providers/{service_provider_id}
    DefaultRule {
        name: "identity:get_service_provider",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "Get federated service provider.",
    },
    // PATCH /v3/OS-FEDERATION/service_providers/{service_provider_id}
    DefaultRule {
        name: "identity:update_service_provider",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Update federated service provider.",
    },
    // DELETE /v3/OS-FEDERATION/service_providers/{service_provider_id}
    DefaultRule {
        name: "identity:delete_service_provider",
        check_str: "rule:admin_required",
        scope_types: SYSTEM_PROJECT,
        description: "Delete federated service provider.",
    },
    // ---- keystone/common/policies/token_revocation.py ----
    // GET /v3/auth/tokens/OS-PKI/revoked
    // Upstream marks this rule deprecated for removal; still registered.
    DefaultRule {
        name: "identity:revocation_list",
        check_str: "rule:service_or_admin",
        scope_types: SYSTEM_PROJECT,
        description: "List revoked PKI tokens.",
    },
    // ---- keystone/common/policies/token.py ----
    // HEAD /v3/auth/tokens
    DefaultRule {
        name: "identity:check_token",
        check_str: "rule:admin_required or (role:reader and system_scope:all) or rule:token_subject",
        scope_types: ALL_SCOPES,
        description: "Check a token.",
    },
    // GET /v3/auth/tokens
    DefaultRule {
        name: "identity:validate_token",
        check_str: "rule:admin_required or (role:reader and system_scope:all) or rule:service_role or rule:token_subject",
        scope_types: ALL_SCOPES,
        description: "Validate a token.",
    },
    // DELETE /v3/auth/tokens
    DefaultRule {
        name: "identity:revoke_token",
        check_str: "rule:admin_required or rule:token_subject",
        scope_types: ALL_SCOPES,
        description: "Revoke a token.",
    },
    // ---- keystone/common/policies/trust.py ----
    // POST /v3/OS-TRUST/trusts
    DefaultRule {
        name: "identity:create_trust",
        check_str: "user_id:%(target.trust.trustor_user_id)s",
        scope_types: PROJECT,
        description: "Create trust.",
    },
    // GET /v3/OS-TRUST/trusts
    // HEAD /v3/OS-TRUST/trusts
    DefaultRule {
        name: "identity:list_trusts",
        check_str: "rule:admin_required or (role:reader and system_scope:all)",
        scope_types: SYSTEM_PROJECT,
        description: "List trusts.",
    },
    // GET /v3/OS-TRUST/trusts?trustor_user_id={trustor_user_id}
    // HEAD /v3/OS-TRUST/trusts?trustor_user_id={trustor_user_id}
    DefaultRule {
        name: "identity:list_trusts_for_trustor",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustor_user_id)s)",
        scope_types: SYSTEM_PROJECT,
        description: "List trusts for trustor.",
    },
    // GET /v3/OS-TRUST/trusts?trustee_user_id={trustee_user_id}
    // HEAD /v3/OS-TRUST/trusts?trustee_user_id={trustee_user_id}
    DefaultRule {
        name: "identity:list_trusts_for_trustee",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustee_user_id)s)",
        scope_types: SYSTEM_PROJECT,
        description: "List trusts for trustee.",
    },
    // GET /v3/OS-TRUST/trusts/{trust_id}/roles
    // HEAD /v3/OS-TRUST/trusts/{trust_id}/roles
    DefaultRule {
        name: "identity:list_roles_for_trust",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustor_user_id)s or user_id:%(target.trust.trustee_user_id)s)",
        scope_types: SYSTEM_PROJECT,
        description: "List roles delegated by a trust.",
    },
    // GET /v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}
    // HEAD /v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}
    DefaultRule {
        name: "identity:get_role_for_trust",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustor_user_id)s or user_id:%(target.trust.trustee_user_id)s)",
        scope_types: SYSTEM_PROJECT,
        description: "Check if trust delegates a particular role.",
    },
    // DELETE /v3/OS-TRUST/trusts/{trust_id}
    DefaultRule {
        name: "identity:delete_trust",
        check_str: "rule:admin_required or user_id:%(target.trust.trustor_user_id)s",
        scope_types: SYSTEM_PROJECT,
        description: "Revoke trust.",
    },
    // GET /v3/OS-TRUST/trusts/{trust_id}
    // HEAD /v3/OS-TRUST/trusts/{trust_id}
    DefaultRule {
        name: "identity:get_trust",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustor_user_id)s or user_id:%(target.trust.trustee_user_id)s)",
        scope_types: SYSTEM_PROJECT,
        description: "Get trust.",
    },
    // ---- keystone/common/policies/user.py ----
    // GET /v3/users/{user_id}
    // HEAD /v3/users/{user_id}
    DefaultRule {
        name: "identity:get_user",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and token.domain.id:%(target.user.domain_id)s) or user_id:%(target.user.id)s",
        scope_types: ALL_SCOPES,
        description: "Show user details.",
    },
    // GET /v3/users
    // HEAD /v3/users
    DefaultRule {
        name: "identity:list_users",
        check_str: "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "List users.",
    },
    // GET  /v3/auth/projects
    DefaultRule {
        name: "identity:list_projects_for_user",
        check_str: "",
        scope_types: UNSCOPED,
        description: "List all projects a user has access to via role assignments.",
    },
    // GET /v3/auth/domains
    DefaultRule {
        name: "identity:list_domains_for_user",
        check_str: "",
        scope_types: UNSCOPED,
        description: "List all domains a user has access to via role assignments.",
    },
    // POST /v3/users
    DefaultRule {
        name: "identity:create_user",
        check_str: "(rule:admin_required) or (role:manager and token.domain.id:%(target.user.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Create a user.",
    },
    // PATCH /v3/users/{user_id}
    DefaultRule {
        name: "identity:update_user",
        check_str: "(rule:admin_required) or (role:manager and token.domain.id:%(target.user.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Update a user, including administrative password resets.",
    },
    // DELETE /v3/users/{user_id}
    DefaultRule {
        name: "identity:delete_user",
        check_str: "(rule:admin_required) or (role:manager and token.domain.id:%(target.user.domain_id)s)",
        scope_types: ALL_SCOPES,
        description: "Delete a user.",
    },
];
