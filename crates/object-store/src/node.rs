//! The seam between the proxy (and the replicator) and the storage servers: one
//! [`StorageDevice`] per ring device. A device this process serves is a [`LocalDevice`], a
//! directory under `devices_root`; a device on another node is a [`RemoteDevice`], reached
//! through that node's storage server (see [`crate::server`]) on the ring device's ip:port.
//!
//! Both implement the same operations with the same meaning: object state, streamed object
//! writes and reads, tombstones, posted metadata, account and container database records and
//! listings, and the replicator's suffix hashes and file pushes. The server side of a remote
//! device calls the local implementation, so the two cannot drift apart.
//!
//! Owns no policy: quorum, handoffs and newest-wins are the manager's.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use ferro_object_ring::HashPath;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::db::{self, ContainerRow, Databases, Kind, ObjectRow, Stat};
use crate::disk::{self, ObjectMeta, ObjectState, PostedMeta};
use crate::model::{Entry, ListParams, Metadata, SwiftError, SwiftResult, Timestamp};

/// Bytes as they stream from a device.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// What a request is about on a device: an account (`container: None`), a container, or an
/// object, with its partition and hash.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub part: u32,
    pub hash: String,
    pub account: String,
    pub container: Option<String>,
    pub object: Option<String>,
}

impl Target {
    pub fn new(
        hash_path: &HashPath,
        part: u32,
        account: &str,
        container: Option<&str>,
        object: Option<&str>,
    ) -> Target {
        Target {
            part,
            hash: hash_path.hash_hex(account, container, object),
            account: account.to_string(),
            container: container.map(str::to_string),
            object: object.map(str::to_string),
        }
    }

    /// Which database an account or container target lives in.
    pub fn kind(&self) -> Kind {
        if self.container.is_some() {
            Kind::Container
        } else {
            Kind::Account
        }
    }

    /// The object's directory relative to a device.
    fn object_rel(&self) -> PathBuf {
        disk::object_dir(Path::new(""), self.part, &self.hash)
    }

    /// `/<device>/<partition>/<account>[/<container>[/<object>]]`, as Swift's backend paths.
    fn wire_path(&self, device: &str) -> String {
        let enc = crate::model::percent_encode;
        let mut p = format!("/{}/{}/{}", enc(device), self.part, enc(&self.account));
        for name in [&self.container, &self.object].into_iter().flatten() {
            p.push('/');
            p.push_str(&enc(name));
        }
        p
    }
}

/// One account or container database on a device, by hash (the database replicator's
/// view: it walks the files and knows no names).
#[derive(Clone, Debug, PartialEq)]
pub struct DbRef {
    pub kind: Kind,
    pub part: u32,
    pub hash: String,
}

impl DbRef {
    fn path(&self, device: &Path) -> io::Result<PathBuf> {
        if self.hash.len() != 32 || !self.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a database hash",
            ));
        }
        Ok(db::db_path(device, self.kind, self.part, &self.hash))
    }
}

/// The database replicator's requests (`REPLICATE /<device>/<part>/<accounts|containers>/<hash>`
/// with this as its JSON body), as Swift's db replicator sends `sync` and `merge_items`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DbReplicate {
    Digest,
    Merge { replica: Box<db::Replica> },
}

#[derive(Serialize, Deserialize)]
pub struct DbDigest {
    pub digest: Option<String>,
}

/// A change to an account or container database, as the proxy sends it to every replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DbUpdate {
    /// Create (or re-create) the record; the result says whether it was new.
    PutStat {
        timestamp: Timestamp,
        metadata: Metadata,
    },
    /// Merge metadata; the result says whether the record exists.
    PostStat {
        metadata: Metadata,
    },
    DeleteStat {
        timestamp: Timestamp,
    },
    /// A container's object row (an object PUT, or DELETE with `deleted`).
    PutObject {
        row: ObjectRow,
        deleted: bool,
    },
    /// An account's container row with the container's totals.
    PutContainer {
        name: String,
        put_timestamp: Timestamp,
        object_count: i64,
        bytes_used: i64,
        deleted: bool,
    },
}

impl DbUpdate {
    async fn apply(&self, pool: &sqlx::SqlitePool, kind: Kind) -> SwiftResult<bool> {
        match self {
            DbUpdate::PutStat {
                timestamp,
                metadata,
            } => db::put_stat(pool, *timestamp, metadata).await,
            DbUpdate::PostStat { metadata } => db::post_stat(pool, kind, metadata).await,
            DbUpdate::DeleteStat { timestamp } => {
                db::delete_stat(pool, *timestamp).await.map(|_| true)
            }
            DbUpdate::PutObject { row, deleted } => db::container_put_object(pool, row, *deleted)
                .await
                .map(|_| true),
            DbUpdate::PutContainer {
                name,
                put_timestamp,
                object_count,
                bytes_used,
                deleted,
            } => db::account_put_container(
                pool,
                name,
                *put_timestamp,
                *object_count,
                *bytes_used,
                *deleted,
            )
            .await
            .map(|_| true),
        }
    }
}

