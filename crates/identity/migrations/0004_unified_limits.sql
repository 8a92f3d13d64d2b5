-- Keystone's unified limits: registered limits (a service's default for a resource, per
-- region or for every region) and the project or domain limits overriding them.
-- region_id is '' for a registered limit of no region, so that the unique key also refuses
-- a second region-less registration (NULLs never collide in a unique index).
CREATE TABLE ks_registered_limit (
    id {id} PRIMARY KEY,
    service_id {id} NOT NULL,
    region_id {name} NOT NULL,
    resource_name {name} NOT NULL,
    default_limit {bigint} NOT NULL,
    description {text}
);
CREATE UNIQUE INDEX ks_registered_limit_key ON ks_registered_limit (service_id, region_id, resource_name);
-- A limit names its registered limit (service, region and resource come from there) and
-- exactly one of project_id and domain_id; the two unique keys allow one limit per
-- registered limit and project, or per registered limit and domain.
CREATE TABLE ks_limit (
    id {id} PRIMARY KEY,
    registered_limit_id {id} NOT NULL,
    project_id {id},
    domain_id {id},
    resource_limit {bigint} NOT NULL,
    description {text}
);
CREATE UNIQUE INDEX ks_limit_project ON ks_limit (registered_limit_id, project_id);
CREATE UNIQUE INDEX ks_limit_domain ON ks_limit (registered_limit_id, domain_id);
CREATE INDEX ks_limit_project_id ON ks_limit (project_id);
