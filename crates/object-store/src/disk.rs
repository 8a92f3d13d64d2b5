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

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

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

/// An object being received on one device: data streams into `<device>/tmp/` (the first
/// [`BUFFERED`] bytes are held in memory until there are more, or until the commit).
pub struct Writer {
    device: PathBuf,
    /// The temporary file, once created (empty until then).
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    buf: Vec<u8>,
    closed: bool,
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
            file: None,
            buf: Vec::new(),
            closed: false,
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if self.closed {
            return Err(std::io::Error::other("writer closed"));
        }
        if self.file.is_none() && self.buf.len() + chunk.len() <= BUFFERED {
            self.buf.extend_from_slice(chunk);
            return Ok(());
        }
        if self.file.is_none() {
            let tmp_dir = self.device.join("tmp");
            tokio::fs::create_dir_all(&tmp_dir).await?;
            self.tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
            self.file = Some(tokio::fs::File::create(&self.tmp).await?);
        }
        let file = self.file.as_mut().expect("opened above");
        if !self.buf.is_empty() {
            file.write_all(&std::mem::take(&mut self.buf)).await?;
        }
        file.write_all(chunk).await
    }

    /// Makes the object durable at `dir` as `<timestamp>.data`, its metadata in the file's
    /// footer (see [`read_footer`]): the file fsynced, renamed into place, the directory
    /// fsynced, superseded files removed.
    pub async fn commit(mut self, dir: PathBuf, meta: ObjectMeta) -> std::io::Result<()> {
        self.write(&footer(&meta)?).await?;
        self.place(move |tmp| {
            std::fs::create_dir_all(&dir)?;
            std::fs::rename(tmp, dir.join(format!("{}.data", meta.timestamp.normal())))?;
            fsync_dir(&dir)?;
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
        let opened = match self.file.take() {
            Some(mut file) => {
                file.write_all(&buf).await?;
                file.flush().await?;
                file.sync_all().await?;
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
                    let tmp_dir = device.join("tmp");
                    std::fs::create_dir_all(&tmp_dir)?;
                    let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
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
        w.write(b"abc").await.unwrap();
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
        w.write(b"partial").await.unwrap();
        drop(w);
        assert_eq!(
            std::fs::read_dir(dev.path().join("tmp")).unwrap().count(),
            0
        );
        // A missing device refuses writes.
        assert!(Writer::create(&dev.path().join("nope")).await.is_err());
    }

    #[tokio::test]
    async fn large_writes_and_sidecars_of_older_writes_read_back() {
        let dev = tempfile::tempdir().unwrap();
        let dir = object_dir(dev.path(), 1, "00000000000000000000000000000aaa");
        // Beyond what a write holds in memory: streamed through the temporary file.
        let big: Vec<u8> = (0..BUFFERED * 3 + 5).map(|i| (i % 251) as u8).collect();
        let mut w = Writer::create(dev.path()).await.unwrap();
        for chunk in big.chunks(10_000) {
            w.write(chunk).await.unwrap();
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
