//! Disks of the QEMU driver: the per-host image cache (each image fetched once, its bytes
//! checked against Glance's `os_hash_value` before anything uses them, its format checked
//! against the declared `disk_format`; formatted ephemeral and swap bases made once per
//! size, as Nova's `ephemeral_<size>_<hash>` and `swap_<size>`), and each guest's qcow2
//! overlays on top of it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferro_api_types::compute::ImageSource;
use serde_json::Value;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use super::process::run_tool;
use crate::VirtError;

const GIB: u64 = 1 << 30;

/// The host's image cache: `<dir>/<image id>`, complete files only (downloads land in a
/// `.part` file first and are renamed once verified).
pub struct ImageCache {
    dir: PathBuf,
    /// One lock per image so concurrent builds fetch it once.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    http: reqwest::Client,
}

/// A verified image in the cache.
#[derive(Clone, Debug)]
pub struct CachedImage {
    pub path: PathBuf,
    /// `raw` or `qcow2`, as qemu-img found it.
    pub format: String,
    pub virtual_size: u64,
}

fn bad_image(id: &str, why: impl std::fmt::Display) -> VirtError {
    VirtError::Failed(format!("image {id}: {why}"))
}

/// Image ids become file names: only what Glance's UUIDs use.
fn safe_name(id: &str) -> Result<&str, VirtError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(bad_image(id, "the id is not a valid image id"))
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    None,
}

