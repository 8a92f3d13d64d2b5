//! The ring builder: devices, weights and the partition assignment, rebalanced as
//! `swift-ring-builder` does.
//!
//! A rebalance first *gathers* replicas that must or should move — those on removed
//! devices, a second replica of a partition on one device, replicas sharing a region, zone
//! or host when the layout has a free one, and the excess of devices holding more than their
//! weight's share — and then *places* each gathered replica on the device that keeps the
//! partition's replicas most unique (region, then zone, then host) among the devices with
//! room, most wanted first. Only the excess moves, so adding a device moves about its share
//! and no more; a partition moved less than `min_part_hours` ago stays put (except off a
//! removed device), and at most one replica of a partition moves per rebalance, as upstream
//! (`swift/common/ring/builder.py`), so a partition always keeps a quorum where it was.

use serde::{Deserialize, Serialize};

use crate::{Device, Ring, RingError};

/// How well a device suits a new replica: unused region, zone, host; then parts wanted.
type Score = (bool, bool, bool, f64);

/// No device assigned yet.
const NONE: u32 = u32::MAX;

/// The builder file's format version.
const BUILDER_FORMAT: u32 = 1;

/// What `swift-ring-builder` edits and rebalances.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RingBuilder {
    format: u32,
    /// Bumped by every change; copied into the ring file.
    pub version: u64,
    /// The ring has `2^part_power` partitions.
    pub part_power: u8,
    pub replicas: usize,
    /// Hours a moved partition stays where it went before it may move again.
    pub min_part_hours: u32,
    /// Device table indexed by id; `None` once a removed device's partitions have moved.
    devs: Vec<Option<Device>>,
    /// Devices asked to leave: their partitions move at the next rebalance.
    removing: Vec<u32>,
    /// `assignment[replica][part]` is a device id (or `NONE` before the first rebalance).
    assignment: Vec<Vec<u32>>,
    /// Unix time in seconds at which each partition last moved (0: never).
    last_moved: Vec<u64>,
    /// Set when devices or weights changed since the last rebalance.
    dirty: bool,
}

/// The outcome of a rebalance.
#[derive(Clone, Debug, PartialEq)]
pub struct RebalanceReport {
    /// Replicas (partition copies) that changed device, initial placements included.
    pub moved: usize,
    /// Partitions that wanted to move but were held by `min_part_hours`.
    pub held: usize,
    /// The largest deviation of a device's partition count from its weight's share, in percent.
    pub balance: f64,
}

