//! The object replicator and auditor over the ring's devices, as Swift's `object-replicator`
//! and `object-auditor` do it.
//!
//! Database replicator: every account and container database a device holds as a primary
//! is compared with its other primaries by digest, and merged into those that differ (a
//! container server that was down gets the rows it missed).
//! Replicator: for every partition a device holds, compare each suffix's hash (an md5 of the
//! file names in its object directories, so equal states hash equally) with the partition's
//! other primaries, and push what they lack — the files of the newer `.data`/`.ts`/`.meta`,
//! copied durably and tidied on arrival. A device that holds a partition as a handoff pushes
//! it to every primary and removes its copy once all of them have everything it had.
//! Auditor: re-read every object at a byte-rate limit; an object whose bytes no longer match
//! its recorded size and ETag (or whose metadata cannot be read) is moved to
//! `<device>/quarantined/objects/`, so that device no longer has it and the replicator
//! restores it from a good copy.
//!
//! Peers are [`StorageDevice`]s: directories of this process or other nodes' storage
//! servers (`REPLICATE` for suffix hashes and file lists, `SYNC` to push a file), so one
//! pass works the same in an all-in-one and across nodes. Owns only files on devices; it
//! never touches the account and container databases.
// TODO-correctness: tombstones are kept forever (upstream reclaims them after `reclaim_age`).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::Digest as _;

use crate::disk::{self, ObjectState};
use crate::manager::ResolvedRing;
use crate::node::{DbRef, LocalDevice, StorageDevice};

/// What one replicator pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicationStats {
    /// Suffixes whose hashes differed from a peer's and were synced.
    pub suffixes_synced: usize,
    /// Files copied to other devices.
    pub files_pushed: usize,
    /// Handoff partitions removed once every primary had them.
    pub handoffs_removed: usize,
    /// Partitions a primary could not be reached for (device missing).
    pub unreachable: usize,
    /// Account and container databases merged into a peer that differed.
    pub databases_merged: usize,
}

/// What one auditor pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditStats {
    pub objects_checked: usize,
    pub bytes_read: u64,
    pub quarantined: usize,
}

