-- The availability zone a create asked for (Nova's request spec `availability_zone`, shown
-- as 2.96's `pinned_availability_zone`): the scheduler keeps the server in it on every
-- later placement (reschedules, resizes). `availability_zone` is the zone of the host the
-- server is on; a server created without a zone may move between zones.
ALTER TABLE nv_instances ADD COLUMN requested_zone {text}
