-- Each project's auto-allocated topology (get-me-a-network): its network and router.
CREATE TABLE net_auto_allocated (
    project_id {id} PRIMARY KEY,
    network_id {id} NOT NULL,
    router_id {id} NOT NULL
)
