//! The ring as servers read it: partition → devices, and the hash that picks the partition.

use md5::Digest as _;
use serde::{Deserialize, Serialize};

use crate::{Device, RingError};

/// The ring file's magic and format version.
const MAGIC: &[u8; 4] = b"FRNG";
const FORMAT: u16 = 1;

/// The cluster's secret salt around every hashed path (Swift's `swift_hash_path_prefix` and
/// `swift_hash_path_suffix` from `/etc/swift/swift.conf`). Every node must use the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashPath {
    pub prefix: String,
    pub suffix: String,
}

impl HashPath {
    pub fn new(prefix: &str, suffix: &str) -> Self {
        HashPath {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        }
    }

    /// md5 of `prefix + "/" + join("/", [account, container, object]) + suffix`, the parts
    /// present only (Swift's `hash_path` in `swift/common/utils`).
    pub fn hash(&self, account: &str, container: Option<&str>, object: Option<&str>) -> [u8; 16] {
        let mut h = md5::Md5::new();
        h.update(self.prefix.as_bytes());
        h.update(b"/");
        h.update(account.as_bytes());
        for part in [container, object].into_iter().flatten() {
            h.update(b"/");
            h.update(part.as_bytes());
        }
        h.update(self.suffix.as_bytes());
        h.finalize().into()
    }

    /// The hash as 32 lowercase hex digits (the object's directory name on disk).
    pub fn hash_hex(&self, account: &str, container: Option<&str>, object: Option<&str>) -> String {
        self.hash(account, container, object)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: u64,
    part_power: u8,
    replicas: usize,
    devs: Vec<Option<Device>>,
}

/// A built ring: for each replica, the device of each partition.
#[derive(Clone, Debug, PartialEq)]
pub struct Ring {
    /// The builder's version when this ring was written; servers reload on a change.
    pub version: u64,
    pub part_power: u8,
    devs: Vec<Option<Device>>,
    replica2part2dev: Vec<Vec<u32>>,
}

impl Ring {
    pub(crate) fn from_parts(
        version: u64,
        part_power: u8,
        devs: Vec<Option<Device>>,
        replica2part2dev: Vec<Vec<u32>>,
    ) -> Ring {
        Ring {
            version,
            part_power,
            devs,
            replica2part2dev,
        }
    }

    pub fn replicas(&self) -> usize {
        self.replica2part2dev.len()
    }

    pub fn partitions(&self) -> usize {
        1 << self.part_power
    }

    /// The ring's devices.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devs.iter().flatten()
    }

    /// The partition of a path: the top `part_power` bits of its hash read big-endian (Swift's
    /// `Ring.get_part`).
    pub fn get_part(
        &self,
        hash_path: &HashPath,
        account: &str,
        container: Option<&str>,
        object: Option<&str>,
    ) -> u32 {
        let key = hash_path.hash(account, container, object);
        let top = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        top >> (32 - u32::from(self.part_power))
    }

    /// The primary devices of `part`, each once (a device holding two replicas is listed
    /// once, as upstream's `get_part_nodes`).
    pub fn get_part_nodes(&self, part: u32) -> Vec<&Device> {
        let mut out: Vec<&Device> = Vec::with_capacity(self.replicas());
        for row in &self.replica2part2dev {
            let Some(d) = row
                .get(part as usize)
                .and_then(|&id| self.devs.get(id as usize))
                .and_then(Option::as_ref)
            else {
                continue;
            };
            if !out.iter().any(|o| o.id == d.id) {
                out.push(d);
            }
        }
        out
    }

    /// The partition and primary devices of a path.
    pub fn get_nodes(
        &self,
        hash_path: &HashPath,
        account: &str,
        container: Option<&str>,
        object: Option<&str>,
    ) -> (u32, Vec<&Device>) {
        let part = self.get_part(hash_path, account, container, object);
        (part, self.get_part_nodes(part))
    }

    /// Handoff devices for `part`, in the order a writer should try them when a primary is
    /// down: first devices in regions, then zones, then hosts the primaries do not use, each
    /// group in a per-partition order so handoff load spreads over the cluster.
    // TODO-compat: upstream's `get_more_nodes` walks the ring from a hashed start instead;
    // only the preference for unused tiers is the same.
    pub fn get_more_nodes(&self, part: u32) -> Vec<&Device> {
        let primaries = self.get_part_nodes(part);
        let mut rest: Vec<&Device> = self
            .devices()
            .filter(|d| d.weight > 0.0 && !primaries.iter().any(|p| p.id == d.id))
            .collect();
        let key = |d: &Device| {
            let new_region = !primaries.iter().any(|p| p.region == d.region);
            let new_zone = !primaries
                .iter()
                .any(|p| p.region == d.region && p.zone == d.zone);
            let new_host = !primaries.iter().any(|p| p.ip == d.ip);
            let spread = crate::builder_mix(u64::from(part) << 32 | u64::from(d.id));
            (
                std::cmp::Reverse(new_region),
                std::cmp::Reverse(new_zone),
                std::cmp::Reverse(new_host),
                spread,
            )
        };
        rest.sort_by_key(|d| key(d));
        rest
    }

    /// The ring file's bytes: magic, format, a JSON header (version, part power, replicas,
    /// devices), then each replica's partition→device table as little-endian u32s.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&Header {
            version: self.version,
            part_power: self.part_power,
            replicas: self.replicas(),
            devs: self.devs.clone(),
        })
        .unwrap_or_default();
        let mut out =
            Vec::with_capacity(10 + header.len() + self.replicas() * self.partitions() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_be_bytes());
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        for row in &self.replica2part2dev {
            for d in row {
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        out
    }

    /// Parses a ring file's bytes; `path` only names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Ring, RingError> {
        let bad = |reason: &str| RingError::Format {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        if bytes.len() < 10 || &bytes[..4] != MAGIC {
            return Err(bad("no ring magic"));
        }
        let format = u16::from_be_bytes([bytes[4], bytes[5]]);
        if format != FORMAT {
            return Err(bad(&format!("ring format {format} is not {FORMAT}")));
        }
        let len = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
        let header_end = 10usize
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad("truncated header"))?;
        let header: Header =
            serde_json::from_slice(&bytes[10..header_end]).map_err(|e| bad(&e.to_string()))?;
        if !(1..=24).contains(&header.part_power) || header.replicas == 0 {
            return Err(bad("bad part power or replica count"));
        }
        let parts = 1usize << header.part_power;
        let body = &bytes[header_end..];
        if body.len() != header.replicas * parts * 4 {
            return Err(bad("assignment size does not match the header"));
        }
        let mut replica2part2dev = Vec::with_capacity(header.replicas);
        for chunk in body.chunks_exact(parts * 4) {
            let row: Vec<u32> = chunk
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if row.iter().any(|&d| {
                header
                    .devs
                    .get(d as usize)
                    .and_then(Option::as_ref)
                    .is_none()
            }) {
                return Err(bad("a partition points at no device"));
            }
            replica2part2dev.push(row);
        }
        Ok(Ring {
            version: header.version,
            part_power: header.part_power,
            devs: header.devs,
            replica2part2dev,
        })
    }

    /// Reads a ring file.
    pub fn load(path: &std::path::Path) -> Result<Ring, RingError> {
        let bytes = std::fs::read(path).map_err(|source| RingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ring::from_bytes(&bytes, &path.display().to_string())
    }

    /// Writes the ring file atomically.
    pub fn save(&self, path: &std::path::Path) -> Result<(), RingError> {
        crate::write_atomically(path, &self.to_bytes())
    }
}
