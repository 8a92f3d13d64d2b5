-- Servers (Nova's instances, with their one fault and metadata folded in as JSON) and the
-- compute nodes agents report. The API inserts an instance; from then on the conductor alone
-- writes it. Deleting soft-deletes (deleted = true, deleted_at set), as upstream.
CREATE TABLE nv_instances (
    uuid {id} NOT NULL PRIMARY KEY,
    internal_id {bigint} NOT NULL,
    project_id {name} NOT NULL,
    user_id {name} NOT NULL,
    display_name {name} NOT NULL,
    display_description {text},
    hostname {name} NOT NULL,
    host {name},
    node {name},
    availability_zone {name},
    flavor {text} NOT NULL,
    vcpus {bigint} NOT NULL,
    memory_mb {bigint} NOT NULL,
    image_ref {name} NOT NULL,
    key_name {name},
    key_data {text},
    user_data {text},
    metadata {text} NOT NULL,
    tags {text} NOT NULL,
    vm_state {id} NOT NULL,
    task_state {id},
    power_state {bigint} NOT NULL,
    locked_by {id},
    locked_reason {text},
    launch_index {bigint} NOT NULL,
    reservation_id {id} NOT NULL,
    config_drive {id} NOT NULL,
    access_ip_v4 {name},
    access_ip_v6 {name},
    auto_disk_config {bool} NOT NULL,
    attempts {bigint} NOT NULL,
    tried_hosts {text} NOT NULL,
    fault {text},
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    launched_at {bigint},
    terminated_at {bigint},
    deleted_at {bigint},
    deleted {bool} NOT NULL
);
CREATE INDEX nv_instances_project ON nv_instances (project_id, deleted);
CREATE INDEX nv_instances_host ON nv_instances (host);
CREATE TABLE nv_compute_nodes (
    host {name} NOT NULL PRIMARY KEY,
    id {bigint} NOT NULL,
    uuid {id} NOT NULL,
    vcpus {bigint} NOT NULL,
    memory_mb {bigint} NOT NULL,
    local_gb {bigint} NOT NULL,
    hypervisor_type {id} NOT NULL,
    hypervisor_version {bigint} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
INSERT INTO nv_sequences (seq_name, next_value) VALUES ('instances', 1);
INSERT INTO nv_sequences (seq_name, next_value) VALUES ('compute_nodes', 1)
