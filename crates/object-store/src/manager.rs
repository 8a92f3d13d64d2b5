//! The proxy's work behind the API: find each account, container and object on its ring,
//! read from the first replica that has it, write to every primary (a handoff standing in
//! for a primary that is down) and succeed on a quorum, as Swift's proxy does.
//!
//! All devices of the rings are local directories under `devices_root` (all-in-one); a
//! device whose directory is missing counts as down.
// TODO-correctness: devices on other hosts (`ferrostack storage-node`) need the storage
// servers' HTTP protocol; until then a ring device is always `<devices_root>/<device>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ferro_object_ring::{HashPath, Ring, RingBuilder};

use crate::ObjectStoreConfig;
use crate::db::{self, ContainerRow, Databases, Kind, ObjectRow, Stat};
use crate::disk::{self, ObjectMeta, ObjectState, PostedMeta};
use crate::model::{Entry, ListParams, Metadata, SwiftError, SwiftResult, Timestamp};

struct Rings {
    account: Ring,
    container: Ring,
    object: Ring,
    checked: Instant,
    mtimes: [Option<std::time::SystemTime>; 3],
}

/// The object storage service: rings, devices, databases.
pub struct ObjectStore {
    pub config: ObjectStoreConfig,
    rings: std::sync::RwLock<Arc<Rings>>,
    pub(crate) dbs: Databases,
    /// The queue of objects with an `X-Delete-At` (`<devices_root>/expiring.db`).
    expiring: tokio::sync::OnceCell<sqlx::SqlitePool>,
}

