//! Swift object storage: the proxy API (`/v1/AUTH_<project>/<container>/<object>`) and the
//! account, container and object storage behind it.
//!
//! Owns the objects' files on the ring's devices, the account and container databases, and
//! Swift's access rules (Keystone operator roles, container ACLs). It learns who is calling
//! only through the `TokenValidator` the binary hands to [`api::router`]; it must not depend
//! on any other service crate. The ring itself is `ferro-object-ring`.

pub mod api;
pub mod bulk;
pub mod db;
pub mod disk;
pub mod large;
pub mod manager;
pub mod model;
pub mod node;
pub mod policy;
pub mod replication;
pub mod server;
pub mod tempurl;

use std::path::{Path, PathBuf};

use ferro_object_ring::HashPath;
pub use manager::ObjectStore;

/// Settings of the object storage service.
#[derive(Clone, Debug)]
pub struct ObjectStoreConfig {
    /// Where the ring files live (`<state_dir>/rings`).
    pub rings_dir: PathBuf,
    /// The directory holding one directory per device (`<state_dir>/object-devices`).
    pub devices_root: PathBuf,
    /// The cluster's hash path salt (`swift_hash_path_prefix` / `_suffix`).
    pub hash_path: HashPath,
    /// Rings built on first start when none exist: these devices, one zone each.
    pub devices: Vec<String>,
    /// Whether rings are built on first start when none exist (all-in-one); a storage node
    /// waits for the operator's ring files instead.
    pub build_rings: bool,
    /// The `ip:port`s of ring devices this process serves from `devices_root`; devices at
    /// any other address are reached through their node's storage server.
    pub node_addresses: Vec<String>,
    pub replicas: usize,
    pub part_power: u8,
    /// Roles that make a user an owner of their project's account (keystoneauth's
    /// `operator_roles`).
    pub operator_roles: Vec<String>,
    /// The role that may act on every account (keystoneauth's `reseller_admin_role`).
    pub reseller_admin_role: String,
    /// Public base URL of the proxy (`http://127.0.0.1:8080`).
    pub public_url: String,
    /// How often the expirer looks for objects past their `X-Delete-At`.
    pub expirer_interval: std::time::Duration,
    /// How often the ring files are checked for a newer version (servers reload them).
    pub ring_check_interval: std::time::Duration,
    /// Pause between object replicator passes.
    pub replicator_interval: std::time::Duration,
    /// Pause between object auditor passes.
    pub auditor_interval: std::time::Duration,
    /// The auditor's read rate limit (0: none).
    pub auditor_bytes_per_second: u64,
}

impl ObjectStoreConfig {
    /// All-in-one defaults under `state_dir`: three devices, three replicas, 2^10 partitions.
    pub fn new(state_dir: &Path, public_url: &str) -> Self {
        ObjectStoreConfig {
            rings_dir: state_dir.join("rings"),
            devices_root: state_dir.join("object-devices"),
            hash_path: HashPath::new("", "ferrostack"),
            devices: vec!["d1".into(), "d2".into(), "d3".into()],
            build_rings: true,
            // The address the rings built on first start give their devices.
            node_addresses: vec!["127.0.0.1:6200".into()],
            replicas: 3,
            part_power: 10,
            operator_roles: vec!["admin".into(), "member".into(), "swiftoperator".into()],
            reseller_admin_role: "ResellerAdmin".into(),
            public_url: public_url.trim_end_matches('/').to_string(),
            expirer_interval: std::time::Duration::from_secs(30),
            ring_check_interval: std::time::Duration::from_secs(5),
            replicator_interval: std::time::Duration::from_secs(30),
            auditor_interval: std::time::Duration::from_secs(30),
            auditor_bytes_per_second: 10_000_000,
        }
    }
}

/// The object storage service's background work: the object replicator and auditor over
/// the local devices (see [`replication`]), the account updater (see
/// [`ObjectStore::container_update`]) and the expirer, which deletes objects past
/// their `X-Delete-At` (Swift's `object-expirer`).
pub fn workers(store: std::sync::Arc<ObjectStore>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut all = node_workers(store.clone());
    let updater = store.clone();
    all.push(tokio::spawn(async move { updater.account_updater().await }));
    all.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(store.config.expirer_interval);
        loop {
            tick.tick().await;
            match store.expire_due().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(objects = n, "expired objects deleted"),
                Err(e) => tracing::warn!(status = e.status, "object expirer pass failed"),
            }
        }
    }));
    all
}

/// A storage node's background work: the object replicator and auditor over its devices
/// (the expirer runs beside the proxy, whose queue it reads).
pub fn node_workers(store: std::sync::Arc<ObjectStore>) -> Vec<tokio::task::JoinHandle<()>> {
    let replicator = store.clone();
    let auditor = store;
    vec![
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(replicator.config.replicator_interval);
            loop {
                tick.tick().await;
                match replicator.replicate_once().await {
                    Ok(s) if s == replication::ReplicationStats::default() => {}
                    Ok(s) => tracing::info!(stats = ?s, "object replication pass"),
                    Err(e) => tracing::warn!(error = %e, "object replication pass failed"),
                }
            }
        }),
        tokio::spawn(async move {
            loop {
                match auditor.audit_once().await {
                    Ok(s) if s.quarantined > 0 => tracing::warn!(stats = ?s, "object audit pass"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "object audit pass failed"),
                }
                tokio::time::sleep(auditor.config.auditor_interval).await;
            }
        }),
    ]
}
