//! The object server's files on one device, as Swift lays them out:
//! `<device>/objects/<part>/<suffix>/<hash>/<timestamp>.data`, its metadata beside it in
//! `<timestamp>.data.json`, metadata posted later in `<timestamp>.meta`, deletions as
//! `<timestamp>.ts` tombstones. The newest `.data` or `.ts` wins; files it supersedes are
//! removed.
//!
//! A write goes to `<device>/tmp/` first and is renamed into place after `fsync`, metadata
//! before data, so a crash leaves either the old object or the new one (and at worst an
//! orphan in `tmp/` or a sidecar without data, which readers ignore).

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
            if !sidecars.contains(&ts) {
                return Err(std::io::Error::other(format!(
                    "{} has data without metadata",
                    dir.display()
                )));
            }
            let mut meta: ObjectMeta = serde_json::from_slice(&std::fs::read(
                dir.join(format!("{}.data.json", ts.normal())),
            )?)
            .map_err(std::io::Error::other)?;
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
            Ok(ObjectState::Present {
                data: dir.join(format!("{}.data", ts.normal())),
                meta,
            })
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

/// An object being received on one device: data streams into `<device>/tmp/`.
pub struct Writer {
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
}

impl Writer {
    /// Starts a write on `device`; fails when the device is not there (unmounted).
    pub async fn create(device: &Path) -> std::io::Result<Writer> {
        if !tokio::fs::metadata(device).await?.is_dir() {
            return Err(std::io::Error::other("device is not a directory"));
        }
        let tmp_dir = device.join("tmp");
        tokio::fs::create_dir_all(&tmp_dir).await?;
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Writer {
            tmp,
            file: Some(file),
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.write_all(chunk).await,
            None => Err(std::io::Error::other("writer closed")),
        }
    }

    /// Makes the object durable at `dir`: data fsynced, metadata written and fsynced, both
    /// renamed into place, the directory fsynced, superseded files removed.
    pub async fn commit(self, dir: PathBuf, meta: ObjectMeta) -> std::io::Result<()> {
        self.place(move |tmp| commit_files(tmp, &dir, &meta)).await
    }

    /// Makes the received bytes durable (fsynced) and hands the temporary file to `place`,
    /// which moves it where it belongs; when `place` fails the file is removed.
    pub async fn place(
        mut self,
        place: impl FnOnce(&Path) -> std::io::Result<()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("writer closed"))?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let tmp = std::mem::take(&mut self.tmp);
        tokio::task::spawn_blocking(move || {
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

fn commit_files(tmp: &Path, dir: &Path, meta: &ObjectMeta) -> std::io::Result<()> {
    let stem = meta.timestamp.normal();
    let sidecar_tmp = tmp.with_extension("json");
    {
        let mut f = std::fs::File::create(&sidecar_tmp)?;
        f.write_all(&serde_json::to_vec(meta).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::rename(&sidecar_tmp, dir.join(format!("{stem}.data.json")))?;
    std::fs::rename(tmp, dir.join(format!("{stem}.data")))?;
    fsync_dir(dir)?;
    cleanup(dir, meta.timestamp)
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
        assert_eq!(std::fs::read(data).unwrap(), b"abc");
        assert_eq!(m.timestamp, t1);
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
}
