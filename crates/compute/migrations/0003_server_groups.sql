-- Server groups (Nova's instance groups): one policy, its rules as JSON, and the instances
-- placed by it. Members stay listed until their group is deleted; views show only the
-- members whose instance is not deleted, as upstream does.
CREATE TABLE nv_server_groups (
    uuid {id} NOT NULL PRIMARY KEY,
    name {name} NOT NULL,
    project_id {name} NOT NULL,
    user_id {name} NOT NULL,
    policy {id} NOT NULL,
    rules {text} NOT NULL,
    created_at {bigint} NOT NULL
);
CREATE INDEX nv_server_groups_project ON nv_server_groups (project_id);
CREATE TABLE nv_server_group_members (
    group_uuid {id} NOT NULL,
    instance_uuid {id} NOT NULL,
    PRIMARY KEY (group_uuid, instance_uuid)
);
CREATE INDEX nv_server_group_members_instance ON nv_server_group_members (instance_uuid)