pub(crate) fn mix(mut x: u64) -> u64 {
    // splitmix64: a deterministic, well-spread tie-breaker.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The tiers a device belongs to, coarse to fine: region, zone, host.
fn tiers(d: &Device) -> [(u32, u32, &str); 3] {
    [
        (d.region, u32::MAX, ""),
        (d.region, d.zone, ""),
        (d.region, d.zone, d.ip.as_str()),
    ]
}

impl RingBuilder {
    /// A new, empty builder (`swift-ring-builder <file> create <part_power> <replicas>
    /// <min_part_hours>`).
    pub fn new(part_power: u8, replicas: usize, min_part_hours: u32) -> Result<Self, RingError> {
        // Upstream caps part_power at 32; 2^24 partitions per replica is already 64 MiB of
        // assignment, far beyond any ring this cloud builds.
        if !(1..=24).contains(&part_power) {
            return Err(RingError::Invalid(format!(
                "part_power must be between 1 and 24, not {part_power}"
            )));
        }
        if replicas == 0 || replicas > 16 {
            return Err(RingError::Invalid(format!(
                "replicas must be between 1 and 16, not {replicas}"
            )));
        }
        Ok(RingBuilder {
            format: BUILDER_FORMAT,
            version: 0,
            part_power,
            replicas,
            min_part_hours,
            devs: Vec::new(),
            removing: Vec::new(),
            assignment: Vec::new(),
            last_moved: Vec::new(),
            dirty: false,
        })
    }

    /// How many partitions the ring has.
    pub fn partitions(&self) -> usize {
        1 << self.part_power
    }

    /// The devices still in the builder (those being removed included).
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devs.iter().flatten()
    }

    /// Adds a device and returns its id. Its partitions arrive at the next rebalance.
    pub fn add_device(
        &mut self,
        region: u32,
        zone: u32,
        ip: &str,
        port: u16,
        device: &str,
        weight: f64,
    ) -> Result<u32, RingError> {
        check_weight(weight)?;
        if ip.is_empty() || device.is_empty() || device.contains('/') {
            return Err(RingError::Invalid(format!(
                "a device needs an ip and a device name without '/', not {ip:?} {device:?}"
            )));
        }
        if self
            .devices()
            .any(|d| d.ip == ip && d.port == port && d.device == device)
        {
            return Err(RingError::DuplicateDevice(format!("{ip}:{port}/{device}")));
        }
        let id = self.devs.len() as u32;
        self.devs.push(Some(Device {
            id,
            region,
            zone,
            ip: ip.to_string(),
            port,
            device: device.to_string(),
            weight,
            meta: String::new(),
        }));
        self.changed();
        Ok(id)
    }

    /// Changes a device's weight; its share changes at the next rebalance.
    pub fn set_weight(&mut self, id: u32, weight: f64) -> Result<(), RingError> {
        check_weight(weight)?;
        self.device_mut(id)?.weight = weight;
        self.changed();
        Ok(())
    }

    /// Asks a device to leave: its partitions move at the next rebalance, whatever
    /// `min_part_hours` says, and then it is gone.
    pub fn remove_device(&mut self, id: u32) -> Result<(), RingError> {
        self.device_mut(id)?;
        if !self.removing.contains(&id) {
            self.removing.push(id);
        }
        self.changed();
        Ok(())
    }

    fn device_mut(&mut self, id: u32) -> Result<&mut Device, RingError> {
        self.devs
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or(RingError::NoSuchDevice(id))
    }

    fn changed(&mut self) {
        self.dirty = true;
        self.version += 1;
    }

    fn active(&self, id: u32) -> Option<&Device> {
        if id == NONE || self.removing.contains(&id) {
            return None;
        }
        self.devs
            .get(id as usize)
            .and_then(Option::as_ref)
            .filter(|d| d.weight > 0.0)
    }

    /// Each device's share of the `partitions * replicas` slots, by weight.
    fn desired(&self) -> Vec<f64> {
        let total: f64 = (0..self.devs.len() as u32)
            .filter_map(|id| self.active(id))
            .map(|d| d.weight)
            .sum();
        let slots = (self.partitions() * self.replicas) as f64;
        (0..self.devs.len() as u32)
            .map(|id| match self.active(id) {
                Some(d) if total > 0.0 => d.weight / total * slots,
                _ => 0.0,
            })
            .collect()
    }

    /// Rebalances with the current time; see [`RingBuilder::rebalance_at`].
    pub fn rebalance(&mut self) -> Result<RebalanceReport, RingError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.rebalance_at(now)
    }

    /// Moves partitions so that every device holds its weight's share, replicas are spread
    /// as uniquely as the layout allows, and as few partitions move as possible. `now` is
    /// unix time in seconds (a parameter so tests can step through `min_part_hours`).
    pub fn rebalance_at(&mut self, now: u64) -> Result<RebalanceReport, RingError> {
        let parts = self.partitions();
        if !(0..self.devs.len() as u32).any(|id| self.active(id).is_some()) {
            return Err(RingError::NoDevices);
        }
        if self.assignment.is_empty() {
            self.assignment = vec![vec![NONE; parts]; self.replicas];
            self.last_moved = vec![0; parts];
        }
        let desired = self.desired();
        let room: Vec<usize> = desired.iter().map(|d| d.ceil() as usize).collect();
        let mut assigned = vec![0usize; self.devs.len()];
        for row in &self.assignment {
            for &d in row {
                if d != NONE {
                    assigned[d as usize] += 1;
                }
            }
        }
        let hold = u64::from(self.min_part_hours) * 3600;
        let movable = |last: u64| last == 0 || now.saturating_sub(last) >= hold;
        let mut moved_now = vec![false; parts];
        let mut gathered: Vec<(usize, usize)> = Vec::new();
        let mut held = vec![false; parts];

        // 1. Replicas on removed or zero-weight devices, and unplaced replicas, must move.
        //    A second replica on one device moves too when another device is free.
        let active_count = (0..self.devs.len() as u32)
            .filter(|&id| self.active(id).is_some())
            .count();
        for (p, moved) in moved_now.iter_mut().enumerate() {
            for r in 0..self.replicas {
                let d = self.assignment[r][p];
                let duplicate = d != NONE
                    && active_count > r
                    && (0..r).any(|earlier| self.assignment[earlier][p] == d);
                if self.active(d).is_none() || duplicate {
                    if d != NONE {
                        assigned[d as usize] -= 1;
                    }
                    self.assignment[r][p] = NONE;
                    gathered.push((p, r));
                    *moved = true;
                }
            }
        }

        // 2. Dispersion: a replica sharing a region, zone or host with another replica of its
        //    partition moves when a device with room sits in a tier the partition does not use.
        for (p, moved) in moved_now.iter_mut().enumerate() {
            if *moved {
                continue;
            }
            if let Some(r) = self.misplaced_replica(p, &assigned, &room) {
                if movable(self.last_moved[p]) {
                    let d = self.assignment[r][p];
                    assigned[d as usize] -= 1;
                    self.assignment[r][p] = NONE;
                    gathered.push((p, r));
                    *moved = true;
                } else {
                    held[p] = true;
                }
            }
        }

        // 3. Devices holding more than their share give up the excess, from partitions that
        //    may move, spread over the partition space by a fixed permutation. Partitions
        //    whose replica can land in a zone they do not use yet go first, so that shedding
        //    excess also repairs dispersion instead of undoing it.
        for id in 0..self.devs.len() {
            for pass in 0..2 {
                if assigned[id] <= room[id] {
                    break;
                }
                let start = (mix(id as u64) % parts as u64) as usize;
                for i in 0..parts {
                    if assigned[id] <= room[id] {
                        break;
                    }
                    let p = (start + i) % parts;
                    if moved_now[p] {
                        continue;
                    }
                    let Some(r) = (0..self.replicas).find(|&r| self.assignment[r][p] == id as u32)
                    else {
                        continue;
                    };
                    if !movable(self.last_moved[p]) {
                        if pass == 1 {
                            held[p] = true;
                        }
                        continue;
                    }
                    if pass == 0 && !self.has_better_home(p, r, &assigned, &room) {
                        continue;
                    }
                    assigned[id] -= 1;
                    self.assignment[r][p] = NONE;
                    gathered.push((p, r));
                    moved_now[p] = true;
                }
            }
        }

        // 3b. Rounding up each share can leave an underfull device short of a whole
        //     partition or more: take one more from the devices furthest above their share.
        let short: usize = (0..self.devs.len())
            .map(|id| (desired[id].floor() as usize).saturating_sub(assigned[id]))
            .sum();
        let mut extra = short.saturating_sub(gathered.len());
        let mut tried = vec![false; self.devs.len()];
        while extra > 0 {
            let donor = (0..self.devs.len())
                .filter(|&id| !tried[id] && assigned[id] as f64 > desired[id])
                .max_by(|&a, &b| {
                    (assigned[a] as f64 - desired[a]).total_cmp(&(assigned[b] as f64 - desired[b]))
                });
            let Some(id) = donor else { break };
            let start = (mix(id as u64 ^ 0xa5a5) % parts as u64) as usize;
            let found = (0..parts).map(|i| (start + i) % parts).find_map(|p| {
                (0..self.replicas).find_map(|r| {
                    (self.assignment[r][p] == id as u32
                        && !moved_now[p]
                        && movable(self.last_moved[p]))
                    .then_some((p, r))
                })
            });
            match found {
                Some((p, r)) => {
                    assigned[id] -= 1;
                    self.assignment[r][p] = NONE;
                    gathered.push((p, r));
                    moved_now[p] = true;
                    extra -= 1;
                }
                None => tried[id] = true,
            }
        }

        // 4. Place every gathered replica.
        gathered.sort_unstable();
        let moved = gathered.len();
        for (p, r) in gathered {
            let best = self.best_device(p, &assigned, &room, &desired);
            self.assignment[r][p] = best;
            assigned[best as usize] += 1;
            self.last_moved[p] = now.max(1);
        }

        // Devices asked to leave hold nothing any more: drop them.
        for id in std::mem::take(&mut self.removing) {
            if let Some(slot) = self.devs.get_mut(id as usize) {
                *slot = None;
            }
        }
        self.dirty = false;
        self.version += 1;
        Ok(RebalanceReport {
            moved,
            held: held.iter().filter(|h| **h).count(),
            balance: self.balance(),
        })
    }

    /// Whether replica `r` of `p` could move to a device with room in a zone none of the
    /// partition's other replicas uses.
    fn has_better_home(&self, p: usize, r: usize, assigned: &[usize], room: &[usize]) -> bool {
        let used: Vec<_> = (0..self.replicas)
            .filter(|&o| o != r)
            .filter_map(|o| self.active(self.assignment[o][p]))
            .map(|d| tiers(d)[1])
            .collect();
        (0..self.devs.len() as u32).any(|id| {
            self.active(id).is_some_and(|d| {
                assigned[id as usize] < room[id as usize] && !used.contains(&tiers(d)[1])
            })
        })
    }

    /// A replica of partition `p` that shares a tier with another while a device with room
    /// exists in a tier `p` does not use yet (the finest such tier's duplicate).
    fn misplaced_replica(&self, p: usize, assigned: &[usize], room: &[usize]) -> Option<usize> {
        let devs: Vec<&Device> = (0..self.replicas)
            .filter_map(|r| self.active(self.assignment[r][p]))
            .collect();
        for level in 0..3 {
            let used: Vec<_> = devs.iter().map(|d| tiers(d)[level]).collect();
            let Some(dup) = (1..used.len()).find(|&i| used[..i].contains(&used[i])) else {
                continue;
            };
            let free = (0..self.devs.len() as u32).any(|id| {
                self.active(id).is_some_and(|d| {
                    assigned[id as usize] <= room[id as usize] && !used.contains(&tiers(d)[level])
                })
            });
            if free {
                // The duplicate's replica index in the assignment.
                let dev = devs[dup].id;
                return (0..self.replicas).find(|&r| self.assignment[r][p] == dev);
            }
        }
        None
    }

    /// The device for a new replica of `p`: not already holding `p`, with room if any has,
    /// in the most unique tier, then most wanted.
    fn best_device(&self, p: usize, assigned: &[usize], room: &[usize], desired: &[f64]) -> u32 {
        let others: Vec<&Device> = (0..self.replicas)
            .filter_map(|r| self.active(self.assignment[r][p]))
            .collect();
        let candidates: Vec<&Device> = (0..self.devs.len() as u32)
            .filter_map(|id| self.active(id))
            .collect();
        let not_holding: Vec<&Device> = candidates
            .iter()
            .copied()
            .filter(|d| !others.iter().any(|o| o.id == d.id))
            .collect();
        // Only when every device already holds the partition may it land twice on one.
        let pool = if not_holding.is_empty() {
            candidates
        } else {
            not_holding
        };
        let score = |d: &Device| {
            let t = tiers(d);
            let unique = |level: usize| !others.iter().any(|o| tiers(o)[level] == t[level]);
            let wanted = desired[d.id as usize] - assigned[d.id as usize] as f64;
            (unique(0), unique(1), unique(2), wanted)
        };
        let pick = |pool: &[&Device]| -> Option<u32> {
            let mut best: Option<(&Device, Score)> = None;
            for &d in pool {
                let s = score(d);
                let better = match best {
                    None => true,
                    Some((b, bs)) => match (s.0, s.1, s.2).cmp(&(bs.0, bs.1, bs.2)) {
                        std::cmp::Ordering::Greater => true,
                        std::cmp::Ordering::Less => false,
                        std::cmp::Ordering::Equal => {
                            s.3 > bs.3 + 1e-9
                                || ((s.3 - bs.3).abs() <= 1e-9
                                    && mix(p as u64 ^ (u64::from(d.id) << 32))
                                        > mix(p as u64 ^ (u64::from(b.id) << 32)))
                        }
                    },
                };
                if better {
                    best = Some((d, s));
                }
            }
            best.map(|(d, _)| d.id)
        };
        let unique = |id: u32| {
            let s = score(pool.iter().find(|d| d.id == id).copied().unwrap_or(pool[0]));
            (s.0, s.1, s.2)
        };
        let with_room: Vec<&Device> = pool
            .iter()
            .copied()
            .filter(|d| assigned[d.id as usize] < room[d.id as usize])
            .collect();
        // A device one partition over its share may take a replica when that makes the
        // partition more unique than any device with room can; the next rebalance hands the
        // excess on to a device where it does not hurt dispersion.
        let nearly: Vec<&Device> = pool
            .iter()
            .copied()
            .filter(|d| assigned[d.id as usize] <= room[d.id as usize])
            .collect();
        match (pick(&with_room), pick(&nearly)) {
            (Some(a), Some(b)) if unique(b) > unique(a) => b,
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => pick(&pool).unwrap_or(pool[0].id),
        }
    }

    /// Partitions (replica slots) each device holds, indexed by device id.
    pub fn parts_per_device(&self) -> Vec<usize> {
        let mut n = vec![0usize; self.devs.len()];
        for row in &self.assignment {
            for &d in row {
                if d != NONE && (d as usize) < n.len() {
                    n[d as usize] += 1;
                }
            }
        }
        n
    }

    /// The largest deviation, in percent, of a device's partition count from its weight's
    /// share (swift-ring-builder's "balance").
    pub fn balance(&self) -> f64 {
        let desired = self.desired();
        let have = self.parts_per_device();
        desired
            .iter()
            .zip(&have)
            .filter(|(d, _)| **d > 0.0)
            .map(|(d, h)| ((*h as f64 / d) - 1.0).abs() * 100.0)
            .fold(0.0, f64::max)
    }

    /// The device ids holding partition `part`, one per replica (empty before the first
    /// rebalance).
    pub fn part_devices(&self, part: usize) -> Vec<u32> {
        self.assignment
            .iter()
            .filter_map(|row| row.get(part).copied())
            .filter(|&d| d != NONE)
            .collect()
    }

    /// Whether devices or weights changed since the last rebalance.
    pub fn needs_rebalance(&self) -> bool {
        self.dirty || self.assignment.is_empty()
    }

    /// The ring the servers read, built from the current assignment.
    pub fn ring(&self) -> Result<Ring, RingError> {
        if self.assignment.is_empty() {
            return Err(RingError::Invalid(
                "the builder has never been rebalanced".into(),
            ));
        }
        Ok(Ring::from_parts(
            self.version,
            self.part_power,
            self.devs.clone(),
            self.assignment.clone(),
        ))
    }

    /// Reads a builder file.
    pub fn load(path: &std::path::Path) -> Result<Self, RingError> {
        let bytes = std::fs::read(path).map_err(|source| RingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let b: RingBuilder = serde_json::from_slice(&bytes).map_err(|e| RingError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if b.format != BUILDER_FORMAT {
            return Err(RingError::Format {
                path: path.display().to_string(),
                reason: format!("builder format {} is not {BUILDER_FORMAT}", b.format),
            });
        }
        Ok(b)
    }

    /// Writes the builder file atomically.
    pub fn save(&self, path: &std::path::Path) -> Result<(), RingError> {
        let bytes = serde_json::to_vec(self).map_err(|e| RingError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        crate::write_atomically(path, &bytes)
    }
}

fn check_weight(weight: f64) -> Result<(), RingError> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err(RingError::Invalid(format!(
            "weight must be a number >= 0, not {weight}"
        )))
    }
}

#[cfg(test)]
mod tests;
