-- Resizes in flight and done (Nova's migrations table, resize kind): the old and the new
-- flavor as JSON, where the server was and where it went. Placement holds the source's
-- allocation under the migration's uuid until the resize is confirmed or reverted.
CREATE TABLE nv_migrations (
    uuid {id} NOT NULL PRIMARY KEY,
    internal_id {bigint} NOT NULL,
    instance_uuid {id} NOT NULL,
    source_host {name} NOT NULL,
    dest_host {name},
    old_flavor {text} NOT NULL,
    new_flavor {text} NOT NULL,
    status {id} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE INDEX nv_migrations_instance ON nv_migrations (instance_uuid);
INSERT INTO nv_sequences (seq_name, next_value) VALUES ('migrations', 1)
