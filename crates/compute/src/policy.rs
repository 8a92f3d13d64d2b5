//! Nova's default policy for this slice (nova/policies/base.py and the files of each
//! resource), as data, with `enforce_scope` and the new defaults as upstream ships them.
//!
//! Flavor list/show have no rule upstream: everyone may read the flavors they can see.

use std::path::Path;

use ferro_common::Result;
pub use ferro_http::policy::{allowed, authorize};
use ferro_policy::{DefaultRule, Enforcer, Scope};

const PROJECT: &[Scope] = &[Scope::Project];

/// `base.ADMIN`.
const ADMIN: &str = "rule:context_is_admin";
/// `base.PROJECT_READER_OR_ADMIN`.
const PROJECT_READER_OR_ADMIN: &str = "rule:project_reader_or_admin";
/// `base.RULE_ANY`.
const ANY: &str = "@";
/// `base.PROJECT_MEMBER_OR_ADMIN`.
const PROJECT_MEMBER_OR_ADMIN: &str = "rule:project_member_or_admin";
/// The key pair rules: an admin, or the key's own user.
const ADMIN_OR_KEY_OWNER: &str = "(rule:context_is_admin) or user_id:%(user_id)s";

macro_rules! rule {
    ($name:expr, $check:expr, $desc:expr) => {
        DefaultRule {
            name: $name,
            check_str: $check,
            scope_types: PROJECT,
            description: $desc,
        }
    };
}

macro_rules! base {
    ($name:expr, $check:expr, $desc:expr) => {
        DefaultRule {
            name: $name,
            check_str: $check,
            scope_types: &[],
            description: $desc,
        }
    };
}

