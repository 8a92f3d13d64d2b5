-- Glance metadata definitions (metadefs). Every named row keeps the name as given and a
-- lower-cased name_key that carries the uniqueness and the lookups, so the three engines
-- agree: upstream's reference deployment (MySQL, case-insensitive collation) treats
-- names that differ only in case as the same name.
-- Children hang off the namespace's internal id, so renaming a namespace touches one row.
CREATE TABLE gl_md_namespaces (
    id {id} NOT NULL PRIMARY KEY,
    name {name} NOT NULL,
    name_key {name} NOT NULL,
    display_name {name},
    description {text},
    visibility {id} NOT NULL,
    owner_id {name} NOT NULL,
    is_protected {bool} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE UNIQUE INDEX gl_md_namespaces_key ON gl_md_namespaces (name_key);
CREATE INDEX gl_md_namespaces_owner ON gl_md_namespaces (owner_id);
-- An object's required list and its property definitions are JSON text.
CREATE TABLE gl_md_objects (
    id {id} NOT NULL PRIMARY KEY,
    namespace_id {id} NOT NULL,
    name {name} NOT NULL,
    name_key {name} NOT NULL,
    description {text},
    required_list {text} NOT NULL,
    properties_json {text} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE UNIQUE INDEX gl_md_objects_key ON gl_md_objects (namespace_id, name_key);
CREATE TABLE gl_md_properties (
    id {id} NOT NULL PRIMARY KEY,
    namespace_id {id} NOT NULL,
    name {name} NOT NULL,
    name_key {name} NOT NULL,
    schema_json {text} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE UNIQUE INDEX gl_md_properties_key ON gl_md_properties (namespace_id, name_key);
CREATE TABLE gl_md_tags (
    id {id} NOT NULL PRIMARY KEY,
    namespace_id {id} NOT NULL,
    name {name} NOT NULL,
    name_key {name} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE UNIQUE INDEX gl_md_tags_key ON gl_md_tags (namespace_id, name_key);
-- Resource types are global; the seeded ones are protected.
CREATE TABLE gl_md_resource_types (
    id {id} NOT NULL PRIMARY KEY,
    name {name} NOT NULL,
    name_key {name} NOT NULL,
    is_protected {bool} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE UNIQUE INDEX gl_md_resource_types_key ON gl_md_resource_types (name_key);
CREATE TABLE gl_md_ns_resource_types (
    namespace_id {id} NOT NULL,
    resource_type_id {id} NOT NULL,
    prefix {name},
    properties_target {name},
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    PRIMARY KEY (namespace_id, resource_type_id)
);
CREATE INDEX gl_md_ns_resource_types_rt ON gl_md_ns_resource_types (resource_type_id)