fn mtime(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Swift's replication quorum: a majority (`quorum_size`).
pub fn quorum(replicas: usize) -> usize {
    replicas / 2 + 1
}

impl ObjectStore {
    /// Opens the service. When the state directory has no rings yet (first all-in-one
    /// start), builds the account, container and object rings over `config.devices`, one
    /// zone each, as a DevStack-style single node does, and creates the device directories.
    pub fn open(config: ObjectStoreConfig) -> anyhow::Result<Arc<ObjectStore>> {
        std::fs::create_dir_all(&config.rings_dir)?;
        std::fs::create_dir_all(&config.devices_root)?;
        for name in ["account", "container", "object"] {
            let ring = config.rings_dir.join(format!("{name}.ring"));
            if ring.exists() {
                continue;
            }
            let mut b = RingBuilder::new(config.part_power, config.replicas, 1)?;
            for (i, dev) in config.devices.iter().enumerate() {
                b.add_device(1, i as u32 + 1, "127.0.0.1", 6200, dev, 100.0)?;
            }
            b.rebalance()?;
            b.save(&config.rings_dir.join(format!("{name}.builder")))?;
            b.ring()?.save(&ring)?;
        }
        for dev in &config.devices {
            std::fs::create_dir_all(config.devices_root.join(dev))?;
        }
        let rings = Self::load_rings(&config.rings_dir)?;
        Ok(Arc::new(ObjectStore {
            config,
            rings: std::sync::RwLock::new(Arc::new(rings)),
            dbs: Databases::default(),
            expiring: tokio::sync::OnceCell::new(),
        }))
    }

    fn load_rings(dir: &Path) -> anyhow::Result<Rings> {
        let path = |n: &str| dir.join(format!("{n}.ring"));
        Ok(Rings {
            account: Ring::load(&path("account"))?,
            container: Ring::load(&path("container"))?,
            object: Ring::load(&path("object"))?,
            checked: Instant::now(),
            mtimes: [
                mtime(&path("account")),
                mtime(&path("container")),
                mtime(&path("object")),
            ],
        })
    }

    /// The rings, reloaded when a ring file changed (checked every few seconds).
    fn rings(&self) -> Arc<Rings> {
        let current = self
            .rings
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        if current.checked.elapsed() < self.config.ring_check_interval {
            return current;
        }
        let dir = &self.config.rings_dir;
        let now = [
            mtime(&dir.join("account.ring")),
            mtime(&dir.join("container.ring")),
            mtime(&dir.join("object.ring")),
        ];
        let next = if now != current.mtimes {
            match Self::load_rings(dir) {
                Ok(r) => {
                    tracing::info!("object storage rings reloaded");
                    Arc::new(r)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ring reload failed; keeping the old rings");
                    current.clone()
                }
            }
        } else {
            current.clone()
        };
        let refreshed = Arc::new(Rings {
            account: next.account.clone(),
            container: next.container.clone(),
            object: next.object.clone(),
            checked: Instant::now(),
            mtimes: now,
        });
        if let Ok(mut w) = self.rings.write() {
            *w = refreshed.clone();
        }
        refreshed
    }

    fn hash_path(&self) -> &HashPath {
        &self.config.hash_path
    }

    /// The device directories of `part` on `ring`: primaries first, then handoffs.
    fn nodes(&self, ring: &Ring, part: u32) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let root = &self.config.devices_root;
        let primaries = ring
            .get_part_nodes(part)
            .iter()
            .map(|d| root.join(&d.device))
            .collect();
        let handoffs = ring
            .get_more_nodes(part)
            .iter()
            .map(|d| root.join(&d.device))
            .collect();
        (primaries, handoffs)
    }

    /// Where the database of an account (`container: None`) or container lives.
    fn db_locations(&self, account: &str, container: Option<&str>) -> (Kind, Vec<PathBuf>) {
        let rings = self.rings();
        let (kind, ring) = match container {
            None => (Kind::Account, &rings.account),
            Some(_) => (Kind::Container, &rings.container),
        };
        let part = ring.get_part(self.hash_path(), account, container, None);
        let hash = self.hash_path().hash_hex(account, container, None);
        let (primaries, _) = self.nodes(ring, part);
        let paths = primaries
            .iter()
            .map(|dev| db::db_path(dev, kind, part, &hash))
            .collect();
        (kind, paths)
    }

    /// The record of an account or container from the first replica that has it.
    pub async fn stat(&self, account: &str, container: Option<&str>) -> SwiftResult<Option<Stat>> {
        let (kind, paths) = self.db_locations(account, container);
        let mut failures = 0;
        for path in &paths {
            match self.dbs.open(path, kind, false).await {
                Ok(Some(pool)) => match db::get_stat(&pool, kind).await {
                    Ok(Some(stat)) => return Ok(Some(stat)),
                    Ok(None) => {}
                    Err(_) => failures += 1,
                },
                Ok(None) => {}
                Err(_) => failures += 1,
            }
        }
        if failures == paths.len() {
            return Err(SwiftError::status(503));
        }
        Ok(None)
    }

    /// Runs `op` on every replica database of an account or container (created when
    /// `create`), and succeeds when a quorum did.
    async fn on_replicas<F, Fut>(
        &self,
        account: &str,
        container: Option<&str>,
        create: bool,
        op: F,
    ) -> SwiftResult<usize>
    where
        F: Fn(sqlx::SqlitePool) -> Fut,
        Fut: std::future::Future<Output = SwiftResult<bool>>,
    {
        let (kind, paths) = self.db_locations(account, container);
        // Every replica at once, as the proxy's concurrent backend requests.
        let results = futures::future::join_all(paths.iter().map(|path| {
            let op = &op;
            async move {
                match self.dbs.open(path, kind, create).await {
                    Ok(Some(pool)) => match op(pool).await {
                        Ok(hit) => Some(usize::from(hit)),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = ?e, "replica update failed");
                            None
                        }
                    },
                    Ok(None) => Some(0),
                    Err(_) => None,
                }
            }
        }))
        .await;
        let ok = results.iter().flatten().count();
        let hits: usize = results.iter().flatten().sum();
        if ok < quorum(paths.len()) {
            return Err(SwiftError::status(503));
        }
        Ok(hits)
    }

    /// Creates the account's databases if missing (Swift's `account_autocreate`).
    pub async fn account_autocreate(&self, account: &str) -> SwiftResult<()> {
        if self.stat(account, None).await?.is_some() {
            return Ok(());
        }
        let ts = Timestamp::now();
        self.on_replicas(account, None, true, |pool| async move {
            db::put_stat(&pool, ts, &Metadata::new()).await
        })
        .await?;
        Ok(())
    }

    /// `POST` on an account or container: merges metadata. False when it does not exist.
    pub async fn post_metadata(
        &self,
        account: &str,
        container: Option<&str>,
        meta: &Metadata,
    ) -> SwiftResult<bool> {
        let kind = if container.is_some() {
            Kind::Container
        } else {
            Kind::Account
        };
        let hits = self
            .on_replicas(account, container, false, |pool| async move {
                db::post_stat(&pool, kind, meta).await
            })
            .await?;
        Ok(hits > 0)
    }

    /// `PUT` a container: true when it was created, false when it existed (metadata merged).
    pub async fn container_put(
        &self,
        account: &str,
        container: &str,
        meta: &Metadata,
    ) -> SwiftResult<bool> {
        self.account_autocreate(account).await?;
        let ts = Timestamp::now();
        let created = self
            .on_replicas(account, Some(container), true, |pool| async move {
                db::put_stat(&pool, ts, meta).await
            })
            .await?;
        self.update_account(account, container).await?;
        Ok(created > 0)
    }

    /// `DELETE` a container: 404 when missing, 409 when it still lists objects.
    pub async fn container_delete(&self, account: &str, container: &str) -> SwiftResult<()> {
        let Some(stat) = self.stat(account, Some(container)).await? else {
            return Err(SwiftError::not_found());
        };
        if stat.object_count > 0 {
            return Err(SwiftError::with_body(
                409,
                "There was a conflict when trying to complete your request.",
            ));
        }
        let ts = Timestamp::now();
        self.on_replicas(account, Some(container), false, |pool| async move {
            db::delete_stat(&pool, ts).await.map(|_| true)
        })
        .await?;
        self.on_replicas(account, None, false, |pool| async move {
            db::account_put_container(&pool, container, ts, 0, 0, true)
                .await
                .map(|_| true)
        })
        .await?;
        Ok(())
    }

    /// Pushes a container's totals into its account's databases.
    async fn update_account(&self, account: &str, container: &str) -> SwiftResult<()> {
        let Some(stat) = self.stat(account, Some(container)).await? else {
            return Ok(());
        };
        self.on_replicas(account, None, true, |pool| {
            let stat = stat.clone();
            async move {
                db::account_put_container(
                    &pool,
                    container,
                    stat.put_timestamp,
                    stat.object_count,
                    stat.bytes_used,
                    false,
                )
                .await
                .map(|_| true)
            }
        })
        .await?;
        Ok(())
    }

    /// A container's listing from the first replica that has it.
    pub async fn list_objects(
        &self,
        account: &str,
        container: &str,
        params: &ListParams,
    ) -> SwiftResult<Option<(Stat, Vec<Entry<ObjectRow>>)>> {
        self.listing(account, Some(container), |pool| async move {
            db::list_objects(&pool, params).await
        })
        .await
    }

    /// An account's listing; an account that does not exist yet lists nothing.
    pub async fn list_containers(
        &self,
        account: &str,
        params: &ListParams,
    ) -> SwiftResult<Option<(Stat, Vec<Entry<ContainerRow>>)>> {
        self.listing(account, None, |pool| async move {
            db::list_containers(&pool, params).await
        })
        .await
    }

    async fn listing<T, F, Fut>(
        &self,
        account: &str,
        container: Option<&str>,
        list: F,
    ) -> SwiftResult<Option<(Stat, Vec<Entry<T>>)>>
    where
        F: Fn(sqlx::SqlitePool) -> Fut,
        Fut: std::future::Future<Output = SwiftResult<Vec<Entry<T>>>>,
    {
        let (kind, paths) = self.db_locations(account, container);
        for path in &paths {
            let Ok(Some(pool)) = self.dbs.open(path, kind, false).await else {
                continue;
            };
            let Ok(Some(stat)) = db::get_stat(&pool, kind).await else {
                continue;
            };
            return Ok(Some((stat, list(pool).await?)));
        }
        Ok(None)
    }

    /// The object's partition, hash and device directories (primaries, then handoffs).
    pub fn object_nodes(
        &self,
        account: &str,
        container: &str,
        object: &str,
    ) -> (Vec<PathBuf>, Vec<PathBuf>, PathBuf) {
        let rings = self.rings();
        let part = rings
            .object
            .get_part(self.hash_path(), account, Some(container), Some(object));
        let hash = self
            .hash_path()
            .hash_hex(account, Some(container), Some(object));
        let (primaries, handoffs) = self.nodes(&rings.object, part);
        // The object's directory relative to a device.
        let rel = disk::object_dir(Path::new(""), part, &hash);
        (primaries, handoffs, rel)
    }

    /// The newest state of an object over its primaries and handoffs; an object past its
    /// `X-Delete-At` is gone already (Swift's object server answers 404 for it).
    pub async fn object_state(
        &self,
        account: &str,
        container: &str,
        object: &str,
    ) -> SwiftResult<ObjectState> {
        let state = self.object_state_raw(account, container, object).await?;
        if let ObjectState::Present { meta, .. } = &state
            && delete_at(meta).is_some_and(|t| t <= chrono::Utc::now().timestamp())
        {
            return Ok(ObjectState::Missing);
        }
        Ok(state)
    }

    /// The newest state of an object, expired or not.
    async fn object_state_raw(
        &self,
        account: &str,
        container: &str,
        object: &str,
    ) -> SwiftResult<ObjectState> {
        let (primaries, handoffs, rel) = self.object_nodes(account, container, object);
        let dirs: Vec<PathBuf> = primaries
            .iter()
            .chain(handoffs.iter().take(primaries.len()))
            .map(|d| d.join(&rel))
            .collect();
        let primary_count = primaries.len();
        tokio::task::spawn_blocking(move || {
            let mut best = ObjectState::Missing;
            let mut failures = 0;
            for (i, dir) in dirs.iter().enumerate() {
                match disk::read_state(dir) {
                    Ok(state) => {
                        if newer(&state, &best) {
                            best = state;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "object replica unreadable");
                        if i < primary_count {
                            failures += 1;
                        }
                    }
                }
            }
            if failures == primary_count && matches!(best, ObjectState::Missing) {
                return Err(SwiftError::status(503));
            }
            Ok(best)
        })
        .await
        .map_err(SwiftError::unavailable)?
    }

    /// Opens writers on a quorum or more of the object's devices: each primary, or the next
    /// handoff when a primary is down. Returns the writers with their object directories.
    pub async fn object_writers(
        &self,
        account: &str,
        container: &str,
        object: &str,
    ) -> SwiftResult<Vec<(disk::Writer, PathBuf)>> {
        let (primaries, handoffs, rel) = self.object_nodes(account, container, object);
        let mut handoffs = handoffs.into_iter();
        let mut writers = Vec::new();
        for dev in &primaries {
            let mut candidate = dev.clone();
            loop {
                match disk::Writer::create(&candidate).await {
                    Ok(w) => {
                        writers.push((w, candidate.join(&rel)));
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(device = %candidate.display(), error = %e, "device down; trying a handoff");
                        match handoffs.next() {
                            Some(h) => candidate = h,
                            None => break,
                        }
                    }
                }
            }
        }
        if writers.len() < quorum(primaries.len()) {
            return Err(SwiftError::status(503));
        }
        Ok(writers)
    }

    /// Commits the written object on every writer; succeeds on a quorum.
    pub async fn object_commit(
        &self,
        writers: Vec<(disk::Writer, PathBuf)>,
        meta: &ObjectMeta,
        replicas: usize,
    ) -> SwiftResult<()> {
        // Every replica's fsyncs at once.
        let results = futures::future::join_all(writers.into_iter().map(|(w, dir)| async move {
            let r = w.commit(dir.clone(), meta.clone()).await;
            if let Err(e) = &r {
                tracing::warn!(dir = %dir.display(), error = %e, "object commit failed");
            }
            r
        }))
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        if ok < quorum(replicas) {
            return Err(SwiftError::status(503));
        }
        Ok(())
    }

    /// The object ring's replica count.
    pub fn object_replicas(&self) -> usize {
        self.rings().object.replicas()
    }

    /// Writes a tombstone for the object on its primaries (and handoffs that hold it).
    pub async fn object_delete(
        &self,
        account: &str,
        container: &str,
        object: &str,
        ts: Timestamp,
    ) -> SwiftResult<()> {
        let (primaries, handoffs, rel) = self.object_nodes(account, container, object);
        let replicas = primaries.len();
        let dirs: Vec<(PathBuf, bool)> = primaries
            .iter()
            .map(|d| (d.clone(), true))
            .chain(handoffs.iter().take(replicas).map(|d| (d.clone(), false)))
            .collect();
        let ok = tokio::task::spawn_blocking(move || {
            let mut ok = 0;
            for (dev, primary) in dirs {
                let dir = dev.join(&rel);
                if !dev.is_dir() || (!primary && !dir.exists()) {
                    continue;
                }
                match disk::write_tombstone(&dir, ts) {
                    Ok(_) => ok += usize::from(primary),
                    Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "tombstone failed"),
                }
            }
            ok
        })
        .await
        .map_err(SwiftError::unavailable)?;
        if ok < quorum(replicas) {
            return Err(SwiftError::status(503));
        }
        Ok(())
    }

    /// Records posted metadata on every replica holding the object.
    pub async fn object_post(
        &self,
        account: &str,
        container: &str,
        object: &str,
        posted: PostedMeta,
    ) -> SwiftResult<()> {
        let (primaries, handoffs, rel) = self.object_nodes(account, container, object);
        let replicas = primaries.len();
        let devs: Vec<PathBuf> = primaries
            .into_iter()
            .chain(handoffs.into_iter().take(replicas))
            .collect();
        let ts = Timestamp::now();
        let ok = tokio::task::spawn_blocking(move || {
            let mut ok = 0;
            for dev in devs {
                let dir = dev.join(&rel);
                if matches!(disk::read_state(&dir), Ok(ObjectState::Present { .. })) {
                    match disk::write_meta(&dir, ts, &posted) {
                        Ok(()) => ok += 1,
                        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "post failed"),
                    }
                }
            }
            ok
        })
        .await
        .map_err(SwiftError::unavailable)?;
        if ok == 0 {
            return Err(SwiftError::status(503));
        }
        Ok(())
    }

    /// Records an object's new state in its container's databases and the container's
    /// totals in the account's.
    // TODO-correctness: upstream sends these updates from the object servers and queues them
    // in async_pending files when a container server is down; here the proxy sends them
    // after the object is durable, and a failure is logged, not retried.
    pub async fn container_update(
        &self,
        account: &str,
        container: &str,
        row: ObjectRow,
        deleted: bool,
    ) -> SwiftResult<()> {
        let row = &row;
        self.on_replicas(account, Some(container), false, |pool| async move {
            db::container_put_object(&pool, row, deleted)
                .await
                .map(|_| true)
        })
        .await?;
        self.update_account(account, container).await
    }
}

