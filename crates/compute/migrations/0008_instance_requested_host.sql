-- The host an admin asked the server onto (`availability_zone` `zone:host[:node]`, Nova's
-- forced host in the request spec): the scheduler considers no other host.
ALTER TABLE nv_instances ADD COLUMN requested_host {text}
