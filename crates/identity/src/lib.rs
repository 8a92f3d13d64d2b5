//! Keystone v3: identity, resources, assignments, catalog and Fernet tokens.
//!
//! Owns users, groups, projects and domains, roles and their assignments, the service
//! catalog, application credentials and the tokens made from all of these. Other services
//! see it only through its public API (and, in one process, through [`Identity`] as a
//! `TokenValidator`); it must not know about any of them.

pub mod api;
pub mod bootstrap;
pub mod db;
pub mod ext;
pub mod limits;
pub mod manager;
pub mod model;
pub mod policy;
pub mod token;

use std::path::PathBuf;

pub use manager::Identity;

/// Identity's background work: picking up revocation events and data changes other
/// processes wrote and key rotations (every 2 s), and pruning events older than any token they could still match (hourly).
pub fn workers(identity: std::sync::Arc<Identity>) -> Vec<tokio::task::JoinHandle<()>> {
    let refresher = {
        let identity = identity.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                if let Err(e) = identity.refresh_revocations().await {
                    tracing::warn!(error = %e, "revocation refresh failed");
                }
                if let Err(e) = identity.refresh_changes().await {
                    tracing::warn!(error = %e, "change counter refresh failed");
                }
                // `ferrostack fernet rotate` (or a key distribution) changed the keys: tokens
                // of a key rotated out must stop validating, cached or not.
                match identity.reload_keys_if_changed() {
                    Ok(true) => identity.changed(),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "fernet key reload failed"),
                }
            }
        })
    };
    let publisher = {
        let identity = identity.clone();
        tokio::spawn(async move { identity.publish_changes().await })
    };
    let pruner = tokio::spawn(async move {
        loop {
            // A token lives at most token_expiration from its issue; an event older than
            // that (plus an hour of slack) can match no live token.
            let horizon = (identity.config.token_expiration + 3600) * 1_000_000;
            let before = ferro_common::time::now_micros() - horizon;
            if let Err(e) = db::revocations_prune(&mut &identity.db, before).await {
                tracing::warn!(error = %e, "revocation prune failed");
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
    vec![refresher, publisher, pruner]
}

/// Identity's schema migrations, in order.
pub fn migrations() -> &'static [ferro_db::Migration] {
    static M: [ferro_db::Migration; 4] = [
        ferro_db::Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        ferro_db::Migration {
            version: 2,
            name: "extensions",
            sql: include_str!("../migrations/0002_extensions.sql"),
        },
        ferro_db::Migration {
            version: 3,
            name: "change_counter",
            sql: include_str!("../migrations/0003_change_counter.sql"),
        },
        ferro_db::Migration {
            version: 4,
            name: "unified_limits",
            sql: include_str!("../migrations/0004_unified_limits.sql"),
        },
    ];
    &M
}

/// Settings of the identity service.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// The Fernet key repository directory.
    pub key_repository: PathBuf,
    /// Token lifetime in seconds (keystone `[token] expiration`, default 3600).
    pub token_expiration: i64,
    /// bcrypt cost for new password hashes (keystone default 12).
    pub bcrypt_cost: u32,
    /// Public base URL of this API (`http://127.0.0.1:5000`), used in links.
    pub public_url: String,
    /// Keystone's `[fernet_tokens] max_active_keys`.
    pub max_active_keys: usize,
    /// An oslo.policy YAML file overriding default rules.
    pub policy_file: Option<PathBuf>,
    /// The region whose limits [`Identity::effective_limit`] reads (oslo.limit finds it
    /// from its endpoint); `None` reads region-less registrations first, then any region.
    pub limits_region: Option<String>,
}

impl IdentityConfig {
    /// Defaults as upstream's, keys under `state_dir/fernet-keys`.
    pub fn new(state_dir: &std::path::Path, public_url: &str) -> Self {
        IdentityConfig {
            key_repository: state_dir.join("fernet-keys"),
            token_expiration: 3600,
            bcrypt_cost: 12,
            public_url: public_url.trim_end_matches('/').to_string(),
            max_active_keys: 3,
            policy_file: None,
            limits_region: None,
        }
    }
}