/// One page of a listing: a container's objects or an account's containers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listing {
    Objects(Vec<Entry<ObjectRow>>),
    Containers(Vec<Entry<ContainerRow>>),
}

/// Where an object's bytes are: a file here, or a data file on another node.
#[derive(Clone, Debug)]
pub enum DataRef {
    Local(PathBuf),
    Remote(RemoteData),
}

/// An object's data file on another node: the object and the timestamp of its `.data`.
#[derive(Clone, Debug)]
pub struct RemoteData {
    device: RemoteDevice,
    target: Target,
    timestamp: Timestamp,
}

impl DataRef {
    /// The object's whole data (a data file's footer is not part of it).
    pub async fn read_all(&self) -> io::Result<Bytes> {
        match self {
            DataRef::Local(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || disk::read_data(&path))
                    .await
                    .map_err(blocking_err)?
                    .map(Bytes::from)
            }
            DataRef::Remote(r) => {
                let resp = r.device.data_request(&r.target, r.timestamp, None).await?;
                resp.bytes().await.map_err(io::Error::other)
            }
        }
    }

    /// `len` bytes from `offset`.
    pub fn stream(&self, offset: u64, len: u64) -> ByteStream {
        match self {
            DataRef::Local(path) => file_stream(path.clone(), offset, len),
            DataRef::Remote(r) => {
                if len == 0 {
                    return futures::stream::empty().boxed();
                }
                let r = r.clone();
                futures::stream::once(async move {
                    let range = (offset, offset + len - 1);
                    let resp = r
                        .device
                        .data_request(&r.target, r.timestamp, Some(range))
                        .await?;
                    Ok::<_, io::Error>(response_stream(resp))
                })
                .map(|r| match r {
                    Ok(s) => s.boxed(),
                    Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                })
                .flatten()
                .boxed()
            }
        }
    }

    /// Moves the object that holds these bytes into quarantine: they failed their checksum.
    pub async fn quarantine(&self) -> io::Result<()> {
        match self {
            DataRef::Local(path) => {
                let dir = path
                    .parent()
                    .ok_or_else(|| io::Error::other("object path"))?
                    .to_path_buf();
                tokio::task::spawn_blocking(move || crate::replication::quarantine(&dir))
                    .await
                    .map_err(io::Error::other)?
            }
            DataRef::Remote(r) => {
                let req = r
                    .device
                    .request(reqwest::Method::DELETE, &r.target)
                    .header("X-Backend-Quarantine", r.timestamp.normal());
                call(req, &[204, 404]).await.map(|_| ())
            }
        }
    }
}

/// A response's body as it arrives.
fn response_stream(resp: reqwest::Response) -> ByteStream {
    futures::stream::try_unfold(resp, |mut resp| async move {
        match resp.chunk().await.map_err(io::Error::other)? {
            Some(chunk) => Ok(Some((chunk, resp))),
            None => Ok(None),
        }
    })
    .boxed()
}

/// A request body streamed from `stream`.
fn streamed_body<S>(stream: S) -> reqwest::Body
where
    S: futures::Stream<Item = io::Result<Bytes>> + Send + Sync + 'static,
{
    reqwest::Body::wrap(http_body_util::StreamBody::new(
        stream.map(|r| r.map(http_body::Frame::data)),
    ))
}

/// Bytes one read of a local object file takes at most.
const READ_CHUNK: usize = 1 << 20;
/// Reads of this many bytes or more bypass the page cache (`O_DIRECT`), as Swift's object
/// server keeps no more than `keep_cache_size` (5 MiB) of an object cached: a large object's
/// bytes come from the disk straight into the buffer that is sent, with no page cache to
/// fill and copy out of (which was most of a 64 MiB GET's CPU once the object had been
/// written past the cache, see [`disk::Writer`]).
const DIRECT_READ_FROM: u64 = 4 << 20;
const DIRECT_ALIGN: u64 = 4096;

/// A range of a local object file being read, a chunk at a time on blocking threads.
struct FileReader {
    path: PathBuf,
    file: std::fs::File,
    direct: bool,
    /// The next byte to read, and how many are left.
    pos: u64,
    left: u64,
}

