-- A shelved server's snapshot (upstream keeps these in system_metadata as
-- `shelved_image_id` and `shelved_at`): unshelve builds from the image and deletes it,
-- deleting the server deletes it too.
ALTER TABLE nv_instances ADD COLUMN shelved_image_id {text};
ALTER TABLE nv_instances ADD COLUMN shelved_at {bigint}
