//! `ferrostack ring`: the operator's ring builder, as `swift-ring-builder` does it.
//!
//! Each of the account, container and object rings lives in a directory (default
//! `<state_dir>/rings`) as `<name>.builder` (what is edited) and `<name>.ring` (what servers
//! read, written by `rebalance`). Every function returns the text to print.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use ferro_object_ring::{Ring, RingBuilder};

/// The rings a Swift cluster has.
pub const RING_NAMES: [&str; 3] = ["account", "container", "object"];

fn check_name(name: &str) -> anyhow::Result<()> {
    if RING_NAMES.contains(&name) {
        Ok(())
    } else {
        bail!("unknown ring {name:?}: expected account, container or object")
    }
}

/// `<dir>/<name>.builder`.
pub fn builder_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.builder"))
}

/// `<dir>/<name>.ring`.
pub fn ring_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.ring"))
}

/// `ring <name> create <part_power> <replicas> <min_part_hours>`; refuses to overwrite.
pub fn create(
    dir: &Path,
    name: &str,
    part_power: u8,
    replicas: usize,
    min_part_hours: u32,
) -> anyhow::Result<String> {
    check_name(name)?;
    std::fs::create_dir_all(dir).with_context(|| format!("ring dir {}", dir.display()))?;
    let path = builder_path(dir, name);
    if path.exists() {
        bail!("{} exists already", path.display());
    }
    RingBuilder::new(part_power, replicas, min_part_hours)?.save(&path)?;
    Ok(format!(
        "created {} with 2^{part_power} partitions, {replicas} replicas, min_part_hours {min_part_hours}",
        path.display()
    ))
}

/// A device spec as swift-ring-builder takes it: `r<region>z<zone>-<ip>:<port>/<device>`.
pub fn parse_device(spec: &str) -> anyhow::Result<(u32, u32, String, u16, String)> {
    let bad = || {
        anyhow::anyhow!("invalid device {spec:?}: expected r<region>z<zone>-<ip>:<port>/<device>")
    };
    let rest = spec.strip_prefix('r').ok_or_else(bad)?;
    let (region, rest) = rest.split_once('z').ok_or_else(bad)?;
    let (zone, rest) = rest.split_once('-').ok_or_else(bad)?;
    let (addr, device) = rest.split_once('/').ok_or_else(bad)?;
    let (ip, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    Ok((
        region.parse().map_err(|_| bad())?,
        zone.parse().map_err(|_| bad())?,
        ip.to_string(),
        port.parse().map_err(|_| bad())?,
        device.to_string(),
    ))
}

/// `ring <name> add r1z1-10.0.0.1:6200/sdb1 100`.
pub fn add(dir: &Path, name: &str, spec: &str, weight: f64) -> anyhow::Result<String> {
    check_name(name)?;
    let (region, zone, ip, port, device) = parse_device(spec)?;
    let path = builder_path(dir, name);
    let mut b = RingBuilder::load(&path)?;
    let id = b.add_device(region, zone, &ip, port, &device, weight)?;
    b.save(&path)?;
    Ok(format!(
        "device d{id} r{region}z{zone}-{ip}:{port}/{device} weight {weight} added to {}",
        path.display()
    ))
}

/// `ring <name> set-weight <id> <weight>`.
pub fn set_weight(dir: &Path, name: &str, id: u32, weight: f64) -> anyhow::Result<String> {
    check_name(name)?;
    let path = builder_path(dir, name);
    let mut b = RingBuilder::load(&path)?;
    b.set_weight(id, weight)?;
    b.save(&path)?;
    Ok(format!("device d{id} weight set to {weight}"))
}

/// `ring <name> remove <id>`: the device's partitions move at the next rebalance.
pub fn remove(dir: &Path, name: &str, id: u32) -> anyhow::Result<String> {
    check_name(name)?;
    let path = builder_path(dir, name);
    let mut b = RingBuilder::load(&path)?;
    b.remove_device(id)?;
    b.save(&path)?;
    Ok(format!(
        "device d{id} marked for removal; its partitions move at the next rebalance"
    ))
}

/// `ring <name> rebalance`: reassigns partitions and writes the ring file.
pub fn rebalance(dir: &Path, name: &str) -> anyhow::Result<String> {
    check_name(name)?;
    let path = builder_path(dir, name);
    let mut b = RingBuilder::load(&path)?;
    let report = b.rebalance()?;
    b.save(&path)?;
    let ring = b.ring()?;
    ring.save(&ring_path(dir, name))?;
    let mut out = format!(
        "reassigned {} partition replicas; balance is now {:.2}%",
        report.moved, report.balance
    );
    if report.held > 0 {
        let _ = write!(
            out,
            "\n{} partitions could not move: the time between rebalances must be at least min_part_hours ({})",
            report.held, b.min_part_hours
        );
    }
    let _ = write!(
        out,
        "\nring version {} written to {}",
        ring.version,
        ring_path(dir, name).display()
    );
    Ok(out)
}

/// `ring <name> show`: the builder's parameters and devices, as swift-ring-builder prints.
pub fn show(dir: &Path, name: &str) -> anyhow::Result<String> {
    check_name(name)?;
    let path = builder_path(dir, name);
    let b = RingBuilder::load(&path)?;
    let parts = b.parts_per_device();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}, build version {}\n{} partitions, {} replicas, {} devices, {:.2} balance\n\
         The minimum number of hours before a partition can be reassigned is {}",
        path.display(),
        b.version,
        b.partitions(),
        b.replicas,
        b.devices().count(),
        b.balance(),
        b.min_part_hours,
    );
    let _ = writeln!(
        out,
        "Devices:   id region zone      ip address  port  name  weight partitions"
    );
    for d in b.devices() {
        let _ = writeln!(
            out,
            "{:>13} {:>6} {:>4} {:>15} {:>5} {:>5} {:>7.2} {:>10}",
            d.id,
            d.region,
            d.zone,
            d.ip,
            d.port,
            d.device,
            d.weight,
            parts.get(d.id as usize).copied().unwrap_or(0)
        );
    }
    if let Ok(ring) = Ring::load(&ring_path(dir, name)) {
        let _ = write!(out, "ring file version {}", ring.version);
        if b.needs_rebalance() {
            out.push_str(" (the builder has changes: rebalance to write them)");
        }
    } else {
        out.push_str("no ring file yet: rebalance to write one");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_add_rebalance_show_writes_a_ring() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        create(d, "object", 8, 3, 1).unwrap();
        assert!(create(d, "object", 8, 3, 1).is_err(), "no overwrite");
        assert!(create(d, "objects", 8, 3, 1).is_err());
        for (z, dev) in [(1, "sdb1"), (2, "sdc1"), (3, "sdd1")] {
            add(d, "object", &format!("r1z{z}-127.0.0.1:6200/{dev}"), 100.0).unwrap();
        }
        assert!(add(d, "object", "z1-127.0.0.1:6200/x", 1.0).is_err());
        assert!(add(d, "object", "r1z1-127.0.0.1:6200/sdb1", 1.0).is_err());
        let out = rebalance(d, "object").unwrap();
        assert!(out.contains("reassigned 768"), "{out}");
        let ring = Ring::load(&ring_path(d, "object")).unwrap();
        assert_eq!(ring.replicas(), 3);
        let shown = show(d, "object").unwrap();
        assert!(
            shown.contains("256 partitions, 3 replicas, 3 devices"),
            "{shown}"
        );
        assert!(shown.contains("sdc1"));
        assert_eq!(
            parse_device("r2z3-[::1]:6201/d9").unwrap(),
            (2, 3, "::1".to_string(), 6201, "d9".to_string())
        );
    }
}
