//! Whole-cloud tests: FerroStack started in-process through `TestCloud`, driven over HTTP.

mod auto_allocate;
mod compute;
mod compute_admin;
mod hypervisor_details;
mod identity;
mod identity_faults;
mod identity_limits;
mod image;
mod image_import;
mod image_metadefs;
mod instance_actions;
mod metadata;
mod network;
mod network_agents;
mod object_nodes;
mod object_store;
mod placement;
mod resize;
mod scheduler;
mod scratch;
mod server_groups;
mod server_meta;
mod server_networks;
mod servers;
mod unauthorized;
mod vif_events;