impl ObjectStore {
    /// The local devices of the object ring (those whose directory exists).
    fn local_object_devices(&self) -> Vec<String> {
        let rings = self.rings();
        let mut names: Vec<String> = rings.object.devices().map(|d| d.device.clone()).collect();
        names.sort();
        names.dedup();
        names.retain(|n| self.config.devices_root.join(n).is_dir());
        names
    }

    /// Runs `pass` over every local device on a blocking thread; its results in order.
    async fn each_local_device<T: Send + 'static>(
        &self,
        pass: impl Fn(&Path, &str) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<Vec<T>> {
        let root = self.config.devices_root.clone();
        let devices = self.local_object_devices();
        tokio::task::spawn_blocking(move || devices.iter().map(|d| pass(&root, d)).collect())
            .await
            .map_err(std::io::Error::other)?
    }

    /// One object replicator pass over every local device.
    pub async fn replicate_once(&self) -> std::io::Result<crate::replication::ReplicationStats> {
        let ring = self.rings().object.clone();
        let per_device = self
            .each_local_device(move |root, dev| {
                crate::replication::replicate_device(&ring, root, dev)
            })
            .await?;
        let mut total = crate::replication::ReplicationStats::default();
        for s in per_device {
            total.suffixes_synced += s.suffixes_synced;
            total.files_pushed += s.files_pushed;
            total.handoffs_removed += s.handoffs_removed;
            total.unreachable += s.unreachable;
        }
        Ok(total)
    }

