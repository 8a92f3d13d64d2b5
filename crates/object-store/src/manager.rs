//! The proxy's work behind the API: find each account, container and object on its ring,
//! read from the first replica that has it, write to every primary (a handoff standing in
//! for a primary that is down) and succeed on a quorum, as Swift's proxy does.
//!
//! A ring device whose ip:port is one of `node_addresses` is a directory of this process
//! (`<devices_root>/<device>`, down when the directory is missing); any other is reached
//! through its node's storage server (see [`crate::node`]), down when it cannot be reached.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ferro_object_ring::{Device, HashPath, Ring, RingBuilder};

use crate::ObjectStoreConfig;
use crate::db::{self, ContainerRow, Databases, ObjectRow, Stat};
use crate::disk::{ObjectMeta, ObjectState, PostedMeta};
use crate::model::{Entry, ListParams, Metadata, SwiftError, SwiftResult, Timestamp};
use crate::node::{
    DataRef, DbUpdate, Listing, LocalDevice, ObjectWriter, RemoteDevice, StorageDevice, Target,
};

/// A device of a ring as this process reaches it.
pub type Node = Arc<dyn StorageDevice>;

/// A ring with its devices resolved: local directories or other nodes' storage servers.
pub struct ResolvedRing {
    pub ring: Ring,
    nodes: HashMap<u32, Node>,
}

impl ResolvedRing {
    fn node(&self, d: &Device) -> Node {
        self.nodes[&d.id].clone()
    }

    /// The device with ring id `id`.
    pub fn node_by_id(&self, id: u32) -> Option<Node> {
        self.nodes.get(&id).cloned()
    }

    /// The devices of `part`: primaries first, then handoffs.
    pub fn part_nodes(&self, part: u32) -> (Vec<Node>, Vec<Node>) {
        let primaries = self
            .ring
            .get_part_nodes(part)
            .into_iter()
            .map(|d| self.node(d))
            .collect();
        let handoffs = self
            .ring
            .get_more_nodes(part)
            .into_iter()
            .map(|d| self.node(d))
            .collect();
        (primaries, handoffs)
    }
}

struct Rings {
    account: Arc<ResolvedRing>,
    container: Arc<ResolvedRing>,
    object: Arc<ResolvedRing>,
    checked: Instant,
    mtimes: [Option<std::time::SystemTime>; 3],
}

/// The object storage service: rings, devices, databases.
pub struct ObjectStore {
    pub config: ObjectStoreConfig,
    rings: std::sync::RwLock<Arc<Rings>>,
    pub(crate) dbs: Arc<Databases>,
    /// How the proxy and replicator reach other nodes' storage servers.
    client: reqwest::Client,
    /// The queue of objects with an `X-Delete-At` (`<devices_root>/expiring.db`).
    expiring: tokio::sync::OnceCell<sqlx::SqlitePool>,
    /// Containers whose totals changed since their account's databases last heard, by
    /// account; the account updater sends them (see [`ObjectStore::container_update`]).
    pending_accounts: std::sync::Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// The same containers as durable markers (see [`PendingMarkers`]).
    pending_markers: tokio::sync::Mutex<PendingMarkers>,
    /// Held while queued totals are taken and sent, so a flush waits for a send under way
    /// (the updater's) rather than find the queue empty and read the account too early.
    account_sends: tokio::sync::Mutex<()>,
    /// Wakes the account updater.
    accounts_queued: tokio::sync::Notify,
    /// Account and container records recently read for object PUTs (see
    /// [`ObjectStore::stat_cached`]).
    info: std::sync::Mutex<InfoCache>,
}

/// Records read for object PUTs, by account and container (see [`ObjectStore::stat_cached`]).
#[derive(Default)]
struct InfoCache {
    records: HashMap<(String, Option<String>), CachedInfo>,
    /// When the cache last started over (a read begun before may not be kept).
    cleared: Option<Instant>,
}

enum CachedInfo {
    /// The record as read at that instant.
    Read(Instant, Stat),
    /// This process changed the record at that instant: a read begun before is stale.
    Changed(Instant),
}

