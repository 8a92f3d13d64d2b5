//! Glance v2: images, their data, their tags and their members (sharing).
//!
//! Owns image records (`gl_` tables), the bytes behind them (a [`store::Store`], files under
//! the state directory by default) and Glance's default policy. It learns who is calling only
//! through the `TokenValidator` the binary installs with `ferro_http::layers`; it must not
//! depend on any other service crate.

pub mod api;
pub mod db;
pub mod manager;
pub mod model;
pub mod policy;
pub mod store;

use std::path::PathBuf;

pub use manager::Images;

/// Image's schema migrations, in order.
pub fn migrations() -> &'static [ferro_db::Migration] {
    static M: [ferro_db::Migration; 1] = [ferro_db::Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    }];
    &M
}

/// Settings of the image service.
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// Where the file store keeps image data (`<state_dir>/images`).
    pub data_dir: PathBuf,
    /// Public base URL of this API (`http://127.0.0.1:9292`), used in version links.
    pub public_url: String,
    /// An oslo.policy YAML file overriding default rules.
    pub policy_file: Option<PathBuf>,
}

impl ImageConfig {
    /// Defaults as upstream's, data under `state_dir/images`.
    pub fn new(state_dir: &std::path::Path, public_url: &str) -> Self {
        ImageConfig {
            data_dir: state_dir.join("images"),
            public_url: public_url.trim_end_matches('/').to_string(),
            policy_file: None,
        }
    }
}
