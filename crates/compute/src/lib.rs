//! Nova's compute API (v2.1 with microversions up to upstream's newest): version discovery,
//! flavors (extra specs, access), key pairs, quotas and limits, availability zones, the
//! service registry, hypervisors, host aggregates ([`aggregates`]) and servers (create,
//! show, list, update, delete, power and lock actions), plus the conductor and scheduler ([`conductor`], [`scheduler`]) that
//! place servers through placement and talk to compute agents over the bus.
//!
//! Owns the `nv_` tables and Nova's default policy. It learns who is calling only through the
//! `TokenValidator` the binary installs with `ferro_http::layers`, and asks identity whether a
//! project exists over HTTP (`ferro-client`), as upstream does; it must not depend on any
//! other service crate; placement and the image API are reached over HTTP, agents over the
//! bus with `ferro-api-types` contracts ([`servers::Links`], set by [`Compute::connect`]).

pub mod aggregates;
pub mod api;
pub mod conductor;
pub mod db;
pub mod external_events;
pub mod fault;
pub mod images_proxy;
pub mod instance_actions;
pub mod interfaces;
pub mod keys;
pub mod manager;
pub mod metadata_api;
pub mod microversion;
pub mod migrations;
pub mod model;
pub mod policy;
pub mod ports;
pub mod quota;
pub mod rebuild;
pub mod resize;
pub mod scheduler;
pub mod schemas;
pub mod security_groups_proxy;
pub mod server_groups;
pub mod server_meta;
pub mod servers;
pub mod servers_api;
pub mod shelve;
pub mod snapshot;
pub mod usage;
pub mod validation;

use std::path::PathBuf;
use std::time::Duration;

pub use manager::Compute;

/// Compute's schema migrations, in order.
pub fn migrations() -> &'static [ferro_db::Migration] {
    static M: [ferro_db::Migration; 12] = [
        ferro_db::Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        ferro_db::Migration {
            version: 2,
            name: "servers",
            sql: include_str!("../migrations/0002_servers.sql"),
        },
        ferro_db::Migration {
            version: 3,
            name: "server_groups",
            sql: include_str!("../migrations/0003_server_groups.sql"),
        },
        ferro_db::Migration {
            version: 4,
            name: "instance_actions",
            sql: include_str!("../migrations/0004_instance_actions.sql"),
        },
        ferro_db::Migration {
            version: 5,
            name: "migrations",
            sql: include_str!("../migrations/0005_migrations.sql"),
        },
        ferro_db::Migration {
            version: 6,
            name: "instance_networks",
            sql: include_str!("../migrations/0006_instance_networks.sql"),
        },
        ferro_db::Migration {
            version: 7,
            name: "instance_password",
            sql: include_str!("../migrations/0007_instance_password.sql"),
        },
        ferro_db::Migration {
            version: 8,
            name: "instance_requested_host",
            sql: include_str!("../migrations/0008_instance_requested_host.sql"),
        },
        ferro_db::Migration {
            version: 9,
            name: "compute_node_cpu_info",
            sql: include_str!("../migrations/0009_compute_node_cpu_info.sql"),
        },
        ferro_db::Migration {
            version: 10,
            name: "aggregates",
            sql: include_str!("../migrations/0010_aggregates.sql"),
        },
        ferro_db::Migration {
            version: 11,
            name: "instance_requested_zone",
            sql: include_str!("../migrations/0011_instance_requested_zone.sql"),
        },
        ferro_db::Migration {
            version: 12,
            name: "instance_shelved",
            sql: include_str!("../migrations/0012_instance_shelved.sql"),
        },
    ];
    &M
}

/// Settings of the compute service.
#[derive(Clone, Debug)]
pub struct ComputeConfig {
    /// Public base URL of this API without the version (`http://127.0.0.1:8774`); links
    /// are built on it.
    pub public_url: String,
    /// An oslo.policy YAML file overriding default rules.
    pub policy_file: Option<PathBuf>,
    /// Identity's base URL, to check that projects named in requests exist; `None` skips
    /// the check (as upstream does when it cannot reach keystone).
    pub identity_url: Option<String>,
    /// Default quota limits.
    pub quota_defaults: quota::QuotaDefaults,
    /// Hosts a build may be tried on before the server goes to ERROR (`max_attempts`).
    pub max_attempts: i64,
    /// How long a server may stay in a transitional task state before the sweep acts.
    pub task_timeout: Duration,
    /// How often the conductor's sweep runs.
    pub sweep_interval: Duration,
    /// The scheduler chooses at random among this many best weighed hosts (Nova's
    /// `[filter_scheduler] host_subset_size`).
    pub host_subset_size: usize,
    /// How long the scheduler's host view is trusted before a decision refreshes it.
    pub scheduler_view_ttl: Duration,
    /// Seconds a shelved server stays on its host before the sweep offloads it (Nova's
    /// `shelved_offload_time`): 0 offloads at once, a negative value never.
    pub shelved_offload_time: i64,
}

impl ComputeConfig {
    /// Upstream's defaults, links on `public_url`.
    pub fn new(public_url: &str) -> Self {
        ComputeConfig {
            public_url: public_url.trim_end_matches('/').to_string(),
            policy_file: None,
            identity_url: None,
            quota_defaults: quota::QuotaDefaults::default(),
            max_attempts: 3,
            task_timeout: Duration::from_secs(600),
            sweep_interval: conductor::SWEEP_INTERVAL,
            host_subset_size: scheduler::HOST_SUBSET_SIZE,
            scheduler_view_ttl: scheduler::VIEW_TTL,
            shelved_offload_time: 0,
        }
    }
}
