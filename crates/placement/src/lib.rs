//! Placement: resource providers and their trees, inventories, traits, aggregates, consumers
//! and their allocations, and the allocation-candidate search the scheduler asks before it
//! claims resources — OpenStack Placement's API, microversions 1.0 to 1.39.
//!
//! Owns the `pl_` tables and placement's default policy. The compute service uses
//! [`Placement`] in-process (allocation candidates, claims, inventory) through a trait of
//! its own; over HTTP every client speaks the upstream API. It must not depend on any other
//! service crate.

pub mod api;
pub mod candidates;
pub mod db;
pub mod manager;
pub mod model;
pub mod policy;

use std::path::PathBuf;

pub use manager::Placement;

/// Placement's schema migrations, in order.
pub fn migrations() -> &'static [ferro_db::Migration] {
    static M: [ferro_db::Migration; 1] = [ferro_db::Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    }];
    &M
}

/// Settings of the placement service.
#[derive(Clone, Debug, Default)]
pub struct PlacementConfig {
    /// An oslo.policy YAML file overriding default rules.
    pub policy_file: Option<PathBuf>,
    /// The project and user recorded for allocations written before 1.8, which carry
    /// none (upstream's `incomplete_consumer_project_id` / `_user_id`).
    pub incomplete_consumer_project_id: String,
    pub incomplete_consumer_user_id: String,
}

impl PlacementConfig {
    /// Upstream's defaults.
    pub fn new() -> Self {
        PlacementConfig {
            policy_file: None,
            incomplete_consumer_project_id: "00000000-0000-0000-0000-000000000000".into(),
            incomplete_consumer_user_id: "00000000-0000-0000-0000-000000000000".into(),
        }
    }
}
