-- Keystone's data, one table per resource. Domains are projects with is_domain = true,
-- as upstream stores them; top-level domains have domain_id = '<<keystone.domain.root>>'.
CREATE TABLE ks_project (
    id {id} PRIMARY KEY,
    name {name} NOT NULL,
    domain_id {id} NOT NULL,
    parent_id {id},
    description {text},
    enabled {bool} NOT NULL,
    is_domain {bool} NOT NULL,
    extra {text} NOT NULL,
    created_at {bigint} NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE INDEX ks_project_parent ON ks_project (parent_id);
CREATE TABLE ks_project_tag (
    project_id {id} NOT NULL,
    name {name} NOT NULL,
    PRIMARY KEY (project_id, name)
);
CREATE TABLE ks_user (
    id {id} PRIMARY KEY,
    domain_id {id} NOT NULL,
    name {name} NOT NULL,
    enabled {bool} NOT NULL,
    password_hash {text},
    password_created_at {bigint},
    default_project_id {id},
    extra {text} NOT NULL,
    created_at {bigint} NOT NULL,
    last_active_at {bigint},
    UNIQUE (domain_id, name)
);
CREATE TABLE ks_group (
    id {id} PRIMARY KEY,
    domain_id {id} NOT NULL,
    name {name} NOT NULL,
    description {text},
    extra {text} NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE ks_user_group (
    user_id {id} NOT NULL,
    group_id {id} NOT NULL,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX ks_user_group_group ON ks_user_group (group_id);
-- Global roles have domain_id = '' so that the unique index covers them too.
CREATE TABLE ks_role (
    id {id} PRIMARY KEY,
    name {name} NOT NULL,
    domain_id {id} NOT NULL,
    description {text},
    extra {text} NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE ks_implied_role (
    prior_role_id {id} NOT NULL,
    implied_role_id {id} NOT NULL,
    PRIMARY KEY (prior_role_id, implied_role_id)
);
-- kind: UserProject, GroupProject, UserDomain, GroupDomain, UserSystem, GroupSystem.
CREATE TABLE ks_assignment (
    kind {id} NOT NULL,
    actor_id {id} NOT NULL,
    target_id {id} NOT NULL,
    role_id {id} NOT NULL,
    inherited {bool} NOT NULL,
    PRIMARY KEY (kind, actor_id, target_id, role_id, inherited)
);
CREATE INDEX ks_assignment_actor ON ks_assignment (actor_id);
CREATE INDEX ks_assignment_target ON ks_assignment (target_id);
CREATE TABLE ks_region (
    id {name} PRIMARY KEY,
    description {text},
    parent_region_id {name},
    extra {text} NOT NULL
);
CREATE TABLE ks_service (
    id {id} PRIMARY KEY,
    type {name} NOT NULL,
    enabled {bool} NOT NULL,
    extra {text} NOT NULL
);
CREATE TABLE ks_endpoint (
    id {id} PRIMARY KEY,
    service_id {id} NOT NULL,
    interface {id} NOT NULL,
    url {text} NOT NULL,
    region_id {name},
    enabled {bool} NOT NULL,
    extra {text} NOT NULL
);
CREATE TABLE ks_app_cred (
    id {id} PRIMARY KEY,
    name {name} NOT NULL,
    user_id {id} NOT NULL,
    project_id {id},
    secret_hash {text} NOT NULL,
    description {text},
    expires_at {bigint},
    unrestricted {bool} NOT NULL,
    roles {text} NOT NULL,
    created_at {bigint} NOT NULL,
    UNIQUE (user_id, name)
);
CREATE TABLE ks_credential (
    id {id} PRIMARY KEY,
    user_id {id} NOT NULL,
    project_id {id},
    type {name} NOT NULL,
    data {text} NOT NULL,
    extra {text} NOT NULL
);
CREATE TABLE ks_policy (
    id {id} PRIMARY KEY,
    type {name} NOT NULL,
    data {text} NOT NULL,
    extra {text} NOT NULL
);
-- Revocation events, as upstream's revocation_event table: a token is revoked when every
-- non-null field matches it and it was issued at or before issued_before.
CREATE TABLE ks_revocation_event (
    id {id} PRIMARY KEY,
    domain_id {id},
    project_id {id},
    user_id {id},
    role_id {id},
    audit_id {id},
    audit_chain_id {id},
    issued_before {bigint} NOT NULL,
    revoked_at {bigint} NOT NULL
);
