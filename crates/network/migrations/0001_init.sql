-- Neutron's core resources. Each row keeps the resource's API document in `doc`; the
-- columns beside it are what queries select on and what the unique constraints guard.
CREATE TABLE net_networks (
    id {id} PRIMARY KEY,
    project_id {id} NOT NULL,
    revision {bigint} NOT NULL,
    doc {text} NOT NULL
);
CREATE INDEX net_networks_project ON net_networks (project_id);
-- One row per allocated segment: the key makes a VLAN id, a VNI or a flat physnet
-- impossible to hand out twice (flat segments use seg_id 0).
CREATE TABLE net_segments (
    network_type {id} NOT NULL,
    physnet {id} NOT NULL,
    seg_id {bigint} NOT NULL,
    network_id {id} NOT NULL,
    PRIMARY KEY (network_type, physnet, seg_id)
);
CREATE INDEX net_segments_network ON net_segments (network_id);
CREATE TABLE net_subnets (
    id {id} PRIMARY KEY,
    network_id {id} NOT NULL,
    project_id {id} NOT NULL,
    revision {bigint} NOT NULL,
    doc {text} NOT NULL
);
CREATE INDEX net_subnets_network ON net_subnets (network_id);
CREATE TABLE net_ports (
    id {id} PRIMARY KEY,
    network_id {id} NOT NULL,
    project_id {id} NOT NULL,
    mac {id} NOT NULL,
    device_owner {name} NOT NULL,
    revision {bigint} NOT NULL,
    doc {text} NOT NULL,
    UNIQUE (network_id, mac)
);
-- IPAM: the primary key is what guarantees an address is never handed out twice.
CREATE TABLE net_ip_allocations (
    network_id {id} NOT NULL,
    ip_address {id} NOT NULL,
    subnet_id {id} NOT NULL,
    port_id {id} NOT NULL,
    PRIMARY KEY (network_id, ip_address)
);
CREATE INDEX net_ip_allocations_subnet ON net_ip_allocations (subnet_id);
CREATE INDEX net_ip_allocations_port ON net_ip_allocations (port_id);
CREATE TABLE net_security_groups (
    id {id} PRIMARY KEY,
    project_id {id} NOT NULL,
    revision {bigint} NOT NULL,
    doc {text} NOT NULL
);
CREATE INDEX net_security_groups_project ON net_security_groups (project_id);
-- At most one `default` group per project, even when two requests create it at once.
CREATE TABLE net_default_security_groups (
    project_id {id} PRIMARY KEY,
    security_group_id {id} NOT NULL
);
CREATE TABLE net_security_group_rules (
    id {id} PRIMARY KEY,
    security_group_id {id} NOT NULL,
    project_id {id} NOT NULL,
    rule_key {name} NOT NULL,
    revision {bigint} NOT NULL,
    doc {text} NOT NULL,
    UNIQUE (security_group_id, rule_key)
);
CREATE TABLE net_port_security_groups (
    port_id {id} NOT NULL,
    security_group_id {id} NOT NULL,
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX net_port_security_groups_group ON net_port_security_groups (security_group_id)
