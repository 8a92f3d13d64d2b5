-- Glance v2 images. Column names avoid words MariaDB reserves or may reserve
-- (image_size, is_protected, owner_id); custom properties are one JSON object of strings.
CREATE TABLE gl_images (
    id {id} NOT NULL PRIMARY KEY,
    name {name},
    status {id} NOT NULL,
    visibility {id} NOT NULL,
    owner_id {id} NOT NULL,
    disk_format {id},
    container_format {id},
    image_size {bigint},
    virtual_size {bigint},
    checksum {id},
    os_hash_algo {id},
    os_hash_value {text},
    min_disk {bigint} NOT NULL,
    min_ram {bigint} NOT NULL,
    is_protected {bool} NOT NULL,
    os_hidden {bool} NOT NULL,
    extra_properties {text} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE INDEX gl_images_owner ON gl_images (owner_id);
CREATE TABLE gl_image_tags (
    image_id {id} NOT NULL,
    tag {name} NOT NULL,
    PRIMARY KEY (image_id, tag)
);
CREATE TABLE gl_image_members (
    image_id {id} NOT NULL,
    member_id {id} NOT NULL,
    status {id} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    PRIMARY KEY (image_id, member_id)
);
CREATE INDEX gl_image_members_member ON gl_image_members (member_id)