impl Hasher {
    fn new(algo: Option<&str>, id: &str) -> Result<Hasher, VirtError> {
        Ok(match algo {
            Some("sha512") => Hasher::Sha512(sha2::Sha512::new()),
            Some("sha384") => Hasher::Sha384(sha2::Sha384::new()),
            Some("sha256") => Hasher::Sha256(sha2::Sha256::new()),
            None | Some("") => Hasher::None,
            Some(other) => return Err(bad_image(id, format!("unsupported os_hash_algo {other}"))),
        })
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
            Hasher::None => {}
        }
    }
    fn hex(self) -> Option<String> {
        let bytes = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::None => return None,
        };
        Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl ImageCache {
    pub fn new(dir: PathBuf) -> ImageCache {
        ImageCache {
            dir,
            locks: Mutex::new(HashMap::new()),
            http: reqwest::Client::new(),
        }
    }

    /// The image in the cache, fetched and verified first if it is not there yet.
    /// `check_disk` says whether the bytes must be a disk of the declared format (kernels
    /// and ramdisks are not).
    pub async fn get(&self, src: &ImageSource, check_disk: bool) -> Result<CachedImage, VirtError> {
        let name = safe_name(&src.id)?.to_string();
        let lock = self.lock(&name);
        let _g = lock.lock().await;
        let path = self
            .fill(&name, |part| async move { self.fetch(src, &part).await })
            .await?;
        let info = inspect(&path).await.map_err(|e| bad_image(&src.id, e))?;
        let format = info["format"].as_str().unwrap_or("unknown").to_string();
        let virtual_size = info["virtual-size"].as_u64().unwrap_or(0);
        if check_disk {
            check_format(&src.id, &src.disk_format, &format, &info)?;
        }
        Ok(CachedImage {
            path,
            format,
            virtual_size,
        })
    }

    /// Cache file `name` (its lock held), made by `make` into the `.part` path it is given
    /// when missing: it appears whole or not at all. Marked as used now either way.
    async fn fill<F, Fut>(&self, name: &str, make: F) -> Result<PathBuf, VirtError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<(), VirtError>>,
    {
        let path = self.dir.join(name);
        if !path.is_file() {
            tokio::fs::create_dir_all(&self.dir).await.map_err(|e| {
                VirtError::Failed(format!("image cache {}: {e}", self.dir.display()))
            })?;
            let part = self.dir.join(format!("{name}.part"));
            let made = make(part.clone()).await;
            if let Err(e) = made {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(e);
            }
            tokio::fs::rename(&part, &path)
                .await
                .map_err(|e| VirtError::Failed(format!("image cache rename: {e}")))?;
        }
        touch(&path);
        Ok(path)
    }

    /// Nova's image cache manager: every cache file in `in_use` is marked as used now; one
    /// no guest used for longer than `max_age` (its last use is its modification time) is
    /// removed, under its lock so a build fetching it waits. The names removed.
    pub async fn evict_unused(
        &self,
        in_use: &std::collections::HashSet<PathBuf>,
        max_age: std::time::Duration,
    ) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        // Compared as the file system resolves them: a backing file may be named through a
        // relative or linked path.
        let in_use: std::collections::HashSet<PathBuf> = in_use
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        let mut removed = Vec::new();
        for e in entries.filter_map(|e| e.ok()) {
            let path = e.path();
            if std::fs::canonicalize(&path).is_ok_and(|p| in_use.contains(&p)) {
                touch(&path);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let lock = self.lock(name.trim_end_matches(".part"));
            let _g = lock.lock().await;
            let unused_for = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if unused_for.is_some_and(|age| age > max_age) && std::fs::remove_file(&path).is_ok() {
                removed.push(name);
            }
        }
        removed.sort();
        removed
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock of cache file `name`.
    fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The formatted base of a flavor's ephemeral or swap disk, made (sparse, then
    /// `mkfs`/`mkswap`) the first time a guest needs that size.
    pub async fn scratch(&self, kind: Scratch) -> Result<CachedImage, VirtError> {
        let name = kind.file_name();
        let lock = self.lock(&name);
        let _g = lock.lock().await;
        let path = self
            .fill(&name, |part| async move { kind.make(&part).await })
            .await?;
        Ok(CachedImage {
            path,
            format: "raw".into(),
            virtual_size: kind.bytes(),
        })
    }

    /// Downloads `src` into `part`, hashing as it goes.
    async fn fetch(&self, src: &ImageSource, part: &Path) -> Result<(), VirtError> {
        let mut hasher = Hasher::new(src.os_hash_algo.as_deref(), &src.id)?;
        let mut file = tokio::fs::File::create(part)
            .await
            .map_err(|e| VirtError::Failed(format!("create {}: {e}", part.display())))?;
        let write_err =
            |e: std::io::Error| VirtError::Failed(format!("write {}: {e}", part.display()));
        if let Some(local) = src.url.strip_prefix("file://") {
            let mut f = tokio::fs::File::open(local)
                .await
                .map_err(|e| bad_image(&src.id, format!("open {local}: {e}")))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                use tokio::io::AsyncReadExt;
                let n = f
                    .read(&mut buf)
                    .await
                    .map_err(|e| bad_image(&src.id, format!("read {local}: {e}")))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).await.map_err(write_err)?;
            }
        } else if src.url.starts_with("http://") || src.url.starts_with("https://") {
            let mut req = self.http.get(&src.url);
            if let Some(t) = &src.token {
                req = req.header("X-Auth-Token", t);
            }
            let mut resp = req
                .send()
                .await
                .map_err(|e| bad_image(&src.id, format!("download: {e}")))?;
            if !resp.status().is_success() {
                return Err(bad_image(
                    &src.id,
                    format!("download answered {}", resp.status()),
                ));
            }
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| bad_image(&src.id, format!("download: {e}")))?
            {
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(write_err)?;
            }
        } else {
            return Err(bad_image(
                &src.id,
                format!("cannot fetch from {:?}", src.url),
            ));
        }
        file.flush().await.map_err(write_err)?;
        file.sync_all().await.map_err(write_err)?;
        match (hasher.hex(), src.os_hash_value.as_deref()) {
            (Some(got), Some(want)) if !got.eq_ignore_ascii_case(want) => Err(bad_image(
                &src.id,
                format!("the downloaded bytes hash to {got}, not the os_hash_value {want}"),
            )),
            // TODO-security: an image without os_hash_value (Glance sets one for every
            // upload) is taken unverified.
            _ => Ok(()),
        }
    }
}

/// A flavor's scratch disk: its base is formatted once per size and shared by overlays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scratch {
    /// The ephemeral disk of `gb` GiB: ext4 labelled `ephemeral0`, what Nova makes for a
    /// Linux guest (`_DEFAULT_FS_BY_OSTYPE`).
    Ephemeral { gb: i64 },
    /// The swap disk of `mb` MiB (`mkswap`).
    Swap { mb: i64 },
}

/// Nova's label of a guest's first ephemeral file system.
pub const EPHEMERAL_LABEL: &str = "ephemeral0";

/// How ephemeral bases are formatted; its hash names the base, so a changed command
/// makes new bases instead of reusing ones formatted otherwise (as Nova's file extension).
const MKFS_EPHEMERAL: [&str; 5] = ["mkfs.ext4", "-q", "-F", "-L", EPHEMERAL_LABEL];

impl Scratch {
    /// Its base's name in the image cache.
    pub fn file_name(self) -> String {
        match self {
            Scratch::Ephemeral { gb } => {
                let hash = sha2::Sha256::digest(MKFS_EPHEMERAL.join(" ").as_bytes());
                let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
                format!("ephemeral_{gb}_{}", &hex[..7])
            }
            Scratch::Swap { mb } => format!("swap_{mb}"),
        }
    }

