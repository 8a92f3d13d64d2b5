-- Glance tasks: interoperable import (api_image_import) and the legacy tasks API (import).
-- Input and result are JSON objects; expires_at is set once the task ends.
CREATE TABLE gl_tasks (
    id {id} NOT NULL PRIMARY KEY,
    task_type {id} NOT NULL,
    status {id} NOT NULL,
    owner_id {id} NOT NULL,
    user_id {id},
    request_id {name},
    image_id {id},
    task_input {text} NOT NULL,
    task_result {text},
    message {text} NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    expires_at {bigint}
);
CREATE INDEX gl_tasks_image ON gl_tasks (image_id);
CREATE INDEX gl_tasks_status ON gl_tasks (status)
