//! The Swift ring: which devices hold each partition of the account, container and object
//! namespaces.
//!
//! Owns the [`RingBuilder`] (what `swift-ring-builder` edits: devices, weights, the
//! partition assignment and when each partition last moved), the [`Ring`] the servers read
//! (a versioned, compact file), and the hash that maps `/account/container/object` to a
//! partition. It is pure: the only I/O is reading and writing those two files. It must not
//! know about HTTP, disks' contents or any service.

mod builder;
mod ring;

pub(crate) use builder::mix as builder_mix;
pub use builder::{RebalanceReport, RingBuilder};
pub use ring::{HashPath, Ring};
use serde::{Deserialize, Serialize};

/// One storage device (a disk on a storage node) as the ring knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Index in the ring's device table; never reused while the device is in the builder.
    pub id: u32,
    pub region: u32,
    pub zone: u32,
    pub ip: String,
    pub port: u16,
    /// The device's directory name under the node's devices root (`sdb1`).
    pub device: String,
    /// Relative capacity: a device of weight 200 holds twice the partitions of one of 100.
    pub weight: f64,
    /// Free-form operator notes (`swift-ring-builder ... _meta`).
    #[serde(default)]
    pub meta: String,
}

/// What a ring operation can refuse.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("invalid ring parameters: {0}")]
    Invalid(String),
    #[error("device {0} does not exist")]
    NoSuchDevice(u32),
    #[error("a device already exists at {0}")]
    DuplicateDevice(String),
    #[error("the ring has no device with a weight above zero")]
    NoDevices,
    #[error("ring file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ring file {path} is not a ring: {reason}")]
    Format { path: String, reason: String },
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader sees the old
/// file or the new one, never half of it.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), RingError> {
    use std::io::Write as _;
    let io = |source| RingError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}
