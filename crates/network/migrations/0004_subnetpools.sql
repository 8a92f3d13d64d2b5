-- Subnet pools: prefixes that subnets are carved from.
CREATE TABLE net_subnetpools (
    id {id} PRIMARY KEY,
    project_id {id} NOT NULL,
    revision {bigint} NOT NULL,
    doc {text} NOT NULL
)