/// The hash of one suffix directory: md5 over `<object hash>/<file>` for every file, sorted.
/// `None` when the suffix holds nothing.
pub fn suffix_hash(suffix_dir: &Path) -> std::io::Result<Option<String>> {
    let mut objects = dirs(suffix_dir)?;
    objects.sort();
    let mut md5 = md5::Md5::new();
    let mut any = false;
    for object in objects {
        let name = object.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for file in disk::list_files(&object)? {
            md5.update(format!("{name}/{file}\n").as_bytes());
            any = true;
        }
    }
    Ok(any.then(|| md5.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

/// Every suffix of a partition directory with its hash.
pub fn suffix_hashes(part_dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for suffix in dirs(part_dir)? {
        if let (Some(name), Some(hash)) = (
            suffix
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string),
            suffix_hash(&suffix)?,
        ) {
            out.insert(name, hash);
        }
    }
    Ok(out)
}

/// The subdirectories of `dir` (none when it does not exist).
fn dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in disk::read_dir_or_empty(dir)? {
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// The order files of one object are pushed in: an older write's metadata sidecar before
/// its data, so a peer never holds such a `.data` without its `.data.json` (a `.data` with
/// its metadata in its footer travels alone).
fn push_order(name: &str) -> u8 {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("json") => 0,
        Some("data") => 1,
        _ => 2,
    }
}

/// The newest `.data`/`.ts` timestamp among an object directory's file names.
fn newest_in(names: &[String]) -> Option<crate::model::Timestamp> {
    names
        .iter()
        .filter_map(|n| disk::parse_name(n))
        .filter(|(_, ext)| matches!(*ext, "data" | "ts"))
        .map(|(t, _)| t)
        .max()
}

/// Pushes one object directory of `suffix` to `peer`: the files the peer lacks, when this
/// side's newest state is at least as new as the peer's. Returns the files copied and
/// whether the peer now has this side's newest state (or a newer one).
async fn push_object(
    peer: &dyn StorageDevice,
    part: u32,
    suffix: &str,
    object: &Path,
    theirs: &[String],
) -> std::io::Result<(usize, bool)> {
    let Some(hash) = object.file_name().and_then(|n| n.to_str()) else {
        return Ok((0, true));
    };
    let mine = {
        let object = object.to_path_buf();
        tokio::task::spawn_blocking(move || disk::list_files(&object))
            .await
            .map_err(std::io::Error::other)??
    };
    if newest_in(&mine) < newest_in(theirs) {
        return Ok((0, true)); // they are newer: their own pass pushes it here
    }
    let mut missing: Vec<&String> = mine.iter().filter(|n| !theirs.contains(n)).collect();
    missing.sort_by_key(|n| push_order(n));
    for name in &missing {
        peer.sync_file(part, suffix, hash, name, object).await?;
    }
    Ok((missing.len(), true))
}

/// One replicator pass over the partitions `device` holds; `id` is the device's id in
/// `ring`, whose other devices are its peers, here or on other nodes.
pub async fn replicate_device(
    ring: &ResolvedRing,
    id: u32,
    device: &LocalDevice,
) -> std::io::Result<ReplicationStats> {
    let mut stats = ReplicationStats::default();
    let objects = device.path.join("objects");
    let parts = {
        let objects = objects.clone();
        tokio::task::spawn_blocking(move || dirs(&objects))
            .await
            .map_err(std::io::Error::other)??
    };
    for part_dir in parts {
        let Some(part) = part_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if part as usize >= ring.ring.partitions() {
            continue;
        }
        let primaries = ring.ring.get_part_nodes(part);
        let handoff = !primaries.iter().any(|p| p.id == id);
        let mine = device.suffix_hashes(part).await?;
        let mut complete = true;
        for (peer_id, peer) in primaries
            .iter()
            .filter(|p| p.id != id)
            .map(|p| (p.id, ring.node_by_id(p.id)))
        {
            let Some(peer) = peer else { continue };
            let theirs = match peer.suffix_hashes(part).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::debug!(peer = peer_id, error = %e, "replication peer unreachable");
                    stats.unreachable += 1;
                    complete = false;
                    continue;
                }
            };
            for (suffix, hash) in &mine {
                if theirs.get(suffix) == Some(hash) {
                    continue;
                }
                stats.suffixes_synced += 1;
                let synced: std::io::Result<()> = async {
                    let their_files = peer.suffix_files(part, suffix).await?;
                    let suffix_dir = part_dir.join(suffix);
                    let objects = tokio::task::spawn_blocking(move || dirs(&suffix_dir))
                        .await
                        .map_err(std::io::Error::other)??;
                    for object in objects {
                        let name = object.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        let theirs = their_files.get(name).map(Vec::as_slice).unwrap_or(&[]);
                        let (copied, has_it) =
                            push_object(peer.as_ref(), part, suffix, &object, theirs).await?;
                        stats.files_pushed += copied;
                        complete &= has_it;
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = synced {
                    tracing::warn!(peer = peer_id, part, suffix, error = %e, "suffix push failed");
                    complete = false;
                }
            }
        }
        if handoff && complete {
            // Every primary has what this handoff held: the copy is no longer needed.
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&part_dir))
                .await
                .map_err(std::io::Error::other)??;
            stats.handoffs_removed += 1;
        }
    }
    Ok(stats)
}

