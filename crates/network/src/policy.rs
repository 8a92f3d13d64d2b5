//! Neutron's default policy (neutron/conf/policies/*.py under the new defaults), as data.
//!
//! Targets carry the resource's `project_id`, plus `network_project_id` (the owner of the
//! network a subnet or port is on), `shared` and `external` of that network, and
//! `group_project_id` for rules, so the check strings read as upstream's.

use ferro_policy::{DefaultRule, Scope};

const PROJECT: &[Scope] = &[Scope::Project];

const ADMIN: &str = "rule:admin_only";
const ADMIN_OR_MEMBER: &str = "rule:admin_only or rule:project_member";
const ADMIN_OR_READER: &str = "rule:admin_only or rule:project_reader";
const ADMIN_OR_NET_OWNER_MEMBER: &str = "rule:admin_only or rule:network_owner_member";
const ADMIN_OR_MEMBER_OR_NET_OWNER: &str =
    "rule:admin_only or rule:project_member or rule:network_owner_member";

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

const fn base(
    name: &'static str,
    check_str: &'static str,
    description: &'static str,
) -> DefaultRule {
    DefaultRule {
        name,
        check_str,
        scope_types: &[],
        description,
    }
}

/// Neutron's default rules.
pub static NETWORK_DEFAULTS: &[DefaultRule] = &[
    base(
        "context_is_admin",
        "role:admin",
        "Rule for cloud admin access.",
    ),
    base(
        "admin_only",
        "rule:context_is_admin",
        "Rule for admin-only access.",
    ),
    base(
        "project_member",
        "role:member and project_id:%(project_id)s",
        "Project members of the resource's project.",
    ),
    base(
        "project_reader",
        "role:reader and project_id:%(project_id)s",
        "Project readers of the resource's project.",
    ),
    base(
        "network_owner_member",
        "role:member and project_id:%(network_project_id)s",
        "Members of the project owning the resource's network.",
    ),
    base(
        "network_owner_reader",
        "role:reader and project_id:%(network_project_id)s",
        "Readers of the project owning the resource's network.",
    ),
    base(
        "shared",
        "'True':%(shared)s",
        "The resource's network is shared.",
    ),
    base(
        "external",
        "'True':%(external)s",
        "The network is external.",
    ),
    base(
        "service_api",
        "role:service",
        "Services acting for users (nova binding ports), as upstream's ADMIN_OR_SERVICE.",
    ),
    // networks
    rule("create_network", ADMIN_OR_MEMBER, "Create a network."),
    rule("create_network:shared", ADMIN, "Create a shared network."),
    rule(
        "create_network:router:external",
        ADMIN,
        "Create an external network.",
    ),
    rule(
        "create_network:is_default",
        ADMIN,
        "Make an external network the default (auto-allocated topologies).",
    ),
    rule(
        "update_network:is_default",
        ADMIN,
        "Change is_default of an external network.",
    ),
    rule(
        "create_network:provider:network_type",
        ADMIN,
        "Set provider:network_type.",
    ),
    rule(
        "create_network:provider:physical_network",
        ADMIN,
        "Set provider:physical_network.",
    ),
    rule(
        "create_network:provider:segmentation_id",
        ADMIN,
        "Set provider:segmentation_id.",
    ),
    rule(
        "get_network",
        "rule:admin_only or rule:project_reader or rule:shared or rule:external or rule:service_api",
        "Get a network.",
    ),
    rule(
        "get_network:provider:network_type",
        ADMIN,
        "See provider:network_type.",
    ),
    rule(
        "get_network:provider:physical_network",
        ADMIN,
        "See provider:physical_network.",
    ),
    rule(
        "get_network:provider:segmentation_id",
        ADMIN,
        "See provider:segmentation_id.",
    ),
    rule("update_network", ADMIN_OR_MEMBER, "Update a network."),
    rule(
        "update_network:shared",
        ADMIN,
        "Update the shared attribute.",
    ),
    rule(
        "update_network:router:external",
        ADMIN,
        "Update router:external.",
    ),
    rule("delete_network", ADMIN_OR_MEMBER, "Delete a network."),
    // subnets
    rule(
        "create_subnet",
        ADMIN_OR_NET_OWNER_MEMBER,
        "Create a subnet.",
    ),
    rule(
        "get_subnet",
        "rule:admin_only or rule:project_reader or rule:shared or rule:service_api",
        "Get a subnet.",
    ),
    rule(
        "update_subnet",
        ADMIN_OR_MEMBER_OR_NET_OWNER,
        "Update a subnet.",
    ),
    rule(
        "delete_subnet",
        ADMIN_OR_MEMBER_OR_NET_OWNER,
        "Delete a subnet.",
    ),
    // subnet pools
    rule(
        "create_subnetpool",
        ADMIN_OR_MEMBER,
        "Create a subnet pool.",
    ),
    rule(
        "create_subnetpool:shared",
        ADMIN,
        "Create a shared subnet pool.",
    ),
    rule(
        "create_subnetpool:is_default",
        ADMIN,
        "Make a default subnet pool.",
    ),
    rule(
        "get_subnetpool",
        "rule:admin_only or rule:project_reader or rule:shared",
        "Get a subnet pool.",
    ),
    rule(
        "update_subnetpool",
        ADMIN_OR_MEMBER,
        "Update a subnet pool.",
    ),
    rule(
        "update_subnetpool:is_default",
        ADMIN,
        "Change is_default of a subnet pool.",
    ),
    rule(
        "delete_subnetpool",
        ADMIN_OR_MEMBER,
        "Delete a subnet pool.",
    ),
    // ports
    rule(
        "create_port",
        "rule:admin_only or rule:network_owner_member or rule:shared or rule:service_api",
        "Create a port.",
    ),
    rule(
        "create_port:device_owner",
        "not rule:network_device or rule:admin_only or rule:network_owner_member or rule:service_api",
        "Set device_owner to a network:* owner.",
    ),
    base(
        "network_device",
        "'True':%(network_device)s",
        "A network:* device port.",
    ),
    rule(
        "create_port:mac_address",
        "rule:admin_only or rule:network_owner_member or rule:service_api",
        "Choose the MAC address.",
    ),
    rule(
        "create_port:fixed_ips:ip_address",
        "rule:admin_only or rule:network_owner_member or rule:service_api",
        "Choose the IP address.",
    ),
    rule(
        "create_port:binding:host_id",
        "rule:admin_only or rule:service_api",
        "Bind a port to a host.",
    ),
    rule(
        "create_port:binding:profile",
        "rule:admin_only or rule:service_api",
        "Set binding:profile.",
    ),
    rule(
        "create_port:port_security_enabled",
        "rule:admin_only or rule:network_owner_member or rule:service_api",
        "Switch port security.",
    ),
    rule(
        "get_port",
        "rule:admin_only or rule:project_reader or rule:network_owner_reader or rule:service_api",
        "Get a port.",
    ),
    rule(
        "get_port:binding:vif_type",
        "rule:admin_only or rule:service_api",
        "See binding:vif_type.",
    ),
    rule(
        "get_port:binding:vif_details",
        "rule:admin_only or rule:service_api",
        "See binding:vif_details.",
    ),
    rule(
        "get_port:binding:host_id",
        "rule:admin_only or rule:service_api",
        "See binding:host_id.",
    ),
    rule(
        "get_port:binding:profile",
        "rule:admin_only or rule:service_api",
        "See binding:profile.",
    ),
    rule(
        "update_port",
        "rule:admin_only or rule:project_member or rule:network_owner_member or rule:service_api",
        "Update a port.",
    ),
    rule(
        "update_port:binding:host_id",
        "rule:admin_only or rule:service_api",
        "Bind a port to a host.",
    ),
    rule(
        "update_port:binding:profile",
        "rule:admin_only or rule:service_api",
        "Set binding:profile.",
    ),
    rule(
        "update_port:mac_address",
        "rule:admin_only or rule:service_api",
        "Change the MAC address.",
    ),
    rule(
        "update_port:fixed_ips:ip_address",
        "rule:admin_only or rule:network_owner_member or rule:service_api",
        "Choose the IP address.",
    ),
    rule(
        "update_port:port_security_enabled",
        "rule:admin_only or rule:network_owner_member or rule:service_api",
        "Switch port security.",
    ),
    rule(
        "delete_port",
        "rule:admin_only or rule:project_member or rule:network_owner_member or rule:service_api",
        "Delete a port.",
    ),
    // security groups
    rule(
        "create_security_group",
        ADMIN_OR_MEMBER,
        "Create a security group.",
    ),
    rule(
        "get_security_group",
        ADMIN_OR_READER,
        "Get a security group.",
    ),
    rule(
        "update_security_group",
        ADMIN_OR_MEMBER,
        "Update a security group.",
    ),
    rule(
        "delete_security_group",
        ADMIN_OR_MEMBER,
        "Delete a security group.",
    ),
    rule(
        "create_security_group_rule",
        ADMIN_OR_MEMBER,
        "Create a security group rule.",
    ),
    rule(
        "get_security_group_rule",
        "rule:admin_only or rule:project_reader or rule:sg_owner_reader",
        "Get a security group rule.",
    ),
    base(
        "sg_owner_reader",
        "role:reader and project_id:%(group_project_id)s",
        "Readers of the project owning the rule's group.",
    ),
    rule(
        "delete_security_group_rule",
        "rule:admin_only or rule:project_member or rule:sg_owner_member",
        "Delete a security group rule.",
    ),
    base(
        "sg_owner_member",
        "role:member and project_id:%(group_project_id)s",
        "Members of the project owning the rule's group.",
    ),
    // routers
    rule("create_router", ADMIN_OR_MEMBER, "Create a router."),
    rule(
        "create_router:external_gateway_info:enable_snat",
        ADMIN,
        "Choose SNAT on a new router's gateway.",
    ),
    rule(
        "create_router:external_gateway_info:external_fixed_ips",
        ADMIN,
        "Choose a new router's gateway addresses.",
    ),
    rule("get_router", ADMIN_OR_READER, "Get a router."),
    rule("update_router", ADMIN_OR_MEMBER, "Update a router."),
    rule(
        "update_router:external_gateway_info:enable_snat",
        ADMIN,
        "Choose SNAT on a router's gateway.",
    ),
    rule(
        "update_router:external_gateway_info:external_fixed_ips",
        ADMIN,
        "Choose a router's gateway addresses.",
    ),
    rule("delete_router", ADMIN_OR_MEMBER, "Delete a router."),
    rule(
        "add_router_interface",
        ADMIN_OR_MEMBER,
        "Add an interface to a router.",
    ),
    rule(
        "remove_router_interface",
        ADMIN_OR_MEMBER,
        "Remove a router interface.",
    ),
    // floating IPs
    rule(
        "create_floatingip",
        ADMIN_OR_MEMBER,
        "Create a floating IP.",
    ),
    rule(
        "create_floatingip:floating_ip_address",
        ADMIN,
        "Choose a floating IP's address.",
    ),
    rule("get_floatingip", ADMIN_OR_READER, "Get a floating IP."),
    rule(
        "update_floatingip",
        ADMIN_OR_MEMBER,
        "Update a floating IP.",
    ),
    rule(
        "delete_floatingip",
        ADMIN_OR_MEMBER,
        "Delete a floating IP.",
    ),
    rule(
        "get_network_ip_availability",
        ADMIN,
        "Get the IP availability of networks.",
    ),
    rule("get_agent", ADMIN, "List agents."),
    rule("get_quota", ADMIN_OR_READER, "Get a project's quotas."),
    rule("update_quota", ADMIN, "Update a project's quotas."),
    rule("delete_quota", ADMIN, "Reset a project's quotas."),
    rule("get_extension", "@", "Anyone may list extensions."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_rule_parses() {
        let e = ferro_policy::Enforcer::new(NETWORK_DEFAULTS);
        assert!(e.invalid_rules().is_empty(), "{:?}", e.invalid_rules());
    }
}