    /// One object auditor pass over every local device, at the configured read rate.
    pub async fn audit_once(&self) -> std::io::Result<crate::replication::AuditStats> {
        let rate = self.config.auditor_bytes_per_second;
        let per_device = self
            .each_local_device(move |root, dev| crate::replication::audit_device(root, dev, rate))
            .await?;
        let mut total = crate::replication::AuditStats::default();
        for s in per_device {
            total.objects_checked += s.objects_checked;
            total.bytes_read += s.bytes_read;
            total.quarantined += s.quarantined;
        }
        Ok(total)
    }

    async fn expiring_pool(&self) -> SwiftResult<&sqlx::SqlitePool> {
        self.expiring
            .get_or_try_init(|| async {
                db::open_expiring(&self.config.devices_root.join("expiring.db")).await
            })
            .await
    }

    /// Queues `account/container/object` for deletion at `at` (unix seconds).
    // TODO-correctness: upstream queues these in the hidden `.expiring_objects` account so
    // every proxy and expirer of a cluster shares them; this queue is the node's own.
    pub async fn expiring_add(
        &self,
        at: i64,
        account: &str,
        container: &str,
        object: &str,
    ) -> SwiftResult<()> {
        db::expiring_add(self.expiring_pool().await?, at, account, container, object).await
    }

