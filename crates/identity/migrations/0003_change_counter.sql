-- One counter every identity process bumps after a write and polls: a change made by one
-- process drops the cached validations of the others.
CREATE TABLE ks_change (
    id {bigint} PRIMARY KEY,
    counter {bigint} NOT NULL
);
INSERT INTO ks_change (id, counter) VALUES (1, 0);