impl FileReader {
    fn open(path: PathBuf, pos: u64, left: u64) -> io::Result<FileReader> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut direct = left >= DIRECT_READ_FROM;
        let file = if direct {
            match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    direct = false;
                    std::fs::File::open(&path)?
                }
                Err(e) => return Err(e),
            }
        } else {
            std::fs::File::open(&path)?
        };
        Ok(FileReader {
            path,
            file,
            direct,
            pos,
            left,
        })
    }

    fn next_chunk(&mut self) -> io::Result<Bytes> {
        let chunk = if self.direct {
            match self.read_direct() {
                // A filesystem that takes O_DIRECT at open but not these reads.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.file = std::fs::File::open(&self.path)?;
                    self.direct = false;
                    self.read_buffered()?
                }
                r => r?,
            }
        } else {
            self.read_buffered()?
        };
        if chunk.is_empty() {
            return Err(io::Error::other("object file shorter than recorded"));
        }
        self.pos += chunk.len() as u64;
        self.left -= chunk.len() as u64;
        Ok(chunk)
    }

    fn read_buffered(&mut self) -> io::Result<Bytes> {
        use std::os::unix::fs::FileExt as _;
        let mut buf = vec![0u8; self.left.min(READ_CHUNK as u64) as usize];
        let mut n = 0;
        while n < buf.len() {
            match self.file.read_at(&mut buf[n..], self.pos + n as u64)? {
                0 => break,
                got => n += got,
            }
        }
        buf.truncate(n);
        Ok(Bytes::from(buf))
    }

    /// Whole aligned blocks around the wanted bytes into an aligned buffer; the chunk is
    /// the wanted part of it (no copy).
    fn read_direct(&mut self) -> io::Result<Bytes> {
        use std::os::unix::fs::FileExt as _;
        let base = self.pos - self.pos % DIRECT_ALIGN;
        let skip = (self.pos - base) as usize;
        let want = (skip as u64 + self.left)
            .min(READ_CHUNK as u64)
            .next_multiple_of(DIRECT_ALIGN) as usize;
        let mut buf = vec![0u8; want + DIRECT_ALIGN as usize];
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN as usize);
        let mut n = 0;
        while n < want {
            // Short only at the end of the file (which need not be block-aligned).
            match self
                .file
                .read_at(&mut buf[start + n..start + want], base + n as u64)?
            {
                0 => break,
                got => n += got,
            }
            if n % DIRECT_ALIGN as usize != 0 {
                break;
            }
        }
        let usable = n.saturating_sub(skip).min(self.left as usize);
        Ok(Bytes::from(buf).slice(start + skip..start + skip + usable))
    }
}

/// Streams `len` bytes of `path` from `offset`, in reads of up to [`READ_CHUNK`]. The next
/// read is under way while a chunk is being sent, so the disk and the network overlap.
pub fn file_stream(path: PathBuf, offset: u64, len: u64) -> ByteStream {
    type Read = tokio::task::JoinHandle<io::Result<(FileReader, Bytes)>>;
    fn start(mut r: FileReader) -> Read {
        tokio::task::spawn_blocking(move || r.next_chunk().map(|c| (r, c)))
    }
    if len == 0 {
        return futures::stream::empty().boxed();
    }
    let first: Read = tokio::task::spawn_blocking(move || {
        let mut r = FileReader::open(path, offset, len)?;
        r.next_chunk().map(|c| (r, c))
    });
    futures::stream::try_unfold(Some(first), |pending: Option<Read>| async move {
        let Some(read) = pending else {
            return Ok(None);
        };
        let (r, chunk) = read.await.map_err(blocking_err)??;
        let next = (r.left > 0).then(|| start(r));
        Ok(Some((chunk, next)))
    })
    .boxed()
}

/// An object being written to one device; nothing is stored unless it is committed.
#[async_trait::async_trait]
pub trait ObjectWriter: Send {
    async fn write(&mut self, chunk: &Bytes) -> io::Result<()>;
    /// Makes the object durable with `meta` (fsynced before this returns).
    async fn commit(self: Box<Self>, meta: &ObjectMeta) -> io::Result<()>;
}

/// One ring device, here or on another node.
#[async_trait::async_trait]
pub trait StorageDevice: Send + Sync + std::fmt::Debug {
    /// The newest state of an object on this device.
    async fn object_state(&self, t: &Target) -> io::Result<ObjectState<DataRef>>;
    /// Starts writing an object; fails when the device (or its node) is down.
    async fn object_writer(&self, t: &Target) -> io::Result<Box<dyn ObjectWriter>>;
    /// Writes a tombstone at `ts`; with `only_if_present`, only where the object has a
    /// directory (a handoff that held it). True when one was written.
    async fn object_delete(
        &self,
        t: &Target,
        ts: Timestamp,
        only_if_present: bool,
    ) -> io::Result<bool>;
    /// Records posted metadata when the object is there. True when it was.
    async fn object_post(&self, t: &Target, ts: Timestamp, posted: &PostedMeta)
    -> io::Result<bool>;
    /// An account's or container's record; `None` when it has none (or a deleted one).
    async fn db_stat(&self, t: &Target) -> SwiftResult<Option<Stat>>;
    /// Applies `update` to the database (created first when `create`); `None` when there
    /// is no database and `create` is false.
    async fn db_update(
        &self,
        t: &Target,
        update: &DbUpdate,
        create: bool,
    ) -> SwiftResult<Option<bool>>;
    /// The record with one page of its listing; `None` when there is no live record.
    async fn db_list(
        &self,
        t: &Target,
        params: &ListParams,
    ) -> SwiftResult<Option<(Stat, Listing)>>;
    /// The hash of every suffix of an object partition (Swift's REPLICATE).
    async fn suffix_hashes(&self, part: u32) -> io::Result<BTreeMap<String, String>>;
    /// The files of every object directory in a suffix, by object hash.
    async fn suffix_files(
        &self,
        part: u32,
        suffix: &str,
    ) -> io::Result<BTreeMap<String, Vec<String>>>;
    /// Copies one object file here, durably, and tidies the object's directory.
    async fn sync_file(
        &self,
        part: u32,
        suffix: &str,
        hash: &str,
        name: &str,
        from: &Path,
    ) -> io::Result<()>;
    /// A database's digest ([`db::replica_digest`]); `None` when it has none here.
    async fn db_digest(&self, r: &DbRef) -> io::Result<Option<String>>;
    /// Merges a peer's replica into the database here, created when missing.
    async fn db_merge(&self, r: &DbRef, replica: &db::Replica) -> io::Result<()>;
}

