-- The networks a server asked for at create, and the ports it got on them (Nova's
-- requested networks and instance_info_caches.network_info), both as JSON lists.
ALTER TABLE nv_instances ADD COLUMN requested_networks {text};
ALTER TABLE nv_instances ADD COLUMN network_info {text}
