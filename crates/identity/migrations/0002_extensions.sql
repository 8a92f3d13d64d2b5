-- Keystone's extension resources: OAuth1 consumers, endpoint groups, application
-- credential access rules, trusts and domain-specific configuration.
-- The consumer secret is kept as given: OAuth1 signatures are checked with it.
CREATE TABLE ks_consumer (
    id {id} PRIMARY KEY,
    description {text},
    secret {text} NOT NULL,
    extra {text} NOT NULL
);
CREATE TABLE ks_endpoint_group (
    id {id} PRIMARY KEY,
    name {name} NOT NULL,
    description {text},
    filters {text} NOT NULL
);
-- Access rules belong to a user and outlive the application credentials using them.
CREATE TABLE ks_access_rule (
    id {id} PRIMARY KEY,
    user_id {id} NOT NULL,
    service {name} NOT NULL,
    path {text} NOT NULL,
    method {id} NOT NULL
);
CREATE INDEX ks_access_rule_user ON ks_access_rule (user_id);
CREATE TABLE ks_app_cred_access_rule (
    app_cred_id {id} NOT NULL,
    access_rule_id {id} NOT NULL,
    PRIMARY KEY (app_cred_id, access_rule_id)
);
CREATE INDEX ks_app_cred_access_rule_rule ON ks_app_cred_access_rule (access_rule_id);
-- roles: JSON list of role ids.
CREATE TABLE ks_trust (
    id {id} PRIMARY KEY,
    trustor_user_id {id} NOT NULL,
    trustee_user_id {id} NOT NULL,
    project_id {id},
    impersonation {bool} NOT NULL,
    expires_at {bigint},
    remaining_uses {bigint},
    allow_redelegation {bool} NOT NULL,
    redelegation_count {bigint} NOT NULL,
    redelegated_trust_id {id},
    roles {text} NOT NULL,
    extra {text} NOT NULL,
    created_at {bigint} NOT NULL
);
CREATE INDEX ks_trust_trustor ON ks_trust (trustor_user_id);
CREATE INDEX ks_trust_trustee ON ks_trust (trustee_user_id);
-- Domain-specific configuration: one row per option; value is JSON (options keep their type).
CREATE TABLE ks_domain_config (
    domain_id {id} NOT NULL,
    grp {name} NOT NULL,
    opt {name} NOT NULL,
    opt_value {text} NOT NULL,
    is_sensitive {bool} NOT NULL,
    PRIMARY KEY (domain_id, grp, opt)
);