/// One database replicator pass over the account or container databases `device` holds
/// (`ring` is the account or container ring, `id` the device's id in it): each database's
/// digest is compared with every other primary's, and a peer that differs (or has none)
/// gets this replica merged in. Returns the databases merged into peers and the peers that
/// could not be reached.
// TODO-correctness: a database on a device that is no longer one of its primaries (after a
// rebalance) is left where it is; upstream hands it off and removes it.
pub async fn replicate_databases(
    ring: &ResolvedRing,
    kind: crate::db::Kind,
    id: u32,
    device: &LocalDevice,
) -> std::io::Result<(usize, usize)> {
    let root = device.path.join(kind.dir());
    // `<part>/<suffix>/<hash>`: the databases on the device.
    let found = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for part in dirs(&root)? {
            for suffix in dirs(&part)? {
                for hash in dirs(&suffix)? {
                    let name = |p: &Path| p.file_name()?.to_str().map(str::to_string);
                    if let (Some(p), Some(h)) = (name(&part), name(&hash))
                        && let Ok(p) = p.parse::<u32>()
                    {
                        out.push((p, h));
                    }
                }
            }
        }
        Ok::<_, std::io::Error>(out)
    })
    .await
    .map_err(std::io::Error::other)??;
    let (mut merged, mut unreachable) = (0, 0);
    for (part, hash) in found {
        if part as usize >= ring.ring.partitions() {
            continue;
        }
        let primaries = ring.ring.get_part_nodes(part);
        if !primaries.iter().any(|p| p.id == id) {
            continue;
        }
        let r = DbRef { kind, part, hash };
        let Some(replica) = device.db_replica(&r).await? else {
            continue;
        };
        let mine = crate::db::replica_digest(&replica);
        for peer in primaries
            .iter()
            .filter(|p| p.id != id)
            .filter_map(|p| ring.node_by_id(p.id))
        {
            let synced = async {
                if peer.db_digest(&r).await?.as_ref() != Some(&mine) {
                    peer.db_merge(&r, &replica).await?;
                    return Ok::<_, std::io::Error>(1);
                }
                Ok(0)
            }
            .await;
            match synced {
                Ok(n) => merged += n,
                Err(e) => {
                    tracing::debug!(peer = ?peer, error = %e, "database replication peer failed");
                    unreachable += 1;
                }
            }
        }
    }
    Ok((merged, unreachable))
}

/// Moves an object directory to `<device>/quarantined/objects/<hash>-<uuid>`; `dir` is
/// `<device>/objects/<part>/<suffix>/<hash>`.
pub fn quarantine(dir: &Path) -> std::io::Result<()> {
    let device = dir
        .ancestors()
        .nth(4)
        .ok_or_else(|| std::io::Error::other("not an object directory"))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("not an object directory"))?;
    let target = device.join("quarantined").join("objects");
    std::fs::create_dir_all(&target)?;
    let to = target.join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::rename(dir, &to)?;
    tracing::warn!(from = %dir.display(), to = %to.display(), "object quarantined");
    Ok(())
}

/// Whether the object in `dir` still reads as recorded: its data's size and md5 match its
/// metadata. Reads at most `bytes_per_second` (0: no limit), counting into `read`.
/// Large-object manifests are checked for size only: their recorded ETag is the whole's.
pub fn object_is_sound(dir: &Path, bytes_per_second: u64, read: &mut u64) -> std::io::Result<bool> {
    let (data, meta) = match disk::read_state(dir) {
        Ok(ObjectState::Present { data, meta }) => (data, meta),
        Ok(_) => return Ok(true),
        // Data without readable metadata cannot be served: quarantine it.
        Err(e) if e.kind() != std::io::ErrorKind::PermissionDenied => return Ok(false),
        Err(e) => return Err(e),
    };
    let manifest = meta.headers.contains_key("x-static-large-object");
    let mut file = std::io::Read::take(std::fs::File::open(&data)?, disk::data_len(&data)?);
    let started = Instant::now();
    let mut md5 = md5::Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        len += n as u64;
        *read += n as u64;
        if bytes_per_second > 0 {
            let due = Duration::from_secs_f64(len as f64 / bytes_per_second as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    if manifest {
        return Ok(true);
    }
    let etag: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(len == meta.size && etag == meta.etag)
}

/// One auditor pass over every object on the device at `device`: unsound objects are
/// quarantined.
pub fn audit_device(device: &Path, bytes_per_second: u64) -> std::io::Result<AuditStats> {
    let mut stats = AuditStats::default();
    for part in dirs(&device.join("objects"))? {
        for suffix in dirs(&part)? {
            for object in dirs(&suffix)? {
                stats.objects_checked += 1;
                if !object_is_sound(&object, bytes_per_second, &mut stats.bytes_read)? {
                    quarantine(&object)?;
                    stats.quarantined += 1;
                }
            }
        }
    }
    Ok(stats)
}
