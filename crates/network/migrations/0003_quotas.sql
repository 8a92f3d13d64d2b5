-- Per-project quota overrides; a project without a row has the configured defaults.
CREATE TABLE net_quotas (
    project_id {id} NOT NULL,
    resource {id} NOT NULL,
    hard_limit {bigint} NOT NULL,
    PRIMARY KEY (project_id, resource)
)