/// How long a cached account or container record is used (upstream's proxy keeps them in
/// memcache for `recheck_account_existence` / `recheck_container_existence`, 60 s). This
/// process forgets a record as soon as it changes it; the time bounds how long a change
/// made elsewhere (a database replicated in from a peer) goes unseen.
const INFO_TTL: std::time::Duration = std::time::Duration::from_secs(10);
/// Cached records kept at most; beyond this the cache starts over.
const INFO_MAX: usize = 4096;

fn mtime(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Swift's replication quorum: a majority (`quorum_size`).
pub fn quorum(replicas: usize) -> usize {
    replicas / 2 + 1
}

impl ObjectStore {
    /// Opens the service. When `config.build_rings` and the state directory has no rings
    /// yet (first all-in-one start), builds the account, container and object rings over
    /// `config.devices`, one zone each, as a DevStack-style single node does, and creates
    /// the device directories.
    pub fn open(config: ObjectStoreConfig) -> anyhow::Result<Arc<ObjectStore>> {
        std::fs::create_dir_all(&config.rings_dir)?;
        std::fs::create_dir_all(&config.devices_root)?;
        for name in ["account", "container", "object"] {
            let ring = config.rings_dir.join(format!("{name}.ring"));
            if ring.exists() || !config.build_rings {
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
        let dbs = Arc::new(Databases::default());
        let client = crate::node::backend_client();
        let rings = Self::load_rings(&config, &dbs, &client)?;
        let (markers, pending) = PendingMarkers::open(config.devices_root.join("async_pending"))?;
        Ok(Arc::new(ObjectStore {
            config,
            rings: std::sync::RwLock::new(Arc::new(rings)),
            dbs,
            client,
            expiring: tokio::sync::OnceCell::new(),
            pending_accounts: std::sync::Mutex::new(pending),
            pending_markers: tokio::sync::Mutex::new(markers),
            account_sends: tokio::sync::Mutex::new(()),
            accounts_queued: tokio::sync::Notify::new(),
            info: Default::default(),
        }))
    }

    /// Whether a ring device is one this process serves (its ip:port is ours).
    pub fn is_local(&self, d: &Device) -> bool {
        is_local(&self.config, d)
    }

    fn load_rings(
        config: &ObjectStoreConfig,
        dbs: &Arc<Databases>,
        client: &reqwest::Client,
    ) -> anyhow::Result<Rings> {
        let dir = &config.rings_dir;
        let path = |n: &str| dir.join(format!("{n}.ring"));
        let resolve = |n: &str| -> anyhow::Result<Arc<ResolvedRing>> {
            let ring = Ring::load(&path(n))?;
            let nodes = ring
                .devices()
                .map(|d| {
                    let node: Node = if is_local(config, d) {
                        Arc::new(LocalDevice::new(
                            config.devices_root.join(&d.device),
                            dbs.clone(),
                        ))
                    } else {
                        Arc::new(RemoteDevice::new(client.clone(), &d.ip, d.port, &d.device))
                    };
                    (d.id, node)
                })
                .collect();
            Ok(Arc::new(ResolvedRing { ring, nodes }))
        };
        Ok(Rings {
            account: resolve("account")?,
            container: resolve("container")?,
            object: resolve("object")?,
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
            match Self::load_rings(&self.config, &self.dbs, &self.client) {
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

    /// The object ring with its devices resolved.
    pub fn object_ring(&self) -> Arc<ResolvedRing> {
        self.rings().object.clone()
    }

    fn hash_path(&self) -> &HashPath {
        &self.config.hash_path
    }

    /// An account (`container: None`) or container record: its target and primaries.
    fn db_nodes(&self, account: &str, container: Option<&str>) -> (Target, Vec<Node>) {
        let rings = self.rings();
        let ring = match container {
            None => &rings.account,
            Some(_) => &rings.container,
        };
        let part = ring
            .ring
            .get_part(self.hash_path(), account, container, None);
        let target = Target::new(self.hash_path(), part, account, container, None);
        (target, ring.part_nodes(part).0)
    }

    /// The record of an account or container from the first replica that has it.
    pub async fn stat(&self, account: &str, container: Option<&str>) -> SwiftResult<Option<Stat>> {
        let (target, nodes) = self.db_nodes(account, container);
        let mut failures = 0;
        for node in &nodes {
            match node.db_stat(&target).await {
                Ok(Some(stat)) => return Ok(Some(stat)),
                Ok(None) => {}
                Err(_) => failures += 1,
            }
        }
        if failures == nodes.len() {
            return Err(SwiftError::status(503));
        }
        Ok(None)
    }

    fn info(&self) -> std::sync::MutexGuard<'_, InfoCache> {
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of an account or container as [`ObjectStore::stat`] reads it, from a
    /// cache of records read in the last few seconds ([`INFO_TTL`]) when there is one: for
    /// the checks an object PUT makes (the container exists, its versioning, whether a
    /// quota applies), as upstream's proxy reads them through memcache. Its totals may
    /// be behind by the writes since; a caller that needs them exact reads them afresh.
    /// A change of the record through this process (PUT, POST, DELETE) drops it and keeps
    /// any read begun before the change out, so a deleted container is never found here.
    pub async fn stat_cached(
        &self,
        account: &str,
        container: Option<&str>,
    ) -> SwiftResult<Option<Stat>> {
        let key = (account.to_string(), container.map(str::to_string));
        if let Some(CachedInfo::Read(at, stat)) = self.info().records.get(&key)
            && at.elapsed() < INFO_TTL
        {
            return Ok(Some(stat.clone()));
        }
        let read_at = Instant::now();
        let stat = self.stat(account, container).await?;
        if let Some(stat) = &stat {
            let mut info = self.info();
            if info.records.len() >= INFO_MAX {
                info.records.clear();
                info.cleared = Some(Instant::now());
            }
            let fresh = info.cleared.is_none_or(|c| c < read_at)
                && match info.records.get(&key) {
                    None => true,
                    Some(CachedInfo::Read(at, _)) => *at < read_at,
                    Some(CachedInfo::Changed(at)) => *at < read_at,
                };
            if fresh {
                info.records
                    .insert(key, CachedInfo::Read(read_at, stat.clone()));
            }
        }
        Ok(stat)
    }

    /// Drops the cached record of an account or container this process just changed.
    fn changed_info(&self, account: &str, container: Option<&str>) {
        let key = (account.to_string(), container.map(str::to_string));
        self.info()
            .records
            .insert(key, CachedInfo::Changed(Instant::now()));
    }

    /// Applies `update` on every replica database of an account or container (created when
    /// `create`), and succeeds when a quorum did. Returns how many replicas it hit.
    async fn on_replicas(
        &self,
        account: &str,
        container: Option<&str>,
        create: bool,
        update: DbUpdate,
    ) -> SwiftResult<usize> {
        let changes_record = matches!(
            update,
            DbUpdate::PutStat { .. } | DbUpdate::PostStat { .. } | DbUpdate::DeleteStat { .. }
        );
        let result = self
            .on_replicas_uncached(account, container, create, update)
            .await;
        if changes_record {
            self.changed_info(account, container);
        }
        result
    }

    async fn on_replicas_uncached(
        &self,
        account: &str,
        container: Option<&str>,
        create: bool,
        update: DbUpdate,
    ) -> SwiftResult<usize> {
        let (target, nodes) = self.db_nodes(account, container);
        // Every replica at once, as the proxy's concurrent backend requests.
        let results = futures::future::join_all(nodes.iter().map(|node| {
            let (target, update) = (&target, &update);
            async move {
                match node.db_update(target, update, create).await {
                    Ok(Some(hit)) => Some(usize::from(hit)),
                    Ok(None) => Some(0),
                    Err(e) => {
                        tracing::warn!(node = ?node, error = ?e, "replica update failed");
                        None
                    }
                }
            }
        }))
        .await;
        let ok = results.iter().flatten().count();
        let hits: usize = results.iter().flatten().sum();
        if ok < quorum(nodes.len()) {
            return Err(SwiftError::status(503));
        }
        Ok(hits)
    }

    /// Creates the account's databases if missing (Swift's `account_autocreate`).
    pub async fn account_autocreate(&self, account: &str) -> SwiftResult<()> {
        if self.stat(account, None).await?.is_some() {
            return Ok(());
        }
        let update = DbUpdate::PutStat {
            timestamp: Timestamp::now(),
            metadata: Metadata::new(),
        };
        self.on_replicas(account, None, true, update).await?;
        Ok(())
    }

    /// `POST` on an account or container: merges metadata. False when it does not exist.
    pub async fn post_metadata(
        &self,
        account: &str,
        container: Option<&str>,
        meta: &Metadata,
    ) -> SwiftResult<bool> {
        let update = DbUpdate::PostStat {
            metadata: meta.clone(),
        };
        let hits = self.on_replicas(account, container, false, update).await?;
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
        let update = DbUpdate::PutStat {
            timestamp: Timestamp::now(),
            metadata: meta.clone(),
        };
        let created = self
            .on_replicas(account, Some(container), true, update)
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
        self.on_replicas(
            account,
            Some(container),
            false,
            DbUpdate::DeleteStat { timestamp: ts },
        )
        .await?;
        let update = DbUpdate::PutContainer {
            name: container.to_string(),
            put_timestamp: ts,
            object_count: 0,
            bytes_used: 0,
            deleted: true,
        };
        self.on_replicas(account, None, false, update).await?;
        Ok(())
    }

    /// Pushes a container's totals into its account's databases.
    async fn update_account(&self, account: &str, container: &str) -> SwiftResult<()> {
        let Some(stat) = self.stat(account, Some(container)).await? else {
            return Ok(());
        };
        let update = DbUpdate::PutContainer {
            name: container.to_string(),
            put_timestamp: stat.put_timestamp,
            object_count: stat.object_count,
            bytes_used: stat.bytes_used,
            deleted: false,
        };
        self.on_replicas(account, None, true, update).await?;
        Ok(())
    }

    /// A container's listing from the first replica that has it.
    pub async fn list_objects(
        &self,
        account: &str,
        container: &str,
        params: &ListParams,
    ) -> SwiftResult<Option<(Stat, Vec<Entry<ObjectRow>>)>> {
        Ok(
            match self.listing(account, Some(container), params).await? {
                Some((stat, Listing::Objects(rows))) => Some((stat, rows)),
                Some((stat, Listing::Containers(_))) => Some((stat, Vec::new())),
                None => None,
            },
        )
    }

    /// An account's listing; an account that does not exist yet lists nothing. The
    /// account's queued container totals are sent first, so a client reads its own writes.
    pub async fn list_containers(
        &self,
        account: &str,
        params: &ListParams,
    ) -> SwiftResult<Option<(Stat, Vec<Entry<ContainerRow>>)>> {
        self.flush_account(account).await?;
        Ok(match self.listing(account, None, params).await? {
            Some((stat, Listing::Containers(rows))) => Some((stat, rows)),
            Some((stat, Listing::Objects(_))) => Some((stat, Vec::new())),
            None => None,
        })
    }

    async fn listing(
        &self,
        account: &str,
        container: Option<&str>,
        params: &ListParams,
    ) -> SwiftResult<Option<(Stat, Listing)>> {
        let (target, nodes) = self.db_nodes(account, container);
        let mut failures = 0;
        for node in &nodes {
            match node.db_list(&target, params).await {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(node = ?node, error = ?e, "listing replica failed");
                    failures += 1;
                }
            }
        }
        if failures == nodes.len() {
            return Err(SwiftError::status(503));
        }
        Ok(None)
    }

    /// Where an object lives as `swift-get-nodes` prints it: its primaries' and handoffs'
    /// device directories as `<devices_root>/<device>` and the object directory relative to
    /// a device (for operators and tests; a device on another node is under that node's
    /// devices root).
    pub fn object_nodes(
        &self,
        account: &str,
        container: &str,
        object: &str,
    ) -> (Vec<PathBuf>, Vec<PathBuf>, PathBuf) {
        let ring = self.object_ring();
        let (part, primaries) =
            ring.ring
                .get_nodes(self.hash_path(), account, Some(container), Some(object));
        let root = &self.config.devices_root;
        let dirs = |devs: Vec<&Device>| devs.iter().map(|d| root.join(&d.device)).collect();
        let hash = self
            .hash_path()
            .hash_hex(account, Some(container), Some(object));
        (
            dirs(primaries),
            dirs(ring.ring.get_more_nodes(part)),
            crate::disk::object_dir(Path::new(""), part, &hash),
        )
    }

    /// The object's target and devices (primaries, then handoffs).
    fn object_devices(
        &self,
        account: &str,
        container: &str,
        object: &str,
    ) -> (Target, Vec<Node>, Vec<Node>) {
        let ring = self.object_ring();
        let part = ring
            .ring
            .get_part(self.hash_path(), account, Some(container), Some(object));
        let target = Target::new(
            self.hash_path(),
            part,
            account,
            Some(container),
            Some(object),
        );
        let (primaries, handoffs) = ring.part_nodes(part);
        (target, primaries, handoffs)
    }

    /// The newest state of an object over its primaries and handoffs; an object past its
    /// `X-Delete-At` is gone already (Swift's object server answers 404 for it).
    pub async fn object_state(
        &self,
        account: &str,
        container: &str,
        object: &str,
    ) -> SwiftResult<ObjectState<DataRef>> {
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
    ) -> SwiftResult<ObjectState<DataRef>> {
        let (target, primaries, handoffs) = self.object_devices(account, container, object);
        let primary_count = primaries.len();
        let nodes: Vec<Node> = primaries
            .into_iter()
            .chain(handoffs.into_iter().take(primary_count))
            .collect();
        let target = &target;
        let states = futures::future::join_all(
            nodes
                .iter()
                .map(|n| async move { n.object_state(target).await }),
        )
        .await;
        let mut best = ObjectState::Missing;
        let mut failures = 0;
        for (i, (state, node)) in states.into_iter().zip(&nodes).enumerate() {
            match state {
                Ok(state) => {
                    if state.timestamp() > best.timestamp() {
                        best = state;
                    }
                }
                Err(e) => {
                    tracing::warn!(node = ?node, error = %e, "object replica unreadable");
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
    }

    /// Opens writers on a quorum or more of the object's devices: each primary, or the next
    /// handoff when a primary is down.
    pub async fn object_writers(
        &self,
        account: &str,
        container: &str,
        object: &str,
    ) -> SwiftResult<Vec<Box<dyn ObjectWriter>>> {
        let (target, primaries, handoffs) = self.object_devices(account, container, object);
        let target = &target;
        // Every primary at once; the ones that fail are replaced by handoffs in turn.
        let opened = futures::future::join_all(
            primaries
                .iter()
                .map(|n| async move { n.object_writer(target).await }),
        )
        .await;
        let mut handoffs = handoffs.into_iter();
        let mut writers = Vec::new();
        for (result, primary) in opened.into_iter().zip(&primaries) {
            let mut result = result;
            let mut node = primary.clone();
            loop {
                match result {
                    Ok(w) => {
                        writers.push(w);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(node = ?node, error = %e, "device down; trying a handoff");
                        match handoffs.next() {
                            Some(h) => {
                                result = h.object_writer(target).await;
                                node = h;
                            }
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
        writers: Vec<Box<dyn ObjectWriter>>,
        meta: &ObjectMeta,
        replicas: usize,
    ) -> SwiftResult<()> {
        // Every replica's fsyncs at once.
        let results = futures::future::join_all(writers.into_iter().map(|w| async move {
            let r = w.commit(meta).await;
            if let Err(e) = &r {
                tracing::warn!(error = %e, "object commit failed");
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
        self.object_ring().ring.replicas()
    }

    /// Writes a tombstone for the object on its primaries (and handoffs that hold it).
    pub async fn object_delete(
        &self,
        account: &str,
        container: &str,
        object: &str,
        ts: Timestamp,
    ) -> SwiftResult<()> {
        let (target, primaries, handoffs) = self.object_devices(account, container, object);
        let replicas = primaries.len();
        let target = &target;
        let nodes = primaries
            .iter()
            .map(|n| (n, true))
            .chain(handoffs.iter().take(replicas).map(|n| (n, false)));
        let results = futures::future::join_all(nodes.map(|(node, primary)| async move {
            match node.object_delete(target, ts, !primary).await {
                Ok(_) => usize::from(primary),
                Err(e) => {
                    tracing::warn!(node = ?node, error = %e, "tombstone failed");
                    0
                }
            }
        }))
        .await;
        if results.iter().sum::<usize>() < quorum(replicas) {
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
        let (target, primaries, handoffs) = self.object_devices(account, container, object);
        let replicas = primaries.len();
        let ts = Timestamp::now();
        let (target, posted) = (&target, &posted);
        let results =
            futures::future::join_all(primaries.iter().chain(handoffs.iter().take(replicas)).map(
                |node| async move {
                    match node.object_post(target, ts, posted).await {
                        Ok(hit) => usize::from(hit),
                        Err(e) => {
                            tracing::warn!(node = ?node, error = %e, "post failed");
                            0
                        }
                    }
                },
            ))
            .await;
        if results.iter().sum::<usize>() == 0 {
            return Err(SwiftError::status(503));
        }
        Ok(())
    }

    /// Records an object's new state in its container's databases, and queues the
    /// container's totals for the account's: the account updater sends them a moment later,
    /// once for all the PUTs into that container meanwhile (upstream's container updater
    /// does the same, every few minutes), and an account read sends them first. The queue
    /// is durable before this returns (see [`PendingMarkers`]): a process that stops before
    /// the updater ran sends them when it starts again.
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
        let update = DbUpdate::PutObject { row, deleted };
        self.on_replicas(account, Some(container), false, update)
            .await?;
        self.queue_account_update(account, container).await
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        self.pending_accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `container`'s totals for `account`, durably: its marker is written unless it
    /// is there already (the first change of a burst writes it, the rest find it).
    async fn queue_account_update(&self, account: &str, container: &str) -> SwiftResult<()> {
        self.pending()
            .entry(account.to_string())
            .or_default()
            .insert(container.to_string());
        // Marked after it is queued, so the updater that just sent it sees it queued
        // again and keeps the marker (see `unmark_if_sent`).
        let mut markers = self.pending_markers.lock().await;
        let result = markers.mark(account, container).await;
        drop(markers);
        self.accounts_queued.notify_one();
        result.map_err(SwiftError::unavailable)
    }

    /// Drops the marker of a container whose totals were sent, unless a change queued it
    /// again meanwhile.
    async fn unmark_if_sent(&self, account: &str, container: &str) {
        let mut markers = self.pending_markers.lock().await;
        let queued = self
            .pending()
            .get(account)
            .is_some_and(|c| c.contains(container));
        if !queued {
            markers.unmark(account, container).await;
        }
    }

    /// Sends `account`'s queued container totals now; what fails stays queued. Returns once
    /// every change queued before the call has reached the account's databases (or failed).
    pub async fn flush_account(&self, account: &str) -> SwiftResult<()> {
        let _sending = self.account_sends.lock().await;
        let Some(containers) = self.pending().remove(account) else {
            return Ok(());
        };
        let mut result = Ok(());
        for c in containers {
            if result.is_ok() {
                result = self.update_account(account, &c).await;
                if result.is_ok() {
                    self.unmark_if_sent(account, &c).await;
                    continue;
                }
            }
            // Still marked on disk: queued again in memory only.
            self.pending()
                .entry(account.to_string())
                .or_default()
                .insert(c);
        }
        result
    }

    /// Sends every queued container total once (one round of the account updater).
    pub async fn send_pending_accounts(&self) {
        let accounts: Vec<String> = self.pending().keys().cloned().collect();
        for account in accounts {
            if let Err(e) = self.flush_account(&account).await {
                tracing::warn!(
                    account,
                    status = e.status,
                    "account update failed; kept queued"
                );
            }
        }
    }

    /// The account updater: sends queued container totals as they come (the first wakes
    /// it, those queued while it works go together in its next round), and retries failed
    /// ones every few seconds. Its first round sends what a previous run left queued.
    pub async fn account_updater(&self) {
        loop {
            self.send_pending_accounts().await;
            let woken = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                self.accounts_queued.notified(),
            )
            .await;
            if woken.is_ok() {
                // Gather a burst's changes into one round: under a stream of PUTs a round
                // per PUT read the container's totals and wrote the account's three
                // replicas each time, and dropped and rewrote its durable marker. Upstream's
                // container updater sends them every five minutes; an account read here
                // sends them first (see `flush_account`).
                tokio::time::sleep(ACCOUNT_UPDATE_DELAY).await;
            }
        }
    }
}

/// How long the account updater lets changes gather after the first wakes it.
const ACCOUNT_UPDATE_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// The account updater's queue on disk, `<devices_root>/async_pending/<md5 of account/container>`
/// holding the account and container (as upstream keeps updates not yet applied in
/// `async_pending` files, written before the 201 and removed once applied). A container has
/// one marker while it has changes not yet sent: the first change of a burst writes and
/// fsyncs it; the rest find it written, so a PUT into a container already queued costs no
/// more than an in-memory check.
struct PendingMarkers {
    dir: PathBuf,
    marked: BTreeSet<(String, String)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PendingMarker {
    account: String,
    container: String,
}

impl PendingMarkers {
    /// Opens the queue, with what a previous run left in it by account. A marker that cannot
    /// be read was being written when the process stopped (its change was never
    /// acknowledged) and is removed.
    #[allow(clippy::type_complexity)]
    fn open(dir: PathBuf) -> std::io::Result<(Self, BTreeMap<String, BTreeSet<String>>)> {
        std::fs::create_dir_all(&dir)?;
        let mut marked = BTreeSet::new();
        let mut pending: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<PendingMarker>(&b).ok())
            {
                Some(m) => {
                    pending
                        .entry(m.account.clone())
                        .or_default()
                        .insert(m.container.clone());
                    marked.insert((m.account, m.container));
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        if !marked.is_empty() {
            tracing::info!(
                containers = marked.len(),
                "account updates left queued by the last run"
            );
        }
        Ok((PendingMarkers { dir, marked }, pending))
    }

    fn path(&self, account: &str, container: &str) -> PathBuf {
        use md5::Digest as _;
        let digest = md5::Md5::digest(format!("{account}/{container}").as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }

    /// Writes the container's marker (file and directory fsynced) unless it is there.
    async fn mark(&mut self, account: &str, container: &str) -> std::io::Result<()> {
        let key = (account.to_string(), container.to_string());
        if self.marked.contains(&key) {
            return Ok(());
        }
        let path = self.path(account, container);
        let body = serde_json::to_vec(&PendingMarker {
            account: key.0.clone(),
            container: key.1.clone(),
        })?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&body)?;
            f.sync_all()?;
            crate::disk::fsync_dir(&dir)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.marked.insert(key);
        Ok(())
    }

    /// Removes the container's marker (not fsynced: one that comes back after a crash only
    /// sends the same totals again).
    async fn unmark(&mut self, account: &str, container: &str) {
        if self
            .marked
            .remove(&(account.to_string(), container.to_string()))
        {
            let path = self.path(account, container);
            if let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::warn!(path = %path.display(), error = %e, "account update marker not removed");
            }
        }
    }
}

impl ObjectStore {
    /// The devices of the object ring this process serves, with their ring ids.
    pub fn local_object_devices(&self) -> Vec<(u32, LocalDevice)> {
        self.local_devices(&self.object_ring())
    }

    /// The devices of `ring` this process serves, with their ring ids.
    fn local_devices(&self, ring: &ResolvedRing) -> Vec<(u32, LocalDevice)> {
        let mut out: Vec<(u32, LocalDevice)> = ring
            .ring
            .devices()
            .filter(|d| self.is_local(d) && self.config.devices_root.join(&d.device).is_dir())
            .map(|d| {
                let path = self.config.devices_root.join(&d.device);
                (d.id, LocalDevice::new(path, self.dbs.clone()))
            })
            .collect();
        out.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        out.dedup_by(|a, b| a.1.path == b.1.path);
        out
    }

    /// A device this process holds by name (any ring's), for the storage server: `None`
    /// when no ring puts a device of that name at one of this node's addresses.
    pub fn held_device(&self, name: &str) -> Option<LocalDevice> {
        let rings = self.rings();
        let held = [&rings.account, &rings.container, &rings.object]
            .iter()
            .any(|r| {
                r.ring
                    .devices()
                    .any(|d| d.device == name && self.is_local(d))
            });
        held.then(|| LocalDevice::new(self.config.devices_root.join(name), self.dbs.clone()))
    }

    /// One replicator pass over every local device: its account and container databases,
    /// then its objects.
    pub async fn replicate_once(&self) -> std::io::Result<crate::replication::ReplicationStats> {
        let ring = self.object_ring();
        let mut total = crate::replication::ReplicationStats::default();
        let rings = self.rings();
        for (kind, ring) in [
            (db::Kind::Account, &rings.account),
            (db::Kind::Container, &rings.container),
        ] {
            for (id, device) in self.local_devices(ring) {
                let (merged, unreachable) =
                    crate::replication::replicate_databases(ring, kind, id, &device).await?;
                total.databases_merged += merged;
                total.unreachable += unreachable;
            }
        }
        for (id, device) in self.local_object_devices() {
            let s = crate::replication::replicate_device(&ring, id, &device).await?;
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
        let devices: Vec<PathBuf> = self
            .local_object_devices()
            .into_iter()
            .map(|(_, d)| d.path)
            .collect();
        let per_device = tokio::task::spawn_blocking(move || {
            devices
                .iter()
                .map(|d| crate::replication::audit_device(d, rate))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await
        .map_err(std::io::Error::other)??;
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

/// Whether a ring device's ip:port is one of `config.node_addresses`.
fn is_local(config: &ObjectStoreConfig, d: &Device) -> bool {
    let addr = format!("{}:{}", d.ip, d.port);
    config.node_addresses.contains(&addr)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A container's change queued for its account's totals, then the process stops before
    /// the account updater ran: the next start finds the queue on disk and applies it.
    #[tokio::test]
    async fn queued_account_totals_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = ObjectStoreConfig::new(dir.path(), "http://x");
        let store = ObjectStore::open(config.clone()).unwrap();
        store
            .container_put("AUTH_a", "c", &Metadata::new())
            .await
            .unwrap();
        let row = ObjectRow {
            name: "o".into(),
            created_at: Timestamp::now().normal(),
            size: 5,
            content_type: "text/plain".into(),
            etag: "e".into(),
        };
        store
            .container_update("AUTH_a", "c", row, false)
            .await
            .unwrap();
        // The process stops here: no account updater pass, the in-memory queue is gone.
        store.dbs.close_all().await;
        drop(store);
        let store = ObjectStore::open(config).unwrap();
        let totals = |s: Stat| (s.object_count, s.bytes_used);
        let account = store.stat("AUTH_a", None).await.unwrap().unwrap();
        assert_eq!(totals(account), (0, 0), "not applied before the restart");
        store.send_pending_accounts().await;
        let account = store.stat("AUTH_a", None).await.unwrap().unwrap();
        assert_eq!(totals(account), (1, 5));
        // Applied updates leave nothing queued on disk.
        store.dbs.close_all().await;
        drop(store);
        let pending = dir.path().join("object-devices").join("async_pending");
        assert_eq!(std::fs::read_dir(pending).unwrap().count(), 0);
    }

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