    fn bytes(self) -> u64 {
        match self {
            Scratch::Ephemeral { gb } => u64::try_from(gb.max(1)).unwrap_or(1) * GIB,
            Scratch::Swap { mb } => u64::try_from(mb.max(1)).unwrap_or(1) << 20,
        }
    }

    async fn make(self, path: &Path) -> Result<(), VirtError> {
        let file = std::fs::File::create(path)
            .and_then(|f| f.set_len(self.bytes()))
            .map_err(|e| VirtError::Failed(format!("create {}: {e}", path.display())));
        file?;
        let p = path.to_string_lossy();
        match self {
            Scratch::Ephemeral { .. } => {
                let [tool, args @ ..] = MKFS_EPHEMERAL;
                run_tool(tool, &[args.as_slice(), &[&p]].concat()).await?
            }
            Scratch::Swap { .. } => run_tool("mkswap", &[&p]).await?,
        };
        Ok(())
    }
}

/// Marks a cache file as used now: the cache's eviction goes by the last use (Nova's
/// image cache manager touches its base files the same way).
fn touch(path: &Path) {
    let _ = std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
}

/// `qemu-img info` of a file, letting qemu-img probe the format.
pub async fn inspect(path: &Path) -> Result<Value, VirtError> {
    let p = path.to_string_lossy();
    let out = run_tool("qemu-img", &["info", "--output=json", &p]).await?;
    serde_json::from_str(&out).map_err(|e| VirtError::Failed(format!("qemu-img info: {e}")))
}

/// The declared `disk_format` must be what the bytes are: a raw image that is really qcow2
/// could name a host file as its backing file, which is why Nova's format inspector refuses
/// a mismatch too.
fn check_format(id: &str, declared: &str, found: &str, info: &Value) -> Result<(), VirtError> {
    let expected = match declared {
        "qcow2" => "qcow2",
        // AMI root disks are raw bytes.
        "raw" | "ami" | "" => "raw",
        other => {
            return Err(bad_image(
                id,
                format!("disk_format {other} is not supported by the qemu driver (raw, qcow2)"),
            ));
        }
    };
    if found != expected {
        return Err(bad_image(
            id,
            format!("the bytes are not a valid {expected} disk (qemu-img found {found})"),
        ));
    }
    if info.get("backing-filename").is_some()
        || info.pointer("/format-specific/data/data-file").is_some()
    {
        return Err(bad_image(
            id,
            "a qcow2 image with a backing or data file is refused",
        ));
    }
    Ok(())
}

