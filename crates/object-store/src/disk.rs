//! The object server's files on one device, as Swift lays them out:
//! `<device>/objects/<part>/<suffix>/<hash>/<timestamp>.data` with its metadata in a footer
//! of the same file (see [`read_footer`]; writes before that kept it beside the data in
//! `<timestamp>.data.json`, still read), metadata posted later in `<timestamp>.meta`,
//! deletions as `<timestamp>.ts` tombstones. The newest `.data` or `.ts` wins; files it
//! supersedes are removed.
//!
//! A write goes to `<device>/tmp/` first and is renamed into place after `fsync`, so a crash
//! leaves either the old object or the new one (and at worst an orphan in `tmp/`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{Metadata, Timestamp};

/// What is stored with an object's data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub timestamp: Timestamp,
    pub content_type: String,
    pub etag: String,
    pub size: u64,
    /// `X-Object-Meta-*` (names lower-cased, without the prefix).
    #[serde(default)]
    pub user: Metadata,
    /// Other headers Swift keeps with an object (`Content-Disposition`, `Content-Encoding`,
    /// `X-Delete-At`, `X-Object-Manifest`, ...), names lower-cased.
    #[serde(default)]
    pub headers: Metadata,
    /// CRC-32C of the data file's bytes, recorded at PUT: a GET checks what it streams
    /// against it at a fraction of md5's cost (objects stored before it have none and are
    /// checked against their ETag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<u32>,
}

/// CRC-32C (Castagnoli), the checksum kept beside an object's ETag.
pub const CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// The newest state of an object on one device; `D` says where its data is (a path on
/// this host, or a [`crate::node::DataRef`] that may be on another node).
#[derive(Debug)]
pub enum ObjectState<D = PathBuf> {
    Missing,
    Deleted(Timestamp),
    Present { data: D, meta: ObjectMeta },
}

impl<D> ObjectState<D> {
    /// The same state with its data location converted.
    pub fn map_data<E>(self, f: impl FnOnce(D) -> E) -> ObjectState<E> {
        match self {
            ObjectState::Missing => ObjectState::Missing,
            ObjectState::Deleted(t) => ObjectState::Deleted(t),
            ObjectState::Present { data, meta } => ObjectState::Present {
                data: f(data),
                meta,
            },
        }
    }

    /// The timestamp of the newest `.data` or `.ts`.
    pub fn timestamp(&self) -> Option<Timestamp> {
        match self {
            ObjectState::Missing => None,
            ObjectState::Deleted(t) => Some(*t),
            ObjectState::Present { meta, .. } => Some(meta.timestamp),
        }
    }
}

/// `<device>/objects/<part>/<last three hex digits>/<hash>`.
pub fn object_dir(device: &Path, part: u32, hash: &str) -> PathBuf {
    let suffix = &hash[hash.len().saturating_sub(3)..];
    device
        .join("objects")
        .join(part.to_string())
        .join(suffix)
        .join(hash)
}

pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The timestamp and extension of a file in an object directory.
fn parse_file(name: &str) -> Option<(Timestamp, &str)> {
    let (stem, ext) = match name.strip_suffix(".data.json") {
        Some(stem) => (stem, "data.json"),
        None => name.rsplit_once('.')?,
    };
    Some((Timestamp::parse(stem)?, ext))
}

/// Whether `name` is an object file's name (`<timestamp>.<data|data.json|ts|meta>`).
pub fn parse_name(name: &str) -> Option<(Timestamp, &str)> {
    parse_file(name).filter(|(_, ext)| matches!(*ext, "data" | "data.json" | "ts" | "meta"))
}