/// Nova's default rules for the resources served.
pub static NOVA_DEFAULTS: &[DefaultRule] = &[
    base!(
        "context_is_admin",
        "role:admin",
        "Decides what is required for the 'is_admin:True' check to succeed."
    ),
    base!(
        "project_manager_api",
        "role:manager and project_id:%(project_id)s",
        "Default rule for Project level management APIs."
    ),
    base!(
        "project_member_api",
        "role:member and project_id:%(project_id)s",
        "Default rule for Project level non admin APIs."
    ),
    base!(
        "project_reader_api",
        "role:reader and project_id:%(project_id)s",
        "Default rule for Project level read only APIs."
    ),
    base!(
        "service_api",
        "role:service",
        "Default rule for service-to-service APIs."
    ),
    base!(
        "project_manager_or_admin",
        "rule:project_manager_api or rule:context_is_admin",
        "Default rule for Project Manager or admin APIs."
    ),
    base!(
        "project_member_or_admin",
        "rule:project_member_api or rule:context_is_admin",
        "Default rule for Project Member or admin APIs."
    ),
    base!(
        "project_reader_or_admin",
        "rule:project_reader_api or rule:context_is_admin",
        "Default rule for Project reader or admin APIs."
    ),
    base!(
        "service_or_admin",
        "rule:service_api or rule:context_is_admin",
        "Default rule for service or admin APIs."
    ),
    rule!(
        "os_compute_api:os-flavor-manage:create",
        ADMIN,
        "Create a flavor"
    ),
    rule!(
        "os_compute_api:os-flavor-manage:update",
        ADMIN,
        "Update a flavor"
    ),
    rule!(
        "os_compute_api:os-flavor-manage:delete",
        ADMIN,
        "Delete a flavor"
    ),
    rule!(
        "os_compute_api:os-flavor-access:add_tenant_access",
        ADMIN,
        "Add flavor access to a tenant"
    ),
    rule!(
        "os_compute_api:os-flavor-access:remove_tenant_access",
        ADMIN,
        "Remove flavor access from a tenant"
    ),
    rule!(
        "os_compute_api:os-flavor-access",
        ADMIN,
        "List flavor access information"
    ),
    rule!(
        "os_compute_api:os-flavor-extra-specs:show",
        PROJECT_READER_OR_ADMIN,
        "Show an extra spec for a flavor"
    ),
    rule!(
        "os_compute_api:os-flavor-extra-specs:create",
        ADMIN,
        "Create extra specs for a flavor"
    ),
    rule!(
        "os_compute_api:os-flavor-extra-specs:update",
        ADMIN,
        "Update an extra spec for a flavor"
    ),
    rule!(
        "os_compute_api:os-flavor-extra-specs:delete",
        ADMIN,
        "Delete an extra spec for a flavor"
    ),
    rule!(
        "os_compute_api:os-flavor-extra-specs:index",
        PROJECT_READER_OR_ADMIN,
        "List extra specs for a flavor"
    ),
    rule!(
        "os_compute_api:os-keypairs:index",
        ADMIN_OR_KEY_OWNER,
        "List all keypairs"
    ),
    rule!(
        "os_compute_api:os-keypairs:create",
        ADMIN_OR_KEY_OWNER,
        "Create a keypair"
    ),
    rule!(
        "os_compute_api:os-keypairs:delete",
        ADMIN_OR_KEY_OWNER,
        "Delete a keypair"
    ),
    rule!(
        "os_compute_api:os-keypairs:show",
        ADMIN_OR_KEY_OWNER,
        "Show details of a keypair"
    ),
    rule!(
        "os_compute_api:os-quota-sets:update",
        ADMIN,
        "Update the quotas"
    ),
    rule!(
        "os_compute_api:os-quota-sets:defaults",
        ANY,
        "List default quotas"
    ),
    rule!(
        "os_compute_api:os-quota-sets:show",
        PROJECT_READER_OR_ADMIN,
        "Show a quota"
    ),
    rule!(
        "os_compute_api:os-quota-sets:delete",
        ADMIN,
        "Revert quotas to defaults"
    ),
    rule!(
        "os_compute_api:os-quota-sets:detail",
        PROJECT_READER_OR_ADMIN,
        "Show the detail of quota"
    ),
    rule!(
        "os_compute_api:os-quota-class-sets:show",
        ADMIN,
        "List quotas for specific quota classs"
    ),
    rule!(
        "os_compute_api:os-quota-class-sets:update",
        ADMIN,
        "Update quotas for specific quota class"
    ),
    rule!(
        "os_compute_api:limits",
        ANY,
        "Show rate and absolute limits for the current user project"
    ),
    rule!(
        "os_compute_api:limits:other_project",
        ADMIN,
        "Show rate and absolute limits of other project"
    ),
    rule!(
        "os_compute_api:os-availability-zone:list",
        ANY,
        "List availability zone information without host information"
    ),
    rule!(
        "os_compute_api:os-availability-zone:detail",
        ADMIN,
        "List detailed availability zone information with host information"
    ),
    rule!(
        "os_compute_api:os-services:list",
        ADMIN,
        "List all running Compute Services in a region."
    ),
    rule!(
        "os_compute_api:os-services:update",
        ADMIN,
        "Update a Compute Service."
    ),
    rule!(
        "os_compute_api:os-services:delete",
        ADMIN,
        "Delete a Compute Service."
    ),
    rule!(
        "os_compute_api:servers:index",
        PROJECT_READER_OR_ADMIN,
        "List all servers"
    ),
    rule!(
        "os_compute_api:servers:detail",
        PROJECT_READER_OR_ADMIN,
        "List all servers with detailed information"
    ),
    rule!(
        "os_compute_api:servers:index:get_all_tenants",
        ADMIN,
        "List all servers for all projects"
    ),
    rule!(
        "os_compute_api:servers:detail:get_all_tenants",
        ADMIN,
        "List all servers with detailed information for all projects"
    ),
    rule!(
        "os_compute_api:servers:allow_all_filters",
        ADMIN,
        "Allow all filters when listing servers"
    ),
    rule!(
        "os_compute_api:servers:show",
        PROJECT_READER_OR_ADMIN,
        "Show a server"
    ),
    rule!(
        "os_compute_api:servers:show:flavor-extra-specs",
        PROJECT_READER_OR_ADMIN,
        "Starting with microversion 2.47, the flavor and its extra specs used for a server is also returned in the response when showing server details, updating a server or rebuilding a server."
    ),
    rule!(
        "os_compute_api:servers:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Create a server"
    ),
    rule!(
        "os_compute_api:servers:create:forced_host",
        ADMIN,
        "Create a server on the specified host and/or node."
    ),
    rule!(
        "compute:servers:create:requested_destination",
        ADMIN,
        "Create a server on the requested compute host and/or node (2.74)."
    ),
    rule!(
        "os_compute_api:servers:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete a server"
    ),
    rule!(
        "os_compute_api:servers:update",
        PROJECT_MEMBER_OR_ADMIN,
        "Update a server"
    ),
    rule!(
        "os_compute_api:servers:reboot",
        PROJECT_MEMBER_OR_ADMIN,
        "Reboot a server"
    ),
    rule!(
        "os_compute_api:servers:start",
        PROJECT_MEMBER_OR_ADMIN,
        "Start a server"
    ),
    rule!(
        "os_compute_api:servers:stop",
        PROJECT_MEMBER_OR_ADMIN,
        "Stop a server"
    ),
    rule!(
        "os_compute_api:os-pause-server:pause",
        PROJECT_MEMBER_OR_ADMIN,
        "Pause a server"
    ),
    rule!(
        "os_compute_api:os-pause-server:unpause",
        PROJECT_MEMBER_OR_ADMIN,
        "Unpause a paused server"
    ),
    rule!(
        "os_compute_api:os-suspend-server:suspend",
        PROJECT_MEMBER_OR_ADMIN,
        "Suspend server"
    ),
    rule!(
        "os_compute_api:os-suspend-server:resume",
        PROJECT_MEMBER_OR_ADMIN,
        "Resume suspended server"
    ),
    rule!(
        "os_compute_api:os-lock-server:lock",
        PROJECT_MEMBER_OR_ADMIN,
        "Lock a server"
    ),
    rule!(
        "os_compute_api:os-lock-server:unlock",
        PROJECT_MEMBER_OR_ADMIN,
        "Unlock a server"
    ),
    rule!(
        "os_compute_api:os-lock-server:unlock:unlock_override",
        ADMIN,
        "Unlock a server, regardless who locked the server."
    ),
    rule!(
        "os_compute_api:server-metadata:index",
        PROJECT_READER_OR_ADMIN,
        "List all metadata of a server"
    ),
    rule!(
        "os_compute_api:server-metadata:show",
        PROJECT_READER_OR_ADMIN,
        "Show metadata for a server"
    ),
    rule!(
        "os_compute_api:server-metadata:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Create metadata for a server"
    ),
    rule!(
        "os_compute_api:server-metadata:update_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Replace metadata for a server"
    ),
    rule!(
        "os_compute_api:server-metadata:update",
        PROJECT_MEMBER_OR_ADMIN,
        "Update metadata from a server"
    ),
    rule!(
        "os_compute_api:server-metadata:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete metadata from a server"
    ),
    rule!(
        "os_compute_api:os-server-tags:index",
        PROJECT_READER_OR_ADMIN,
        "List all tags for given server"
    ),
    rule!(
        "os_compute_api:os-server-tags:show",
        PROJECT_READER_OR_ADMIN,
        "Check tag existence on the server."
    ),
    rule!(
        "os_compute_api:os-server-tags:update",
        PROJECT_MEMBER_OR_ADMIN,
        "Add a single tag to the server if server has no specified tag"
    ),
    rule!(
        "os_compute_api:os-server-tags:update_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Replace all tags on specified server with the new set of tags."
    ),
    rule!(
        "os_compute_api:os-server-tags:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete a single tag from the specified server"
    ),
    rule!(
        "os_compute_api:os-server-tags:delete_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete all the server tags"
    ),
    rule!(
        "os_compute_api:os-server-external-events:create",
        "rule:service_or_admin",
        "Create one or more external events"
    ),
    rule!(
        "os_compute_api:os-server-groups:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Create a new server group"
    ),
    rule!(
        "os_compute_api:os-server-groups:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete a server group"
    ),
    rule!(
        "os_compute_api:os-server-groups:index",
        PROJECT_READER_OR_ADMIN,
        "List all server groups"
    ),
    rule!(
        "os_compute_api:os-server-groups:index:all_projects",
        ADMIN,
        "List all server groups for all projects"
    ),
    rule!(
        "os_compute_api:os-server-groups:show",
        PROJECT_READER_OR_ADMIN,
        "Show details of a server group"
    ),
    rule!(
        "os_compute_api:os-console-output",
        PROJECT_MEMBER_OR_ADMIN,
        "Show console output for a server"
    ),
    rule!(
        "os_compute_api:os-instance-actions:list",
        PROJECT_READER_OR_ADMIN,
        "List actions for a server."
    ),
    rule!(
        "os_compute_api:os-instance-actions:show",
        PROJECT_READER_OR_ADMIN,
        "Show action details for a server."
    ),
    rule!(
        "os_compute_api:os-instance-actions:events",
        ADMIN,
        "Add events details in action details for a server."
    ),
    rule!(
        "os_compute_api:os-instance-actions:events:details",
        ADMIN,
        "Add \"details\" key in action events for a server."
    ),
    rule!(
        "os_compute_api:servers:resize",
        PROJECT_MEMBER_OR_ADMIN,
        "Resize a server"
    ),
    rule!(
        "os_compute_api:os-migrations:index",
        "rule:project_manager_or_admin",
        "List migrations"
    ),
    rule!(
        "os_compute_api:os-migrations:index:all_projects",
        ADMIN,
        "List migrations for all or cross projects"
    ),
    rule!(
        "os_compute_api:os-migrations:index:host",
        ADMIN,
        "List migrations with host information"
    ),
    rule!(
        "os_compute_api:os-migrate-server:migrate",
        ADMIN,
        "Cold migrate a server to a host"
    ),
    rule!(
        "os_compute_api:os-migrate-server:migrate:host",
        ADMIN,
        "Cold migrate a server to a specified host"
    ),
    rule!(
        "os_compute_api:servers:confirm_resize",
        PROJECT_MEMBER_OR_ADMIN,
        "Confirm a server resize"
    ),
    rule!(
        "os_compute_api:servers:revert_resize",
        PROJECT_MEMBER_OR_ADMIN,
        "Revert a server resize"
    ),
    rule!(
        "os_compute_api:os-simple-tenant-usage:list",
        ADMIN,
        "List per tenant usage statistics for all tenants"
    ),
    rule!(
        "os_compute_api:os-simple-tenant-usage:show",
        PROJECT_READER_OR_ADMIN,
        "Show usage statistics for a specific tenant"
    ),
    rule!(
        "os_compute_api:servers:rebuild",
        PROJECT_MEMBER_OR_ADMIN,
        "Rebuild a server"
    ),
    rule!(
        "os_compute_api:servers:create_image",
        PROJECT_MEMBER_OR_ADMIN,
        "Create an image from a server"
    ),
    rule!(
        "os_compute_api:os-shelve:shelve",
        PROJECT_MEMBER_OR_ADMIN,
        "Shelve server"
    ),
    rule!(
        "os_compute_api:os-shelve:unshelve",
        PROJECT_MEMBER_OR_ADMIN,
        "Unshelve (restore) shelved server"
    ),
    rule!(
        "os_compute_api:os-shelve:unshelve_to_host",
        ADMIN,
        "Unshelve (restore) shelve offloaded server to a specific host"
    ),
    rule!(
        "os_compute_api:os-shelve:shelve_offload",
        ADMIN,
        "Shelf-offload (remove) server"
    ),
    rule!(
        "os_compute_api:os-attach-interfaces:list",
        PROJECT_READER_OR_ADMIN,
        "List port interfaces attached to a server"
    ),
    rule!(
        "os_compute_api:os-attach-interfaces:show",
        PROJECT_READER_OR_ADMIN,
        "Show details of a port interface attached to a server"
    ),
    rule!(
        "os_compute_api:os-attach-interfaces:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Attach an interface to a server"
    ),
    rule!(
        "os_compute_api:os-attach-interfaces:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Detach an interface from a server"
    ),
    rule!(
        "os_compute_api:os-security-groups:get",
        PROJECT_READER_OR_ADMIN,
        "List security groups (deprecated proxy)"
    ),
    rule!(
        "os_compute_api:os-security-groups:show",
        PROJECT_READER_OR_ADMIN,
        "Show security group (deprecated proxy)"
    ),
    rule!(
        "os_compute_api:os-security-groups:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Create security group (deprecated proxy)"
    ),
    rule!(
        "os_compute_api:os-security-groups:update",
        PROJECT_MEMBER_OR_ADMIN,
        "Update security group (deprecated proxy)"
    ),
    rule!(
        "os_compute_api:os-security-groups:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete security group (deprecated proxy)"
    ),
    rule!(
        "os_compute_api:os-security-groups:rule:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Create security group rule (deprecated proxy)"
    ),
    rule!(
        "os_compute_api:os-security-groups:rule:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete security group rule (deprecated proxy)"
    ),
    rule!(
        "os_compute_api:os-security-groups:list",
        PROJECT_READER_OR_ADMIN,
        "List security groups of server"
    ),
    rule!(
        "os_compute_api:os-security-groups:add",
        PROJECT_MEMBER_OR_ADMIN,
        "Add security groups to server"
    ),
    rule!(
        "os_compute_api:os-security-groups:remove",
        PROJECT_MEMBER_OR_ADMIN,
        "Remove security groups from server"
    ),
    rule!(
        "os_compute_api:os-extended-server-attributes",
        ADMIN,
        "Return extended attributes for server."
    ),
    rule!(
        "os_compute_api:os-aggregates:set_metadata",
        ADMIN,
        "Create or replace metadata for an aggregate"
    ),
    rule!(
        "os_compute_api:os-aggregates:add_host",
        ADMIN,
        "Add a host to an aggregate"
    ),
    rule!(
        "os_compute_api:os-aggregates:create",
        ADMIN,
        "Create an aggregate"
    ),
    rule!(
        "os_compute_api:os-aggregates:remove_host",
        ADMIN,
        "Remove a host from an aggregate"
    ),
    rule!(
        "os_compute_api:os-aggregates:update",
        ADMIN,
        "Update name and/or availability zone for an aggregate"
    ),
    rule!(
        "os_compute_api:os-aggregates:index",
        ADMIN,
        "List all aggregates"
    ),
    rule!(
        "os_compute_api:os-aggregates:delete",
        ADMIN,
        "Delete an aggregate"
    ),
    rule!(
        "os_compute_api:os-aggregates:show",
        ADMIN,
        "Show details for an aggregate"
    ),
    rule!(
        "os_compute_api:os-hypervisors:list",
        ADMIN,
        "List all hypervisors."
    ),
    rule!(
        "os_compute_api:os-hypervisors:list-detail",
        ADMIN,
        "List all hypervisors with details"
    ),
    rule!(
        "os_compute_api:os-hypervisors:statistics",
        ADMIN,
        "Show summary statistics for all hypervisors over all compute nodes."
    ),
    rule!(
        "os_compute_api:os-hypervisors:show",
        ADMIN,
        "Show details for a hypervisor."
    ),
    rule!(
        "os_compute_api:os-hypervisors:uptime",
        ADMIN,
        "Show the uptime of a hypervisor."
    ),
    rule!(
        "os_compute_api:os-hypervisors:search",
        ADMIN,
        "Search hypervisor by hypervisor_hostname pattern."
    ),
    rule!(
        "os_compute_api:os-hypervisors:servers",
        ADMIN,
        "List all servers on hypervisors that match the pattern."
    ),
    rule!(
        "os_compute_api:os-admin-actions:reset_state",
        ADMIN,
        "Reset the state of a given server"
    ),
    rule!(
        "os_compute_api:os-admin-actions:inject_network_info",
        ADMIN,
        "Inject network information into the server"
    ),
    rule!(
        "os_compute_api:os-deferred-delete:restore",
        PROJECT_MEMBER_OR_ADMIN,
        "Restore a soft deleted server"
    ),
    rule!(
        "os_compute_api:os-deferred-delete:force",
        PROJECT_MEMBER_OR_ADMIN,
        "Force delete a server before deferred cleanup"
    ),
    rule!(
        "os_compute_api:ips:index",
        PROJECT_READER_OR_ADMIN,
        "List IP addresses that are assigned to a server"
    ),
    rule!(
        "os_compute_api:ips:show",
        PROJECT_READER_OR_ADMIN,
        "Show IP addresses details for a network label of a  server"
    ),
    rule!(
        "os_compute_api:os-server-password:show",
        PROJECT_READER_OR_ADMIN,
        "Show the encrypted administrative password of a server"
    ),
    rule!(
        "os_compute_api:os-server-password:clear",
        PROJECT_MEMBER_OR_ADMIN,
        "Clear the encrypted administrative password of a server"
    ),
    rule!(
        "os_compute_api:os-server-diagnostics",
        ADMIN,
        "Show the usage data for a server"
    ),
    rule!(
        "os_compute_api:os-instance-usage-audit-log:list",
        ADMIN,
        "List all usage audits."
    ),
    rule!(
        "os_compute_api:os-instance-usage-audit-log:show",
        ADMIN,
        "List all usage audits occurred before a specified time for all servers on all compute hosts where usage auditing is configured"
    ),
    rule!(
        "os_compute_api:os-hosts:list",
        ADMIN,
        "List physical hosts."
    ),
    rule!("os_compute_api:os-hosts:show", ADMIN, "Show physical host."),
    rule!(
        "os_compute_api:os-hosts:update",
        ADMIN,
        "Update physical host."
    ),
    rule!(
        "os_compute_api:os-hosts:reboot",
        ADMIN,
        "Reboot physical host."
    ),
    rule!(
        "os_compute_api:os-hosts:shutdown",
        ADMIN,
        "Shutdown physical host."
    ),
    rule!(
        "os_compute_api:os-hosts:start",
        ADMIN,
        "Start physical host."
    ),
    rule!(
        "os_compute_api:extensions",
        ANY,
        "List available extensions and show information for an extension by alias."
    ),
];

