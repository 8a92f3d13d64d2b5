-- Placement: providers, their inventories, traits and aggregates, consumers and their
-- allocations. Rows are keyed by the external names (provider uuid, resource class and
-- trait name) rather than integer surrogates: the migration language has no portable
-- auto-increment, and every lookup the API makes is by those names anyway. Standard
-- resource classes and traits live in code (os-resource-classes, os-traits); only
-- CUSTOM_ ones are rows.
CREATE TABLE pl_resource_providers (
    uuid {id} NOT NULL PRIMARY KEY,
    name {name} NOT NULL,
    generation {bigint} NOT NULL,
    parent_uuid {id},
    root_uuid {id} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE UNIQUE INDEX pl_resource_providers_name ON pl_resource_providers (name);
CREATE INDEX pl_resource_providers_root ON pl_resource_providers (root_uuid);
CREATE INDEX pl_resource_providers_parent ON pl_resource_providers (parent_uuid);
CREATE TABLE pl_resource_classes (
    name {name} NOT NULL PRIMARY KEY,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE TABLE pl_inventories (
    resource_provider_uuid {id} NOT NULL,
    resource_class {name} NOT NULL,
    total {bigint} NOT NULL,
    reserved {bigint} NOT NULL,
    min_unit {bigint} NOT NULL,
    max_unit {bigint} NOT NULL,
    step_size {bigint} NOT NULL,
    allocation_ratio {text} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    PRIMARY KEY (resource_provider_uuid, resource_class)
);
CREATE INDEX pl_inventories_class ON pl_inventories (resource_class);
CREATE TABLE pl_traits (
    name {name} NOT NULL PRIMARY KEY,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE TABLE pl_provider_traits (
    resource_provider_uuid {id} NOT NULL,
    trait {name} NOT NULL,
    PRIMARY KEY (resource_provider_uuid, trait)
);
CREATE INDEX pl_provider_traits_trait ON pl_provider_traits (trait);
CREATE TABLE pl_provider_aggregates (
    resource_provider_uuid {id} NOT NULL,
    aggregate_uuid {id} NOT NULL,
    PRIMARY KEY (resource_provider_uuid, aggregate_uuid)
);
CREATE INDEX pl_provider_aggregates_aggregate ON pl_provider_aggregates (aggregate_uuid);
CREATE TABLE pl_consumers (
    uuid {id} NOT NULL PRIMARY KEY,
    project_id {name} NOT NULL,
    user_id {name} NOT NULL,
    consumer_type {name},
    generation {bigint} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE INDEX pl_consumers_project_user ON pl_consumers (project_id, user_id);
CREATE TABLE pl_allocations (
    consumer_uuid {id} NOT NULL,
    resource_provider_uuid {id} NOT NULL,
    resource_class {name} NOT NULL,
    used {bigint} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    PRIMARY KEY (consumer_uuid, resource_provider_uuid, resource_class)
);
CREATE INDEX pl_allocations_provider ON pl_allocations (resource_provider_uuid, resource_class)