/// Reads the newest state of the object in `dir`.
pub fn read_state(dir: &Path) -> std::io::Result<ObjectState> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ObjectState::Missing),
        Err(e) => return Err(e),
    };
    let mut newest: Option<(Timestamp, bool)> = None; // (ts, is_data)
    let mut metas: Vec<Timestamp> = Vec::new();
    let mut sidecars: Vec<Timestamp> = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((ts, ext)) = parse_file(name) else {
            continue;
        };
        match ext {
            "data" | "ts" if newest.is_none_or(|(n, _)| ts > n) => {
                newest = Some((ts, ext == "data"));
            }
            "meta" => metas.push(ts),
            "data.json" => sidecars.push(ts),
            _ => {}
        }
    }
    match newest {
        None => Ok(ObjectState::Missing),
        Some((ts, false)) => Ok(ObjectState::Deleted(ts)),
        Some((ts, true)) => {
            let data = dir.join(format!("{}.data", ts.normal()));
            let mut meta: ObjectMeta = if sidecars.contains(&ts) {
                serde_json::from_slice(&std::fs::read(sidecar_of(&data))?)
                    .map_err(std::io::Error::other)?
            } else {
                let f = std::fs::File::open(&data)?;
                let len = f.metadata()?.len();
                read_footer(&f, len)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", data.display())))?
                    .1
            };
            if let Some(m) = metas.into_iter().filter(|m| *m > ts).max() {
                let posted: PostedMeta = serde_json::from_slice(&std::fs::read(
                    dir.join(format!("{}.meta", m.normal())),
                )?)
                .map_err(std::io::Error::other)?;
                meta.user = posted.user;
                // A POST replaces the delete time too: without one, the object no longer
                // expires (Swift's object server).
                meta.headers.remove("x-delete-at");
                if let Some(ct) = posted.content_type {
                    meta.content_type = ct;
                }
                for (k, v) in posted.headers {
                    meta.headers.insert(k, v);
                }
            }
            Ok(ObjectState::Present { data, meta })
        }
    }
}

/// Metadata set by a POST: it replaces the object's user metadata (Swift's fast-POST).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PostedMeta {
    pub user: Metadata,
    pub content_type: Option<String>,
    #[serde(default)]
    pub headers: Metadata,
}

/// Removes files in `dir` superseded by a `.data` or `.ts` at `ts` (older `.meta` files too).
fn cleanup(dir: &Path, ts: Timestamp) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((t, _)) = parse_file(name)
            && t < ts
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Bytes a write keeps in memory before it opens its temporary file: an object this small
/// is written, fsynced and renamed into place in one blocking call at commit.
const BUFFERED: usize = 64 * 1024;

/// A larger object's bytes go to disk in blocks of this size, with `O_DIRECT`: straight
/// from an aligned buffer to the device, not copied into the page cache and written back
/// at the `fsync` (with three replicas that copy was most of a 64 MiB PUT's CPU, and the
/// writeback most of its wait). A multiple of any filesystem block size.
const DIRECT_BLOCK: usize = 1 << 20;
/// The memory alignment `O_DIRECT` asks of a buffer (the logical block size; 4 KiB covers
/// the devices in use).
const DIRECT_ALIGN: usize = 4096;

/// An object being received on one device: data streams into `<device>/tmp/` (the first
/// [`BUFFERED`] bytes are held in memory until there are more, or until the commit).
pub struct Writer {
    device: PathBuf,
    /// The temporary file, once created (empty until then).
    tmp: PathBuf,
    /// The thread writing the temporary file, once there is one.
    spill: Option<Spill>,
    buf: Vec<u8>,
    closed: bool,
}

/// What a [`Writer`] hands its file's thread.
enum SpillMsg {
    Data(Bytes),
    /// Everything was sent: write the rest and fsync. A channel closed without it is an
    /// abandoned write (nothing fsynced; the file is removed by the writer's `Drop`).
    Finish,
}

/// A blocking thread of its own per file being written: chunks reach it through a short
/// queue (the body's reader waits when the disk is behind), with no thread hop per write.
struct Spill {
    tx: tokio::sync::mpsc::Sender<SpillMsg>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Spill {
    fn start(tmp: PathBuf, first: Vec<u8>) -> Spill {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SpillMsg>(8);
        let done = tokio::task::spawn_blocking(move || {
            let written = (|| {
                let mut file = TmpFile::create(&tmp)?;
                file.push(&first)?;
                drop(first);
                loop {
                    match rx.blocking_recv() {
                        Some(SpillMsg::Data(b)) => file.push(&b)?,
                        Some(SpillMsg::Finish) => return file.finish(),
                        None => return Err(std::io::Error::other("object write abandoned")),
                    }
                }
            })();
            // Failed or abandoned: the file goes (the writer's `Drop` may have run before
            // it was created).
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        });
        Spill { tx, done }
    }

    /// The thread's own error once it stopped taking chunks.
    async fn failure(self) -> std::io::Error {
        drop(self.tx);
        match self.done.await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => std::io::Error::other("object writer ended early"),
            Err(e) => std::io::Error::other(e),
        }
    }
}

