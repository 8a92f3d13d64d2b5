-- Nova's API database, first slice: flavors (with extra specs and project access), key
-- pairs, quota limits and classes, and the service registry compute agents heartbeat into.
-- Column names avoid words MariaDB reserves (key, binary, resource): spec_key,
-- service_binary, resource_name; `swap` is stored as swap_mb.
CREATE TABLE nv_flavors (
    flavorid {name} NOT NULL PRIMARY KEY,
    name {name} NOT NULL,
    memory_mb {bigint} NOT NULL,
    vcpus {bigint} NOT NULL,
    root_gb {bigint} NOT NULL,
    ephemeral_gb {bigint} NOT NULL,
    swap_mb {bigint} NOT NULL,
    rxtx_factor {text} NOT NULL,
    disabled {bool} NOT NULL,
    is_public {bool} NOT NULL,
    description {text},
    created_at {bigint} NOT NULL,
    updated_at {bigint}
);
CREATE UNIQUE INDEX nv_flavors_name ON nv_flavors (name);
CREATE TABLE nv_flavor_extra_specs (
    flavorid {name} NOT NULL,
    spec_key {name} NOT NULL,
    spec_value {text} NOT NULL,
    PRIMARY KEY (flavorid, spec_key)
);
CREATE TABLE nv_flavor_projects (
    flavorid {name} NOT NULL,
    project_id {name} NOT NULL,
    PRIMARY KEY (flavorid, project_id)
);
CREATE TABLE nv_key_pairs (
    id {bigint} NOT NULL,
    user_id {name} NOT NULL,
    name {name} NOT NULL,
    fingerprint {name} NOT NULL,
    public_key {text} NOT NULL,
    key_type {id} NOT NULL,
    created_at {bigint} NOT NULL,
    PRIMARY KEY (user_id, name)
);
CREATE UNIQUE INDEX nv_key_pairs_id ON nv_key_pairs (id);
-- Per-project limits have user_id '' (a primary key column cannot be NULL).
CREATE TABLE nv_quotas (
    project_id {name} NOT NULL,
    user_id {name} NOT NULL,
    resource_name {id} NOT NULL,
    hard_limit {bigint} NOT NULL,
    PRIMARY KEY (project_id, user_id, resource_name)
);
CREATE TABLE nv_quota_classes (
    class_name {name} NOT NULL,
    resource_name {id} NOT NULL,
    hard_limit {bigint} NOT NULL,
    PRIMARY KEY (class_name, resource_name)
);
-- One row per quota scope (project or user): a check-and-consume transaction updates its row
-- first, so concurrent consumers of one scope serialise on that row lock.
CREATE TABLE nv_quota_locks (
    scope_key {name} NOT NULL PRIMARY KEY,
    generation {bigint} NOT NULL
);
-- Integer ids Nova exposes (key pair and service ids), handed out under a row lock.
CREATE TABLE nv_sequences (
    seq_name {id} NOT NULL PRIMARY KEY,
    next_value {bigint} NOT NULL
);
CREATE TABLE nv_services (
    id {bigint} NOT NULL PRIMARY KEY,
    uuid {id} NOT NULL,
    host {name} NOT NULL,
    service_binary {id} NOT NULL,
    topic {id} NOT NULL,
    report_count {bigint} NOT NULL,
    disabled {bool} NOT NULL,
    disabled_reason {text},
    forced_down {bool} NOT NULL,
    last_seen_up {bigint},
    created_at {bigint} NOT NULL,
    updated_at {bigint}
);
CREATE UNIQUE INDEX nv_services_uuid ON nv_services (uuid);
CREATE UNIQUE INDEX nv_services_host_binary ON nv_services (host, service_binary);
INSERT INTO nv_sequences (seq_name, next_value) VALUES ('key_pairs', 1);
INSERT INTO nv_sequences (seq_name, next_value) VALUES ('services', 1)