    /// Deletes every queued object whose time has come and whose `X-Delete-At` still says
    /// so (a later PUT or POST may have changed it). Returns how many were deleted.
    pub async fn expire_due(&self) -> SwiftResult<usize> {
        let pool = self.expiring_pool().await?;
        let now = chrono::Utc::now().timestamp();
        let due = db::expiring_due(pool, now, 1000).await?;
        let mut deleted = 0;
        for (at, account, container, object) in due {
            if let ObjectState::Present { meta, .. } =
                self.object_state_raw(&account, &container, &object).await?
                && delete_at(&meta) == Some(at)
            {
                let ts = Timestamp::now();
                self.object_delete(&account, &container, &object, ts)
                    .await?;
                let row = ObjectRow {
                    name: object.clone(),
                    created_at: ts.normal(),
                    size: 0,
                    content_type: String::new(),
                    etag: String::new(),
                };
                self.container_update(&account, &container, row, true)
                    .await?;
                deleted += 1;
            }
            db::expiring_remove(pool, at, &account, &container, &object).await?;
        }
        Ok(deleted)
    }
}

/// An object's `X-Delete-At`, if it has one.
pub fn delete_at(meta: &ObjectMeta) -> Option<i64> {
    meta.headers.get("x-delete-at").and_then(|v| v.parse().ok())
}