/// The temporary file of a large object on its thread: whole aligned blocks written with
/// `O_DIRECT` where the filesystem allows it, the last partial block (and the footer) through
/// the page cache, then `fsync` — which also writes the file's metadata and flushes the
/// device's cache, so the object is as durable as a buffered write's.
struct TmpFile {
    path: PathBuf,
    file: std::fs::File,
    direct: bool,
    /// `DIRECT_BLOCK + DIRECT_ALIGN` bytes; the block is the aligned window at `start`.
    block: Vec<u8>,
    start: usize,
    filled: usize,
    offset: u64,
}

impl TmpFile {
    fn create(path: &Path) -> std::io::Result<TmpFile> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let open = |flags: i32| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(flags)
                .open(path)
        };
        // A filesystem without O_DIRECT refuses it at open (EINVAL): write through the
        // page cache there.
        let (file, direct) = match open(libc::O_DIRECT) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(0)?, false),
            Err(e) => return Err(e),
        };
        let block = if direct {
            vec![0u8; DIRECT_BLOCK + DIRECT_ALIGN]
        } else {
            Vec::new()
        };
        let start = block.as_ptr().align_offset(DIRECT_ALIGN);
        Ok(TmpFile {
            path: path.to_path_buf(),
            file,
            direct,
            block,
            start,
            filled: 0,
            offset: 0,
        })
    }

    fn push(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        if !self.direct {
            return self.file.write_all(data);
        }
        while !data.is_empty() {
            let n = data.len().min(DIRECT_BLOCK - self.filled);
            let at = self.start + self.filled;
            self.block[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == DIRECT_BLOCK {
                self.write_block()?;
            }
        }
        Ok(())
    }

    /// Writes the filled part of the block at the file's offset.
    fn write_block(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let bytes = &self.block[self.start..self.start + self.filled];
        match self.file.write_all_at(bytes, self.offset) {
            // A device whose blocks O_DIRECT cannot meet: the page cache from here on.
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.file = std::fs::OpenOptions::new().write(true).open(&self.path)?;
                self.direct = false;
                self.file.write_all_at(bytes, self.offset)?;
            }
            r => r?,
        }
        self.offset += self.filled as u64;
        self.filled = 0;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        if self.direct && self.filled > 0 {
            // A partial block cannot go through O_DIRECT: the tail through the page cache,
            // on a second descriptor of the same file (its fsync covers the whole file).
            self.file = std::fs::OpenOptions::new().write(true).open(&self.path)?;
            self.direct = false;
            self.write_block()?;
        }
        self.file.sync_all()
    }
}

/// Creates an object's directory; true when it did not exist (so nothing in it needs
/// cleaning up). One `mkdir` for the common case rather than `create_dir_all`'s checks.
fn make_object_dir(dir: &Path) -> std::io::Result<bool> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::create_dir(dir) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// A new file name in the device's `tmp/` (the directory made on first use).
fn new_tmp(device: &Path) -> std::io::Result<PathBuf> {
    let tmp_dir = device.join("tmp");
    if !tmp_dir.is_dir() {
        std::fs::create_dir_all(&tmp_dir)?;
    }
    Ok(tmp_dir.join(uuid::Uuid::new_v4().simple().to_string()))
}