/// A device that is a directory of this process (`<devices_root>/<device>`).
#[derive(Clone, Debug)]
pub struct LocalDevice {
    pub path: PathBuf,
    dbs: Arc<Databases>,
}

fn not_mounted(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("device {} is not mounted", path.display()),
    )
}

fn blocking_err(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(e)
}

impl LocalDevice {
    pub fn new(path: PathBuf, dbs: Arc<Databases>) -> LocalDevice {
        LocalDevice { path, dbs }
    }

    /// Runs `f` on a blocking thread with the device's path, when the device is there.
    async fn on_disk<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            if !path.is_dir() {
                return Err(not_mounted(&path));
            }
            f(&path)
        })
        .await
        .map_err(blocking_err)?
    }

    fn db_path(&self, t: &Target) -> PathBuf {
        db::db_path(&self.path, t.kind(), t.part, &t.hash)
    }

    async fn open_db(&self, t: &Target, create: bool) -> SwiftResult<Option<sqlx::SqlitePool>> {
        self.dbs.open(&self.db_path(t), t.kind(), create).await
    }

    /// The object directory of `hash` in `part`/`suffix`, refusing names that are not a
    /// suffix and an md5 (they come from the network).
    fn object_dir_checked(&self, part: u32, suffix: &str, hash: &str) -> io::Result<PathBuf> {
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        if suffix.len() != 3 || !hex(suffix) || hash.len() != 32 || !hex(hash) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a suffix and object hash",
            ));
        }
        if !hash.ends_with(suffix) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the hash is not in that suffix",
            ));
        }
        Ok(disk::object_dir(&self.path, part, hash))
    }
}

#[async_trait::async_trait]
impl StorageDevice for LocalDevice {
    async fn object_state(&self, t: &Target) -> io::Result<ObjectState<DataRef>> {
        let rel = t.object_rel();
        let state = self
            .on_disk(move |dev| disk::read_state(&dev.join(rel)))
            .await?;
        Ok(state.map_data(DataRef::Local))
    }

    async fn object_writer(&self, t: &Target) -> io::Result<Box<dyn ObjectWriter>> {
        let writer = disk::Writer::create(&self.path).await?;
        Ok(Box::new(LocalWriter {
            writer,
            dir: self.path.join(t.object_rel()),
        }))
    }

    async fn object_delete(
        &self,
        t: &Target,
        ts: Timestamp,
        only_if_present: bool,
    ) -> io::Result<bool> {
        let rel = t.object_rel();
        self.on_disk(move |dev| {
            let dir = dev.join(rel);
            if only_if_present && !dir.exists() {
                return Ok(false);
            }
            disk::write_tombstone(&dir, ts).map(|_| true)
        })
        .await
    }

    async fn object_post(
        &self,
        t: &Target,
        ts: Timestamp,
        posted: &PostedMeta,
    ) -> io::Result<bool> {
        let rel = t.object_rel();
        let posted = posted.clone();
        self.on_disk(move |dev| {
            let dir = dev.join(rel);
            if !matches!(disk::read_state(&dir)?, ObjectState::Present { .. }) {
                return Ok(false);
            }
            disk::write_meta(&dir, ts, &posted).map(|_| true)
        })
        .await
    }

    async fn db_stat(&self, t: &Target) -> SwiftResult<Option<Stat>> {
        match self.open_db(t, false).await? {
            Some(pool) => db::get_stat(&pool, t.kind()).await,
            None => Ok(None),
        }
    }

    async fn db_update(
        &self,
        t: &Target,
        update: &DbUpdate,
        create: bool,
    ) -> SwiftResult<Option<bool>> {
        let Some(pool) = self.open_db(t, create).await? else {
            return Ok(None);
        };
        match update {
            // Rows of concurrent requests into one container go to it together.
            DbUpdate::PutObject { row, deleted } => self
                .dbs
                .container_put_object(&self.db_path(t), &pool, row.clone(), *deleted)
                .await
                .map(|_| Some(true)),
            _ => update.apply(&pool, t.kind()).await.map(Some),
        }
    }

