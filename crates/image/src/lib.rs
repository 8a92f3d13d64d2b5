//! Glance v2: images, their data, their tags and their members (sharing).
//!
//! Owns image records (`gl_` tables), the bytes behind them (a [`store::Store`], files under
//! the state directory by default) and Glance's default policy. It learns who is calling only
//! through the `TokenValidator` the binary installs with `ferro_http::layers`; it must not
//! depend on any other service crate.

pub mod api;
pub mod db;
pub mod import;
pub mod manager;
pub mod metadefs;
pub mod model;
pub mod policy;
pub mod quota;
pub mod store;

use std::path::PathBuf;

pub use manager::Images;

/// Image's schema migrations, in order.
pub fn migrations() -> &'static [ferro_db::Migration] {
    static M: [ferro_db::Migration; 3] = [
        ferro_db::Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        ferro_db::Migration {
            version: 2,
            name: "metadefs",
            sql: include_str!("../migrations/0002_metadefs.sql"),
        },
        ferro_db::Migration {
            version: 3,
            name: "tasks",
            sql: include_str!("../migrations/0003_tasks.sql"),
        },
    ];
    &M
}

/// Settings of the image service.
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// Where the file store keeps image data (`<state_dir>/images`).
    pub data_dir: PathBuf,
    /// Where staged data waits for its import (`<state_dir>/image-staging`, Glance's
    /// `node_staging_uri`).
    pub staging_dir: PathBuf,
    /// Public base URL of this API (`http://127.0.0.1:9292`), used in version links.
    pub public_url: String,
    /// An oslo.policy YAML file overriding default rules.
    pub policy_file: Option<PathBuf>,
    /// Largest image accepted, in bytes (Glance's `image_size_cap`).
    pub size_cap: i64,
    /// Ports a `web-download` import may fetch from; empty allows any.
    pub web_download_allowed_ports: Vec<u16>,
}

/// Glance's default `image_size_cap`: 1 TiB.
pub const DEFAULT_SIZE_CAP: i64 = 1 << 40;

impl ImageConfig {
    /// Defaults as upstream's, data under `state_dir/images`.
    pub fn new(state_dir: &std::path::Path, public_url: &str) -> Self {
        ImageConfig {
            data_dir: state_dir.join("images"),
            staging_dir: state_dir.join("image-staging"),
            public_url: public_url.trim_end_matches('/').to_string(),
            policy_file: None,
            size_cap: DEFAULT_SIZE_CAP,
            web_download_allowed_ports: vec![80, 443],
        }
    }
}

/// The image service's background work: the sweep that fails import tasks a dead process
/// left behind, at start and then every minute.
pub fn workers(images: std::sync::Arc<Images>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            match images.sweep_stale_tasks().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(tasks = n, "failed interrupted image import tasks"),
                Err(e) => tracing::warn!(error = %e, "image task sweep failed"),
            }
        }
    })]
}