impl Writer {
    /// Starts a write on `device`; fails when the device is not there (unmounted).
    pub async fn create(device: &Path) -> std::io::Result<Writer> {
        // A stat of a directory in the dentry cache: not worth a blocking thread's hop.
        if !std::fs::metadata(device)?.is_dir() {
            return Err(std::io::Error::other("device is not a directory"));
        }
        Ok(Writer {
            device: device.to_path_buf(),
            tmp: PathBuf::new(),
            spill: None,
            buf: Vec::new(),
            closed: false,
        })
    }

    pub async fn write(&mut self, chunk: &Bytes) -> std::io::Result<()> {
        if self.closed {
            return Err(std::io::Error::other("writer closed"));
        }
        if self.spill.is_none() && self.buf.len() + chunk.len() <= BUFFERED {
            self.buf.extend_from_slice(chunk);
            return Ok(());
        }
        if self.spill.is_none() {
            self.tmp = new_tmp(&self.device)?;
            self.spill = Some(Spill::start(
                self.tmp.clone(),
                std::mem::take(&mut self.buf),
            ));
        }
        let spill = self.spill.as_ref().expect("started above");
        if spill.tx.send(SpillMsg::Data(chunk.clone())).await.is_err() {
            self.closed = true;
            let spill = self.spill.take().expect("started above");
            return Err(spill.failure().await);
        }
        Ok(())
    }

    /// Makes the object durable at `dir` as `<timestamp>.data`, its metadata in the file's
    /// footer (see [`read_footer`]): the file fsynced, renamed into place, the directory
    /// fsynced, superseded files removed.
    pub async fn commit(mut self, dir: PathBuf, meta: ObjectMeta) -> std::io::Result<()> {
        self.write(&Bytes::from(footer(&meta)?)).await?;
        self.place(move |tmp| {
            let created = make_object_dir(&dir)?;
            std::fs::rename(tmp, dir.join(format!("{}.data", meta.timestamp.normal())))?;
            fsync_dir(&dir)?;
            // A directory this write made holds nothing older. (A concurrent write of
            // the same object may leave its older file beside this one: the newest
            // wins on read, and the next write or the replicator's tidy removes it.)
            if created {
                return Ok(());
            }
            cleanup(&dir, meta.timestamp)
        })
        .await
    }