    async fn db_list(
        &self,
        t: &Target,
        params: &ListParams,
    ) -> SwiftResult<Option<(Stat, Listing)>> {
        let Some(pool) = self.open_db(t, false).await? else {
            return Ok(None);
        };
        let Some(stat) = db::get_stat(&pool, t.kind()).await? else {
            return Ok(None);
        };
        let listing = match t.kind() {
            Kind::Container => Listing::Objects(db::list_objects(&pool, params).await?),
            Kind::Account => Listing::Containers(db::list_containers(&pool, params).await?),
        };
        Ok(Some((stat, listing)))
    }

    async fn suffix_hashes(&self, part: u32) -> io::Result<BTreeMap<String, String>> {
        self.on_disk(move |dev| {
            crate::replication::suffix_hashes(&dev.join("objects").join(part.to_string()))
        })
        .await
    }

    async fn suffix_files(
        &self,
        part: u32,
        suffix: &str,
    ) -> io::Result<BTreeMap<String, Vec<String>>> {
        let suffix = suffix.to_string();
        self.on_disk(move |dev| {
            let dir = dev.join("objects").join(part.to_string()).join(suffix);
            let mut out = BTreeMap::new();
            for entry in disk::read_dir_or_empty(&dir)? {
                if entry.file_type()?.is_dir()
                    && let Some(name) = entry.file_name().to_str()
                {
                    out.insert(name.to_string(), disk::list_files(&entry.path())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn sync_file(
        &self,
        part: u32,
        suffix: &str,
        hash: &str,
        name: &str,
        from: &Path,
    ) -> io::Result<()> {
        let to = self.object_dir_checked(part, suffix, hash)?;
        let (name, from) = (name.to_string(), from.to_path_buf());
        self.on_disk(move |dev| {
            disk::copy_file(&from, dev, &to, &name)?;
            disk::tidy(&to)
        })
        .await
    }

    async fn db_digest(&self, r: &DbRef) -> io::Result<Option<String>> {
        Ok(self
            .db_replica(r)
            .await?
            .map(|rep| db::replica_digest(&rep)))
    }

    async fn db_merge(&self, r: &DbRef, replica: &db::Replica) -> io::Result<()> {
        let path = r.path(&self.path)?;
        let pool = self
            .dbs
            .open(&path, r.kind, true)
            .await
            .map_err(swift_io)?
            .ok_or_else(|| io::Error::other("database not created"))?;
        db::replica_merge(&pool, replica).await.map_err(swift_io)
    }
}

struct LocalWriter {
    writer: disk::Writer,
    dir: PathBuf,
}

#[async_trait::async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, chunk: &Bytes) -> io::Result<()> {
        self.writer.write(chunk).await
    }

    async fn commit(self: Box<Self>, meta: &ObjectMeta) -> io::Result<()> {
        self.writer.commit(self.dir, meta.clone()).await
    }
}

impl LocalDevice {
    /// This device's replica of a database; `None` when it has none.
    pub async fn db_replica(&self, r: &DbRef) -> io::Result<Option<db::Replica>> {
        if !self.path.is_dir() {
            return Err(not_mounted(&self.path));
        }
        let path = r.path(&self.path)?;
        let Some(pool) = self
            .dbs
            .open(&path, r.kind, false)
            .await
            .map_err(swift_io)?
        else {
            return Ok(None);
        };
        db::replica_export(&pool, r.kind).await.map_err(swift_io)
    }

    /// Receives a file pushed by a peer's replicator (`SYNC`): streams it into the device's
    /// `tmp/` and then into place as [`StorageDevice::sync_file`] does.
    pub async fn receive_file(
        &self,
        part: u32,
        suffix: &str,
        hash: &str,
        name: &str,
        mut body: ByteStream,
    ) -> io::Result<()> {
        if disk::parse_name(name).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not an object file name",
            ));
        }
        let to = self.object_dir_checked(part, suffix, hash)?;
        let mut w = disk::Writer::create(&self.path).await?;
        while let Some(chunk) = body.next().await {
            w.write(&chunk?).await?;
        }
        let name = name.to_string();
        w.place(move |tmp| {
            std::fs::create_dir_all(&to)?;
            std::fs::rename(tmp, to.join(&name))?;
            disk::fsync_dir(&to)?;
            disk::tidy(&to)
        })
        .await
    }
}

/// The frames of an object PUT to a storage server: the data in `D` frames, then one `M`
/// frame with the object's metadata (JSON), each `<kind byte><u32 length><bytes>`. The
/// metadata comes last because the proxy learns the ETag and checksum only once the body
/// has passed (Swift sends them as a MIME footer, `X-Backend-Obj-Metadata-Footer`); a body
/// that ends without it stores nothing.
const FRAME_DATA: u8 = b'D';
const FRAME_META: u8 = b'M';
/// The largest frame a storage server accepts.
pub const MAX_FRAME: usize = 16 << 20;

fn frame_header(kind: u8, len: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(5);
    b.put_u8(kind);
    b.put_u32(len as u32);
    b.freeze()
}

/// A decoded frame.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Data(Bytes),
    Meta(Bytes),
}