/// Whether `a` is a newer state than `b`.
fn newer(a: &ObjectState, b: &ObjectState) -> bool {
    fn ts(s: &ObjectState) -> Option<Timestamp> {
        match s {
            ObjectState::Missing => None,
            ObjectState::Deleted(t) => Some(*t),
            ObjectState::Present { meta, .. } => Some(meta.timestamp),
        }
    }
    ts(a) > ts(b)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn servers_pick_up_a_rebalanced_ring_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ObjectStoreConfig::new(dir.path(), "http://x");
        config.ring_check_interval = Duration::ZERO;
        let store = ObjectStore::open(config.clone()).unwrap();
        let (primaries, _, _) = store.object_nodes("AUTH_a", "c", "o");
        assert_eq!(primaries.len(), 3);
        // The operator moves the object ring onto one new device.
        let mut b = RingBuilder::new(config.part_power, 1, 0).unwrap();
        b.add_device(1, 1, "127.0.0.1", 6200, "d9", 100.0).unwrap();
        b.rebalance().unwrap();
        // A different mtime even on coarse clocks.
        std::thread::sleep(Duration::from_millis(20));
        b.ring()
            .unwrap()
            .save(&config.rings_dir.join("object.ring"))
            .unwrap();
        let (primaries, _, _) = store.object_nodes("AUTH_a", "c", "o");
        assert_eq!(primaries, vec![config.devices_root.join("d9")]);
    }
}
