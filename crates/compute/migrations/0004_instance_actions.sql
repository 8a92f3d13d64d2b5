-- Instance actions and their events (os-instance-actions): the API records an action per
-- request that changes a server; the conductor adds an event for each step an agent or the
-- scheduler finished, and marks the action failed ("Error") when a step failed.
CREATE TABLE nv_instance_actions (
    instance_uuid {id} NOT NULL,
    request_id {id} NOT NULL,
    action {id} NOT NULL,
    user_id {name} NOT NULL,
    project_id {name} NOT NULL,
    start_time {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    message {text},
    PRIMARY KEY (instance_uuid, request_id)
);
CREATE TABLE nv_instance_action_events (
    instance_uuid {id} NOT NULL,
    request_id {id} NOT NULL,
    event {name} NOT NULL,
    start_time {bigint} NOT NULL,
    finish_time {bigint},
    result {id},
    traceback {text},
    host {name},
    details {text}
);
CREATE INDEX nv_instance_action_events_action ON nv_instance_action_events (instance_uuid, request_id)