    /// Makes the received bytes durable (fsynced) and hands the temporary file to `place`,
    /// which moves it where it belongs; when `place` fails the file is removed.
    pub async fn place(
        mut self,
        place: impl FnOnce(&Path) -> std::io::Result<()> + Send + 'static,
    ) -> std::io::Result<()> {
        if self.closed {
            return Err(std::io::Error::other("writer closed"));
        }
        self.closed = true;
        let buf = std::mem::take(&mut self.buf);
        let opened = match self.spill.take() {
            Some(spill) => {
                if spill.tx.send(SpillMsg::Finish).await.is_err() {
                    return Err(spill.failure().await);
                }
                drop(spill.tx);
                spill.done.await.map_err(std::io::Error::other)??;
                Some(std::mem::take(&mut self.tmp))
            }
            None => None,
        };
        let device = self.device.clone();
        tokio::task::spawn_blocking(move || {
            // A small object: its whole file written and fsynced here, in one go.
            let tmp = match opened {
                Some(tmp) => tmp,
                None => {
                    let tmp = new_tmp(&device)?;
                    let written = (|| {
                        let mut f = std::fs::File::create(&tmp)?;
                        f.write_all(&buf)?;
                        f.sync_all()
                    })();
                    if let Err(e) = written {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                    tmp
                }
            };
            let result = place(&tmp);
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// The last bytes of a `.data` file written with its metadata in a footer:
/// `<data><metadata JSON><JSON length, u32 little-endian><FOOTER_MAGIC>`. Swift keeps the
/// metadata in an xattr of the data file; a footer needs no filesystem support, has no
/// size limit, and travels with the file when the replicator copies it. One file to fsync
/// instead of the data and a `.data.json` sidecar, which older writes left (still read).
const FOOTER_MAGIC: &[u8; 8] = b"FSOBJMD1";
const TRAILER: u64 = 12;

fn footer(meta: &ObjectMeta) -> std::io::Result<Vec<u8>> {
    let mut out = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
    let len = u32::try_from(out.len()).map_err(std::io::Error::other)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(FOOTER_MAGIC);
    Ok(out)
}

/// The length of the data before the footer of the file `f` (`file_len` bytes long) and the
/// footer's metadata; an error when the file has no footer.
fn read_footer(f: &std::fs::File, file_len: u64) -> std::io::Result<(u64, ObjectMeta)> {
    use std::os::unix::fs::FileExt as _;
    let bad = || std::io::Error::other("object data file without its metadata footer");
    if file_len < TRAILER {
        return Err(bad());
    }
    let mut trailer = [0u8; TRAILER as usize];
    f.read_exact_at(&mut trailer, file_len - TRAILER)?;
    if &trailer[4..] != FOOTER_MAGIC {
        return Err(bad());
    }
    let json_len = u64::from(u32::from_le_bytes(
        trailer[..4].try_into().expect("4 bytes"),
    ));
    let data_len = file_len.checked_sub(TRAILER + json_len).ok_or_else(bad)?;
    let mut json = vec![0u8; json_len as usize];
    f.read_exact_at(&mut json, data_len)?;
    let meta = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
    Ok((data_len, meta))
}

/// The sidecar an older write left beside `data` (`<timestamp>.data.json`).
fn sidecar_of(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// How many bytes of the `.data` file at `data` are the object's (the rest is its footer).
pub fn data_len(data: &Path) -> std::io::Result<u64> {
    let f = std::fs::File::open(data)?;
    let file_len = f.metadata()?.len();
    if sidecar_of(data).exists() {
        return Ok(file_len);
    }
    read_footer(&f, file_len).map(|(len, _)| len)
}

/// The object's bytes of the `.data` file at `data`, without its footer (found from the
/// trailer of the bytes read: no second read, no parse of the metadata).
pub fn read_data(data: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = std::fs::read(data)?;
    if !sidecar_of(data).exists() {
        let bad = || std::io::Error::other("object data file without its metadata footer");
        let trailer_at = bytes.len().checked_sub(TRAILER as usize).ok_or_else(bad)?;
        let trailer = &bytes[trailer_at..];
        if &trailer[4..] != FOOTER_MAGIC {
            return Err(bad());
        }
        let json_len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as usize;
        let len = trailer_at.checked_sub(json_len).ok_or_else(bad)?;
        bytes.truncate(len);
    }
    Ok(bytes)
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A write that was not committed leaves nothing behind.
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The newest `.data` or `.ts` timestamp among `names` (an object directory's files).
fn newest_of<'a>(names: impl Iterator<Item = &'a str>) -> Option<Timestamp> {
    names
        .filter_map(parse_file)
        .filter(|(_, ext)| matches!(*ext, "data" | "ts"))
        .map(|(t, _)| t)
        .max()
}

/// The entries of `dir`; none when it does not exist.
pub fn read_dir_or_empty(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The file names in an object directory (empty when it does not exist).
pub fn list_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in read_dir_or_empty(dir)? {
        if let Some(name) = entry.file_name().to_str()
            && parse_file(name).is_some()
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The newest `.data`/`.ts` timestamp of the object in `dir`, if any.
pub fn newest(dir: &Path) -> std::io::Result<Option<Timestamp>> {
    let names = list_files(dir)?;
    Ok(newest_of(names.iter().map(String::as_str)))
}

/// Leaves in `dir` only what its newest `.data`/`.ts` and newest later `.meta` need, as the
/// object server's cleanup after a write does (replication copies files in, then tidies).
pub fn tidy(dir: &Path) -> std::io::Result<()> {
    let names = list_files(dir)?;
    let Some(ts) = newest_of(names.iter().map(String::as_str)) else {
        return Ok(());
    };
    cleanup(dir, ts)?;
    let newest_meta = names
        .iter()
        .filter_map(|n| parse_file(n))
        .filter(|(_, ext)| *ext == "meta")
        .map(|(t, _)| t)
        .max();
    for name in &names {
        if let Some((t, "meta")) = parse_file(name)
            && Some(t) < newest_meta
        {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    Ok(())
}

/// Copies `from/<name>` to `to_dir/<name>` on the device `to_device`, durably: through the
/// device's `tmp/`, fsynced, renamed into place, the directory fsynced.
pub fn copy_file(from: &Path, to_device: &Path, to_dir: &Path, name: &str) -> std::io::Result<()> {
    let tmp_dir = to_device.join("tmp");
    std::fs::create_dir_all(&tmp_dir)?;
    let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
    let result = (|| {
        std::fs::copy(from.join(name), &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::create_dir_all(to_dir)?;
        std::fs::rename(&tmp, to_dir.join(name))?;
        fsync_dir(to_dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes a tombstone at `ts` (unless something newer is there) and removes what it
/// supersedes. Returns the state before.
pub fn write_tombstone(dir: &Path, ts: Timestamp) -> std::io::Result<ObjectState> {
    let before = read_state(dir)?;
    let newer = match &before {
        ObjectState::Deleted(t) => *t >= ts,
        ObjectState::Present { meta, .. } => meta.timestamp >= ts,
        ObjectState::Missing => false,
    };
    if !newer {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.ts", ts.normal()));
        std::fs::File::create(&path)?.sync_all()?;
        fsync_dir(dir)?;
        cleanup(dir, ts)?;
    }
    Ok(before)
}

/// Records metadata posted at `ts` for the object in `dir`.
pub fn write_meta(dir: &Path, ts: Timestamp, posted: &PostedMeta) -> std::io::Result<()> {
    let path = dir.join(format!("{}.meta", ts.normal()));
    let tmp = dir.join(format!(".{}.meta.tmp", ts.normal()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(posted).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    fsync_dir(dir)?;
    // Older `.meta` files are superseded by this one.
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(name) = name.to_str()
            && let Some((t, "meta")) = parse_file(name)
            && t < ts
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ts: Timestamp) -> ObjectMeta {
        ObjectMeta {
            timestamp: ts,
            content_type: "text/plain".into(),
            etag: "e".into(),
            size: 3,
            user: Metadata::new(),
            headers: Metadata::new(),
            crc32c: None,
        }
    }

    #[tokio::test]
    async fn newest_write_wins_and_tombstones_hide_data() {
        let dev = tempfile::tempdir().unwrap();
        let dir = object_dir(dev.path(), 7, "0123456789abcdef0123456789abcdef");
        assert!(dir.ends_with("objects/7/def/0123456789abcdef0123456789abcdef"));
        assert!(matches!(read_state(&dir).unwrap(), ObjectState::Missing));
        let t1 = Timestamp::now();
        let mut w = Writer::create(dev.path()).await.unwrap();
        w.write(&Bytes::from_static(b"abc")).await.unwrap();
        w.commit(dir.clone(), meta(t1)).await.unwrap();
        let ObjectState::Present { data, meta: m } = read_state(&dir).unwrap() else {
            panic!("present")
        };
        // One file: the data with its metadata in a footer.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(read_data(&data).unwrap(), b"abc");
        assert_eq!(data_len(&data).unwrap(), 3);
        assert_eq!(m, meta(t1));
        let t2 = Timestamp::now();
        let mut posted = PostedMeta::default();
        posted.user.insert("color".into(), "blue".into());
        write_meta(&dir, t2, &posted).unwrap();
        let ObjectState::Present { meta: m, .. } = read_state(&dir).unwrap() else {
            panic!("present")
        };
        assert_eq!(m.user["color"], "blue");
        let t3 = Timestamp::now();
        write_tombstone(&dir, t3).unwrap();
        assert!(matches!(read_state(&dir).unwrap(), ObjectState::Deleted(t) if t == t3));
        // Only the tombstone is left.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // An abandoned write leaves nothing in tmp/.
        let mut w = Writer::create(dev.path()).await.unwrap();
        w.write(&Bytes::from_static(b"partial")).await.unwrap();
        drop(w);
        assert_eq!(
            std::fs::read_dir(dev.path().join("tmp")).unwrap().count(),
            0
        );
        // A missing device refuses writes.
        assert!(Writer::create(&dev.path().join("nope")).await.is_err());
    }

    #[tokio::test]
    async fn objects_of_several_direct_blocks_read_back_and_abandoned_ones_leave_nothing() {
        let dev = tempfile::tempdir().unwrap();
        let dir = object_dir(dev.path(), 1, "00000000000000000000000000000ddd");
        // Whole O_DIRECT blocks and a partial last one, from chunks of odd sizes.
        let big: Vec<u8> = (0..DIRECT_BLOCK * 3 + 12_345)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut w = Writer::create(dev.path()).await.unwrap();
        for chunk in big.chunks(77_777) {
            w.write(&Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        let mut m = meta(Timestamp::now());
        m.size = big.len() as u64;
        w.commit(dir.clone(), m.clone()).await.unwrap();
        let ObjectState::Present { data, meta: read } = read_state(&dir).unwrap() else {
            panic!("present")
        };
        assert_eq!(read, m);
        assert_eq!(read_data(&data).unwrap(), big);
        // Exactly whole blocks (no partial one before the footer).
        let exact: Vec<u8> = (0..DIRECT_BLOCK * 2).map(|i| (i % 7) as u8).collect();
        let dir2 = object_dir(dev.path(), 1, "00000000000000000000000000000eee");
        let mut w = Writer::create(dev.path()).await.unwrap();
        w.write(&Bytes::from(exact.clone())).await.unwrap();
        w.commit(dir2.clone(), meta(Timestamp::now()))
            .await
            .unwrap();
        let ObjectState::Present { data, .. } = read_state(&dir2).unwrap() else {
            panic!("present")
        };
        assert_eq!(read_data(&data).unwrap(), exact);
        // An abandoned write of a large object: its thread removes the file.
        let mut w = Writer::create(dev.path()).await.unwrap();
        w.write(&Bytes::from(vec![1u8; DIRECT_BLOCK + 5]))
            .await
            .unwrap();
        drop(w);
        let tmp = dev.path().join("tmp");
        for _ in 0..100 {
            if std::fs::read_dir(&tmp).unwrap().count() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn large_writes_and_sidecars_of_older_writes_read_back() {
        let dev = tempfile::tempdir().unwrap();
        let dir = object_dir(dev.path(), 1, "00000000000000000000000000000aaa");
        // Beyond what a write holds in memory: streamed through the temporary file.
        let big: Vec<u8> = (0..BUFFERED * 3 + 5).map(|i| (i % 251) as u8).collect();
        let mut w = Writer::create(dev.path()).await.unwrap();
        for chunk in big.chunks(10_000) {
            w.write(&Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        let mut m = meta(Timestamp::now());
        m.size = big.len() as u64;
        m.user.insert("k".into(), "v".into());
        w.commit(dir.clone(), m.clone()).await.unwrap();
        let ObjectState::Present { data, meta: read } = read_state(&dir).unwrap() else {
            panic!("present")
        };
        assert_eq!(read, m);
        assert_eq!(read_data(&data).unwrap(), big);
        assert_eq!(
            std::fs::read_dir(dev.path().join("tmp")).unwrap().count(),
            0
        );
        // An older write: the data file holds only the data, the metadata is beside it.
        let old = object_dir(dev.path(), 1, "00000000000000000000000000000bbb");
        std::fs::create_dir_all(&old).unwrap();
        let t = Timestamp::now();
        std::fs::write(old.join(format!("{}.data", t.normal())), b"xyz").unwrap();
        std::fs::write(
            old.join(format!("{}.data.json", t.normal())),
            serde_json::to_vec(&meta(t)).unwrap(),
        )
        .unwrap();
        let ObjectState::Present { data, meta: read } = read_state(&old).unwrap() else {
            panic!("present")
        };
        assert_eq!(read, meta(t));
        assert_eq!(read_data(&data).unwrap(), b"xyz");
        assert_eq!(data_len(&data).unwrap(), 3);
        // Data with neither a footer nor a sidecar cannot be read.
        std::fs::remove_file(old.join(format!("{}.data.json", t.normal()))).unwrap();
        assert!(read_state(&old).is_err());
    }
}
