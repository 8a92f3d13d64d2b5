-- Routers and floating IPs. Their ports (gateway, interfaces, the floating address) are
-- ordinary rows of net_ports owned by network:router_* / network:floatingip.
CREATE TABLE net_routers (
    id {id} PRIMARY KEY,
    project_id {id} NOT NULL,
    revision {bigint} NOT NULL,
    doc {text} NOT NULL
);
CREATE INDEX net_routers_project ON net_routers (project_id);
-- The key keeps one floating IP per fixed address of a port (NULLs while unassociated).
CREATE TABLE net_floatingips (
    id {id} PRIMARY KEY,
    project_id {id} NOT NULL,
    floating_network_id {id} NOT NULL,
    fixed_port_id {id},
    fixed_ip {id},
    revision {bigint} NOT NULL,
    doc {text} NOT NULL,
    UNIQUE (fixed_port_id, fixed_ip)
);
CREATE INDEX net_floatingips_network ON net_floatingips (floating_network_id)