/// Splits a body into frames as its chunks arrive.
#[derive(Default)]
pub struct FrameReader {
    buf: BytesMut,
}

impl FrameReader {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let kind = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME || !matches!(kind, FRAME_DATA | FRAME_META) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad frame"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(if kind == FRAME_DATA {
            Frame::Data(payload)
        } else {
            Frame::Meta(payload)
        }))
    }

    /// Whether bytes of an incomplete frame are left.
    pub fn has_leftover(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// The state of an object as a storage server reports it (without where its data is).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireState {
    Missing,
    Deleted(Timestamp),
    Present(ObjectMeta),
}

impl<D> From<&ObjectState<D>> for WireState {
    fn from(s: &ObjectState<D>) -> Self {
        match s {
            ObjectState::Missing => WireState::Missing,
            ObjectState::Deleted(t) => WireState::Deleted(*t),
            ObjectState::Present { meta, .. } => WireState::Present(meta.clone()),
        }
    }
}

/// A device on another node: `http://<ip>:<port>/<device>/...`.
#[derive(Clone, Debug)]
pub struct RemoteDevice {
    client: reqwest::Client,
    base: String,
    device: String,
}

/// How long a backend request that is not a streamed object body may take.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client the proxy and replicator talk to storage servers with.
pub fn backend_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// Fails unless the response has one of `ok` (then returns it).
async fn expect(resp: reqwest::Response, ok: &[u16]) -> io::Result<reqwest::Response> {
    let status = resp.status().as_u16();
    if ok.contains(&status) {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let kind = if status == 507 {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    };
    Err(io::Error::new(
        kind,
        format!("storage server answered {status}: {body}"),
    ))
}

/// Sends `req` and fails unless the answer is one of `ok`.
async fn call(req: reqwest::RequestBuilder, ok: &[u16]) -> io::Result<reqwest::Response> {
    let resp = req.send().await.map_err(io::Error::other)?;
    expect(resp, ok).await
}

/// A 200's JSON body.
async fn call_json<T: serde::de::DeserializeOwned>(req: reqwest::RequestBuilder) -> io::Result<T> {
    call(req, &[200])
        .await?
        .json()
        .await
        .map_err(io::Error::other)
}

/// A 200's JSON body, `None` for a 404.
async fn call_optional<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> io::Result<Option<T>> {
    let resp = call(req, &[200, 404]).await?;
    if resp.status().as_u16() == 404 {
        return Ok(None);
    }
    resp.json().await.map(Some).map_err(io::Error::other)
}

fn swift_io(e: SwiftError) -> io::Error {
    io::Error::other(format!("database failed ({})", e.status))
}

/// A backend failure as the proxy counts it (the caller logs it with its node).
fn swift_err(e: impl std::fmt::Display) -> SwiftError {
    SwiftError::with_body(503, e.to_string())
}

impl RemoteDevice {
    pub fn new(client: reqwest::Client, ip: &str, port: u16, device: &str) -> RemoteDevice {
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        RemoteDevice {
            client,
            base: format!("http://{host}:{port}"),
            device: device.to_string(),
        }
    }

    /// A request about `t` with the deadline of a request that carries no object body.
    fn request(&self, method: reqwest::Method, t: &Target) -> reqwest::RequestBuilder {
        self.streaming_request(method, t).timeout(BACKEND_TIMEOUT)
    }

    /// A request about `t` that streams an object's bytes: no overall deadline (the body
    /// may be large), only the connect one.
    fn streaming_request(&self, method: reqwest::Method, t: &Target) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base, t.wire_path(&self.device));
        self.client.request(method, url)
    }

    fn part_request(&self, method: &str, tail: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let url = format!(
            "{}/{}/{tail}",
            self.base,
            crate::model::percent_encode(&self.device)
        );
        self.client.request(method, url).timeout(BACKEND_TIMEOUT)
    }

    fn db_replicate(&self, r: &DbRef) -> reqwest::RequestBuilder {
        let tail = format!("{}/{}/{}", r.part, r.kind.dir(), r.hash);
        self.part_request("REPLICATE", &tail)
    }

    /// A GET of the object's data file with timestamp `ts` (a range of it).
    async fn data_request(
        &self,
        t: &Target,
        ts: Timestamp,
        range: Option<(u64, u64)>,
    ) -> io::Result<reqwest::Response> {
        let mut req = self
            .streaming_request(reqwest::Method::GET, t)
            .header("X-Backend-Data-Timestamp", ts.normal());
        if let Some((a, b)) = range {
            req = req.header("Range", format!("bytes={a}-{b}"));
        }
        call(req, &[200, 206]).await
    }
}