/// Creates a qcow2 overlay `path` over `base` of `size_gb` GiB (the image's own size when
/// 0); the flavor's disk may not be smaller than the image, as Nova's
/// FlavorDiskSmallerThanImage says.
pub async fn create_overlay(
    base: &CachedImage,
    path: &Path,
    size_gb: i64,
) -> Result<(), VirtError> {
    let size = u64::try_from(size_gb).unwrap_or(0) * GIB;
    if size != 0 && size < base.virtual_size {
        return Err(VirtError::Failed(format!(
            "Flavor's disk is too small for requested image. Flavor disk is {size} bytes, image is {} bytes.",
            base.virtual_size
        )));
    }
    let b = base.path.to_string_lossy();
    let p = path.to_string_lossy();
    let size_arg = size.to_string();
    let mut args = vec![
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        &base.format,
        "-b",
        &b,
        &p,
    ];
    if size != 0 {
        args.push(&size_arg);
    }
    run_tool("qemu-img", &args).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha512_hex(b: &[u8]) -> String {
        sha2::Sha512::digest(b)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn source(id: &str, path: &Path, hash: Option<String>, format: &str) -> ImageSource {
        ImageSource {
            id: id.into(),
            url: format!("file://{}", path.display()),
            token: None,
            disk_format: format.into(),
            os_hash_algo: hash.as_ref().map(|_| "sha512".into()),
            os_hash_value: hash,
        }
    }

    /// `blkid`'s answer for `tag` of a file.
    fn blkid(path: &Path, tag: &str) -> String {
        let out = std::process::Command::new("blkid")
            .args(["-p", "-o", "value", "-s", tag])
            .arg(path)
            .output()
            .expect("blkid");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[tokio::test]
    async fn scratch_bases_are_formatted_once_per_size_and_overlaid() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path().join("cache"));
        let eph = cache.scratch(Scratch::Ephemeral { gb: 1 }).await.unwrap();
        let name = eph.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("ephemeral_1_") && name.len() == 19,
            "{name}"
        );
        assert_eq!(blkid(&eph.path, "TYPE"), "ext4");
        assert_eq!(blkid(&eph.path, "LABEL"), EPHEMERAL_LABEL);
        assert_eq!(eph.virtual_size, GIB);
        // Sparse: formatting a GiB writes a few MiB.
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&eph.path).unwrap().blocks() * 512 < GIB / 8);

        let swap = cache.scratch(Scratch::Swap { mb: 16 }).await.unwrap();
        assert!(swap.path.ends_with("swap_16"));
        assert_eq!(blkid(&swap.path, "TYPE"), "swap");

        // The same size again is the same base, not formatted anew.
        let inode = std::fs::metadata(&eph.path).unwrap().ino();
        let again = cache.scratch(Scratch::Ephemeral { gb: 1 }).await.unwrap();
        assert_eq!(std::fs::metadata(&again.path).unwrap().ino(), inode);
        assert_ne!(
            cache
                .scratch(Scratch::Ephemeral { gb: 2 })
                .await
                .unwrap()
                .path,
            eph.path
        );

        // A guest's disk is a qcow2 overlay on the base, showing its file system.
        let overlay = dir.path().join("disk.eph0");
        create_overlay(&eph, &overlay, 0).await.unwrap();
        let info = inspect(&overlay).await.unwrap();
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["virtual-size"].as_u64(), Some(GIB));
        assert_eq!(info["backing-filename-format"], "raw");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[tokio::test]
    async fn eviction_removes_only_files_unused_for_longer_than_the_age() {
        use std::collections::HashSet;
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path().join("cache"));
        std::fs::create_dir_all(cache.dir()).unwrap();
        let day_ago = SystemTime::now() - Duration::from_secs(86_400 + 60);
        let file = |name: &str, modified: SystemTime| {
            let p = cache.dir().join(name);
            let f = std::fs::File::create(&p).unwrap();
            f.set_modified(modified).unwrap();
            p
        };
        let used_old = file("img-used", day_ago);
        let unused_old = file("img-unused", day_ago);
        let unused_new = file("swap_16", SystemTime::now());
        let abandoned = file("img-x.part", day_ago);
        let in_use = HashSet::from([used_old.clone()]);
        let removed = cache
            .evict_unused(&in_use, Duration::from_secs(86_400))
            .await;
        assert_eq!(removed, vec!["img-unused", "img-x.part"]);
        assert!(used_old.is_file() && unused_new.is_file());
        assert!(!unused_old.exists() && !abandoned.exists());
        // A file in use counts as used now: it outlives the next passes too.
        let age = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap().elapsed();
        assert!(age(&used_old).unwrap() < Duration::from_secs(60));
        assert!(
            cache
                .evict_unused(&HashSet::new(), Duration::from_secs(86_400))
                .await
                .is_empty()
        );
        assert_eq!(
            cache.evict_unused(&HashSet::new(), Duration::ZERO).await,
            vec!["img-used", "swap_16"]
        );
    }

    #[tokio::test]
    async fn images_are_verified_once_and_bad_bytes_refused() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("src.raw");
        std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
        let cache = ImageCache::new(dir.path().join("cache"));
        let good = source("img-1", &raw, Some(sha512_hex(&vec![0u8; 1 << 20])), "raw");
        let img = cache.get(&good, true).await.unwrap();
        assert_eq!(img.format, "raw");
        assert_eq!(img.virtual_size, 1 << 20);

        let wrong_hash = source("img-2", &raw, Some("00".repeat(64)), "raw");
        let e = cache.get(&wrong_hash, true).await.unwrap_err().to_string();
        assert!(e.contains("not the os_hash_value"), "{e}");
        assert!(!dir.path().join("cache/img-2").exists());
        assert!(!dir.path().join("cache/img-2.part").exists());

        let not_qcow2 = source("img-3", &raw, None, "qcow2");
        let e = cache.get(&not_qcow2, true).await.unwrap_err().to_string();
        assert!(e.contains("not a valid qcow2 disk"), "{e}");

        let overlay = dir.path().join("disk");
        create_overlay(&img, &overlay, 1).await.unwrap();
        let info = inspect(&overlay).await.unwrap();
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["virtual-size"].as_u64(), Some(GIB));
        assert!(matches!(
            cache.get(&source("../x", &raw, None, "raw"), true).await,
            Err(VirtError::Failed(_))
        ));
    }
}
