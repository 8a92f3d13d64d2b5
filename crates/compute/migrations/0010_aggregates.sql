-- Host aggregates (Nova's API-database `aggregates`, `aggregate_hosts` and
-- `aggregate_metadata`). As there, a deleted aggregate's rows are removed, not marked: the
-- API's `deleted` is always false, and a name is unique among the aggregates that exist.
-- Columns avoid words MariaDB reserves (key, value): meta_key, meta_value. An aggregate's
-- `availability_zone` is its metadata key of that name.
CREATE TABLE nv_aggregates (
    id {bigint} NOT NULL PRIMARY KEY,
    uuid {id} NOT NULL,
    name {name} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint}
);
CREATE UNIQUE INDEX nv_aggregates_uuid ON nv_aggregates (uuid);
CREATE UNIQUE INDEX nv_aggregates_name ON nv_aggregates (name);
CREATE TABLE nv_aggregate_hosts (
    aggregate_id {bigint} NOT NULL,
    host {name} NOT NULL,
    PRIMARY KEY (aggregate_id, host)
);
CREATE INDEX nv_aggregate_hosts_host ON nv_aggregate_hosts (host);
CREATE TABLE nv_aggregate_metadata (
    aggregate_id {bigint} NOT NULL,
    meta_key {name} NOT NULL,
    meta_value {name} NOT NULL,
    PRIMARY KEY (aggregate_id, meta_key)
);
INSERT INTO nv_sequences (seq_name, next_value) VALUES ('aggregates', 1)