#[derive(Serialize, Deserialize)]
pub struct DbUpdateRequest {
    pub update: DbUpdate,
    pub create: bool,
}

#[derive(Serialize, Deserialize)]
pub struct DbUpdateResponse {
    pub hit: bool,
}

#[derive(Serialize, Deserialize)]
pub struct DbListResponse {
    pub stat: Stat,
    pub listing: Listing,
}

#[async_trait::async_trait]
impl StorageDevice for RemoteDevice {
    async fn object_state(&self, t: &Target) -> io::Result<ObjectState<DataRef>> {
        let req = self
            .request(reqwest::Method::GET, t)
            .header("X-Backend-Metadata-Only", "true");
        let state: WireState = call_json(req).await?;
        Ok(match state {
            WireState::Missing => ObjectState::Missing,
            WireState::Deleted(ts) => ObjectState::Deleted(ts),
            WireState::Present(meta) => ObjectState::Present {
                data: DataRef::Remote(RemoteData {
                    device: self.clone(),
                    target: t.clone(),
                    timestamp: meta.timestamp,
                }),
                meta,
            },
        })
    }

    async fn object_writer(&self, t: &Target) -> io::Result<Box<dyn ObjectWriter>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
        let (polled_tx, polled_rx) = tokio::sync::oneshot::channel::<()>();
        let mut polled_tx = Some(polled_tx);
        // The body is first polled once the connection is up and the request head is
        // sent: until then the node may be down, and the caller tries a handoff instead.
        let body = futures::stream::poll_fn(move |cx| {
            if let Some(p) = polled_tx.take() {
                let _ = p.send(());
            }
            rx.poll_recv(cx)
        });
        let req = self
            .streaming_request(reqwest::Method::PUT, t)
            .header("X-Backend-Obj-Framed", "true")
            .body(streamed_body(body));
        let response = tokio::spawn(req.send());
        if polled_rx.await.is_err() {
            let e = match response.await {
                Ok(Ok(resp)) => expect(resp, &[]).await.err(),
                Ok(Err(e)) => Some(io::Error::other(e)),
                Err(e) => Some(io::Error::other(e)),
            };
            return Err(e.unwrap_or_else(|| io::Error::other("storage server unreachable")));
        }
        Ok(Box::new(RemoteWriter {
            tx: Some(tx),
            response,
        }))
    }

    async fn object_delete(
        &self,
        t: &Target,
        ts: Timestamp,
        only_if_present: bool,
    ) -> io::Result<bool> {
        let mut req = self
            .request(reqwest::Method::DELETE, t)
            .header("X-Timestamp", ts.normal());
        if only_if_present {
            req = req.header("X-Backend-If-Present", "true");
        }
        Ok(call(req, &[204, 404]).await?.status().as_u16() == 204)
    }

    async fn object_post(
        &self,
        t: &Target,
        ts: Timestamp,
        posted: &PostedMeta,
    ) -> io::Result<bool> {
        let req = self
            .request(reqwest::Method::POST, t)
            .header("X-Timestamp", ts.normal())
            .json(posted);
        Ok(call(req, &[202, 404]).await?.status().as_u16() == 202)
    }

    async fn db_stat(&self, t: &Target) -> SwiftResult<Option<Stat>> {
        let req = self
            .request(reqwest::Method::GET, t)
            .header("X-Backend-Stat-Only", "true");
        call_optional(req).await.map_err(swift_err)
    }

    async fn db_update(
        &self,
        t: &Target,
        update: &DbUpdate,
        create: bool,
    ) -> SwiftResult<Option<bool>> {
        let body = DbUpdateRequest {
            update: update.clone(),
            create,
        };
        let req = self.request(reqwest::Method::POST, t).json(&body);
        let r: Option<DbUpdateResponse> = call_optional(req).await.map_err(swift_err)?;
        Ok(r.map(|r| r.hit))
    }

    async fn db_list(
        &self,
        t: &Target,
        params: &ListParams,
    ) -> SwiftResult<Option<(Stat, Listing)>> {
        let req = self.request(reqwest::Method::GET, t).query(params);
        let r: Option<DbListResponse> = call_optional(req).await.map_err(swift_err)?;
        Ok(r.map(|r| (r.stat, r.listing)))
    }

    async fn suffix_hashes(&self, part: u32) -> io::Result<BTreeMap<String, String>> {
        call_json(self.part_request("REPLICATE", &part.to_string())).await
    }

    async fn suffix_files(
        &self,
        part: u32,
        suffix: &str,
    ) -> io::Result<BTreeMap<String, Vec<String>>> {
        call_json(self.part_request("REPLICATE", &format!("{part}/{suffix}"))).await
    }

    async fn sync_file(
        &self,
        part: u32,
        suffix: &str,
        hash: &str,
        name: &str,
        from: &Path,
    ) -> io::Result<()> {
        let path = from.join(name);
        let len = tokio::fs::metadata(&path).await?.len();
        let req = self
            .part_request("SYNC", &format!("{part}/{suffix}/{hash}/{name}"))
            // A whole object file may be large: a longer deadline than other requests'.
            .timeout(Duration::from_secs(3600))
            .header("Content-Length", len)
            .body(streamed_body(SyncStream(std::sync::Mutex::new(
                file_stream(path, 0, len),
            ))));
        call(req, &[201]).await.map(|_| ())
    }

    async fn db_digest(&self, r: &DbRef) -> io::Result<Option<String>> {
        let req = self.db_replicate(r).json(&DbReplicate::Digest);
        let d: DbDigest = call_json(req).await?;
        Ok(d.digest)
    }

    async fn db_merge(&self, r: &DbRef, replica: &db::Replica) -> io::Result<()> {
        let req = self.db_replicate(r).json(&DbReplicate::Merge {
            replica: Box::new(replica.clone()),
        });
        call(req, &[204]).await.map(|_| ())
    }
}

