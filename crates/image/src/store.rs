//! Where image bytes live. A [`Store`] writes an image's data as a stream of chunks and
//! hands it back as one; [`FileStore`] keeps one file per image under a directory.
//!
//! A store knows nothing of image records or checksums: the manager hashes while it feeds
//! the writer, and decides whether to commit or abort.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use ferro_common::{Error, Result};
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// The id of the one store this service runs, as `GET /v2/info/stores` and an image's
/// `stores` property name it.
pub const STORE_ID: &str = "file";

/// Image data being read back, chunk by chunk.
pub type DataStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A backend for image data (`file` today, `swift` later).
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Starts writing the data of image `id`. Nothing is visible until [`Upload::commit`];
    /// an upload dropped or aborted before that leaves nothing behind.
    async fn begin(&self, id: &str) -> Result<Box<dyn Upload>>;
    /// The data of image `id` from byte `offset`, at most `len` bytes of it (all when
    /// `None`), or `None` when the store holds no data for the image.
    async fn get(&self, id: &str, offset: u64, len: Option<u64>) -> Result<Option<DataStream>>;
    /// Removes the data of image `id`; absent data is not an error.
    async fn delete(&self, id: &str) -> Result<()>;
}

/// One image's data on its way into a store.
#[async_trait::async_trait]
pub trait Upload: Send {
    /// Appends a chunk.
    async fn write(&mut self, chunk: &[u8]) -> Result<()>;
    /// Makes the data the image's, atomically.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Discards what was written.
    async fn abort(self: Box<Self>);
}

/// Image data as files: `<dir>/<id>`, written through `<dir>/<id>.part`.
pub struct FileStore {
    dir: PathBuf,
}

/// Read size for downloads: large enough for throughput (one blocking read per MiB),
/// small enough for bounded memory.
const CHUNK: usize = 1024 * 1024;

impl FileStore {
    /// A store under `dir`, created if missing.
    pub fn new(dir: &Path) -> Result<FileStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("image store {dir:?}: {e}")))?;
        Ok(FileStore {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, id: &str) -> Result<PathBuf> {
        // Ids are UUIDs; refuse anything that could leave the directory.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::internal(format!(
                "image id {id:?} is not a file name"
            )));
        }
        Ok(self.dir.join(id))
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("image store: {what} {path:?}: {e}"))
}

#[async_trait::async_trait]
impl Store for FileStore {
    async fn begin(&self, id: &str) -> Result<Box<dyn Upload>> {
        let target = self.path(id)?;
        let part = self.dir.join(format!("{id}.part"));
        let file = tokio::fs::File::create(&part)
            .await
            .map_err(|e| io("create", &part, e))?;
        Ok(Box::new(FileUpload {
            file: Some(file),
            part,
            target,
            done: false,
        }))
    }

    async fn get(&self, id: &str, offset: u64, len: Option<u64>) -> Result<Option<DataStream>> {
        let path = self.path(id)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("open", &path, e)),
        };
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| io("seek", &path, e))?;
        }
        let left = len.unwrap_or(u64::MAX);
        let stream = futures::stream::unfold(Some((file, left)), |state| async move {
            let (mut file, left) = state?;
            if left == 0 {
                return None;
            }
            let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            let mut buf = vec![0u8; want];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some((file, left - n as u64))))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        Ok(Some(Box::pin(stream)))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let path = self.path(id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &path, e)),
        }
    }
}

/// A file being written; removed in `Drop` unless committed, so a cancelled upload leaves
/// no partial file.
struct FileUpload {
    file: Option<tokio::fs::File>,
    part: PathBuf,
    target: PathBuf,
    done: bool,
}

#[async_trait::async_trait]
impl Upload for FileUpload {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Err(Error::internal("image store: write after close"));
        };
        f.write_all(chunk)
            .await
            .map_err(|e| io("write", &self.part, e))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush().await.map_err(|e| io("flush", &self.part, e))?;
            f.sync_all().await.map_err(|e| io("sync", &self.part, e))?;
        }
        tokio::fs::rename(&self.part, &self.target)
            .await
            .map_err(|e| io("rename", &self.part, e))?;
        self.done = true;
        Ok(())
    }

    async fn abort(mut self: Box<Self>) {
        self.file.take();
        let _ = tokio::fs::remove_file(&self.part).await;
        self.done = true;
    }
}

impl Drop for FileUpload {
    fn drop(&mut self) {
        if !self.done {
            self.file.take();
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn read_all(s: &FileStore, id: &str) -> Option<Vec<u8>> {
        read_range(s, id, 0, None).await
    }

    async fn read_range(s: &FileStore, id: &str, offset: u64, len: Option<u64>) -> Option<Vec<u8>> {
        let mut stream = s.get(id, offset, len).await.unwrap()?;
        let mut out = Vec::new();
        while let Some(c) = stream.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        Some(out)
    }

    #[tokio::test]
    async fn committed_data_reads_back_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path()).unwrap();
        let mut u = s.begin("abc-1").await.unwrap();
        u.write(b"hello ").await.unwrap();
        u.write(&vec![7u8; CHUNK + 3]).await.unwrap();
        u.commit().await.unwrap();
        let data = read_all(&s, "abc-1").await.unwrap();
        assert_eq!(data.len(), 6 + CHUNK + 3);
        assert_eq!(&data[..6], b"hello ");
        let part = read_range(&s, "abc-1", 3, Some(5)).await.unwrap();
        assert_eq!(part, b"lo \x07\x07");
        let tail = read_range(&s, "abc-1", 6 + CHUNK as u64, None)
            .await
            .unwrap();
        assert_eq!(tail, [7u8; 3]);
        s.delete("abc-1").await.unwrap();
        assert!(read_all(&s, "abc-1").await.is_none());
        s.delete("abc-1").await.unwrap();
    }

    #[tokio::test]
    async fn aborted_or_dropped_uploads_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path()).unwrap();
        let mut u = s.begin("a").await.unwrap();
        u.write(b"x").await.unwrap();
        u.abort().await;
        let mut u = s.begin("b").await.unwrap();
        u.write(b"x").await.unwrap();
        drop(u);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(s.begin("../x").await.is_err());
    }
}