/// The enforcer with Nova's defaults and the operator's overrides.
pub fn enforcer(policy_file: Option<&Path>) -> Result<Enforcer> {
    ferro_http::policy::enforcer(NOVA_DEFAULTS, policy_file)
}

#[cfg(test)]
mod tests {
    use ferro_common::RequestContext;
    use serde_json::json;

    use super::*;

    fn ctx(user: &str, project: &str, roles: &[&str]) -> RequestContext {
        RequestContext {
            user_id: user.into(),
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
    fn admin_only_and_owner_rules() {
        let e = enforcer(None).unwrap();
        let member = ctx("u", "p", &["member", "reader"]);
        let admin = ctx("a", "p", &["admin", "member", "reader"]);
        assert!(!allowed(
            &e,
            &member,
            "os_compute_api:os-flavor-manage:create",
            &json!({})
        ));
        assert!(allowed(
            &e,
            &admin,
            "os_compute_api:os-flavor-manage:create",
            &json!({})
        ));
        let own = json!({"user_id": "u"});
        let other = json!({"user_id": "v"});
        assert!(allowed(
            &e,
            &member,
            "os_compute_api:os-keypairs:show",
            &own
        ));
        assert!(!allowed(
            &e,
            &member,
            "os_compute_api:os-keypairs:show",
            &other
        ));
        assert!(allowed(
            &e,
            &admin,
            "os_compute_api:os-keypairs:show",
            &other
        ));
        let p = json!({"project_id": "p"});
        let q = json!({"project_id": "q"});
        assert!(allowed(
            &e,
            &member,
            "os_compute_api:os-quota-sets:show",
            &p
        ));
        assert!(!allowed(
            &e,
            &member,
            "os_compute_api:os-quota-sets:show",
            &q
        ));
        assert!(allowed(
            &e,
            &member,
            "os_compute_api:os-quota-sets:defaults",
            &q
        ));
    }
}