/// A stream made `Sync` for a request body (a mutex that is only reached through `&mut`,
/// so it never locks).
struct SyncStream(std::sync::Mutex<ByteStream>);

impl futures::Stream for SyncStream {
    type Item = io::Result<Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.0.get_mut() {
            Ok(s) => s.poll_next_unpin(cx),
            Err(poisoned) => poisoned.into_inner().poll_next_unpin(cx),
        }
    }
}

/// An object streaming to a storage server; see [`FRAME_DATA`] for the body's frames.
struct RemoteWriter {
    tx: Option<tokio::sync::mpsc::Sender<io::Result<Bytes>>>,
    response: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
}

impl RemoteWriter {
    async fn send(&mut self, b: Bytes) -> io::Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("writer closed"))?;
        tx.send(Ok(b))
            .await
            .map_err(|_| io::Error::other("storage server closed the object PUT"))
    }
}

#[async_trait::async_trait]
impl ObjectWriter for RemoteWriter {
    async fn write(&mut self, chunk: &Bytes) -> io::Result<()> {
        // Frames stay below MAX_FRAME however large the chunks the client sends.
        for piece in chunk.chunks(1 << 20) {
            self.send(frame_header(FRAME_DATA, piece.len())).await?;
            self.send(chunk.slice_ref(piece)).await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, meta: &ObjectMeta) -> io::Result<()> {
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        self.send(frame_header(FRAME_META, json.len())).await?;
        self.send(Bytes::from(json)).await?;
        self.tx = None;
        let resp = (&mut self.response)
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        expect(resp, &[201]).await.map(|_| ())
    }
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        // An uncommitted write: the body ends without its metadata frame and the storage
        // server discards what it received.
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(Err(io::Error::other("object write abandoned")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_join_across_chunks() {
        let mut body = Vec::new();
        for (kind, payload) in [(FRAME_DATA, &b"hello"[..]), (FRAME_META, b"{}")] {
            body.extend_from_slice(&frame_header(kind, payload.len()));
            body.extend_from_slice(payload);
        }
        let mut r = FrameReader::default();
        let mut frames = Vec::new();
        for byte in body {
            r.push(&[byte]);
            while let Some(f) = r.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::Data(Bytes::from_static(b"hello")),
                Frame::Meta(Bytes::from_static(b"{}"))
            ]
        );
        assert!(!r.has_leftover());
        let mut bad = FrameReader::default();
        bad.push(b"X\0\0\0\x01a");
        assert!(bad.next_frame().is_err());
    }

    #[tokio::test]
    async fn file_ranges_stream_the_same_bytes_through_the_cache_or_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let len = (DIRECT_READ_FROM as usize) * 2 + 4_321;
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        for (offset, n) in [
            (0, len),                            // whole, past the cache
            (4_097, len - 5_000),                // unaligned start and end, past the cache
            (12_288, DIRECT_READ_FROM as usize), // aligned, exactly the threshold
            (10, 100),                           // small, through the cache
            (len - 3, 3),                        // the last bytes
        ] {
            let got: Vec<u8> = file_stream(path.clone(), offset as u64, n as u64)
                .map(|c| c.unwrap().to_vec())
                .concat()
                .await;
            assert_eq!(got.len(), n, "{offset}+{n}");
            assert!(got == bytes[offset..offset + n], "{offset}+{n}");
        }
        // A file shorter than the range asked for fails instead of ending early.
        let short: Vec<io::Result<Bytes>> = file_stream(path, 0, len as u64 + 10).collect().await;
        assert!(short.last().unwrap().is_err());
    }

    #[test]
    fn wire_paths_encode_each_name() {
        let t = Target {
            part: 7,
            hash: "0".repeat(32),
            account: "AUTH_a".into(),
            container: Some("c d".into()),
            object: Some("dir/ob?j".into()),
        };
        assert_eq!(t.wire_path("sdb1"), "/sdb1/7/AUTH_a/c%20d/dir/ob%3Fj");
    }
}
