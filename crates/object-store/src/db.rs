//! The account and container servers' databases: one SQLite file per account and per
//! container on each of its devices, as upstream
//! (`<device>/{accounts,containers}/<part>/<suffix>/<hash>/<hash>.db`).
//!
//! A container database lists its objects (name, timestamp, size, type, etag; deleted rows
//! are kept as markers so an older update cannot resurrect an object) and keeps the
//! container's metadata. An account database lists its containers with their counts. A
//! deleted account or container keeps its file with a delete timestamp newer than its put
//! timestamp. No SQL lives outside this module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::model::{Entry, ListParams, Metadata, SwiftError, SwiftResult, Timestamp};

const CONTAINER_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS object (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, \
  size INTEGER NOT NULL, content_type TEXT NOT NULL, etag TEXT NOT NULL, deleted INTEGER NOT NULL) \
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stat (id INTEGER PRIMARY KEY CHECK (id = 1), \
  created_at TEXT NOT NULL, put_timestamp TEXT NOT NULL, delete_timestamp TEXT NOT NULL, \
  metadata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), \
  object_count INTEGER NOT NULL, bytes_used INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS object_insert AFTER INSERT ON object BEGIN \
  UPDATE totals SET object_count = object_count + (1 - new.deleted), \
    bytes_used = bytes_used + CASE WHEN new.deleted = 0 THEN new.size ELSE 0 END; END;
CREATE TRIGGER IF NOT EXISTS object_update AFTER UPDATE ON object BEGIN \
  UPDATE totals SET object_count = object_count - (1 - old.deleted) + (1 - new.deleted), \
    bytes_used = bytes_used - CASE WHEN old.deleted = 0 THEN old.size ELSE 0 END \
      + CASE WHEN new.deleted = 0 THEN new.size ELSE 0 END; END;
CREATE TRIGGER IF NOT EXISTS object_delete AFTER DELETE ON object BEGIN \
  UPDATE totals SET object_count = object_count - (1 - old.deleted), \
    bytes_used = bytes_used - CASE WHEN old.deleted = 0 THEN old.size ELSE 0 END; END;
INSERT OR IGNORE INTO totals SELECT 1, COUNT(*), COALESCE(SUM(size), 0) FROM object \
  WHERE deleted = 0 AND NOT EXISTS (SELECT 1 FROM totals);";

const ACCOUNT_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS container (name TEXT PRIMARY KEY, put_timestamp TEXT NOT NULL, \
  delete_timestamp TEXT NOT NULL, object_count INTEGER NOT NULL, bytes_used INTEGER NOT NULL, \
  deleted INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stat (id INTEGER PRIMARY KEY CHECK (id = 1), \
  created_at TEXT NOT NULL, put_timestamp TEXT NOT NULL, delete_timestamp TEXT NOT NULL, \
  metadata TEXT NOT NULL);";

/// Which kind of database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Account,
    Container,
}

impl Kind {
    /// The directory of a device holding this kind's databases.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Account => "accounts",
            Kind::Container => "containers",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = ();
    /// From [`Kind::dir`]'s name.
    fn from_str(s: &str) -> Result<Kind, ()> {
        match s {
            "accounts" => Ok(Kind::Account),
            "containers" => Ok(Kind::Container),
            _ => Err(()),
        }
    }
}

/// `<device>/<accounts|containers>/<part>/<suffix>/<hash>/<hash>.db`.
pub fn db_path(device: &Path, kind: Kind, part: u32, hash: &str) -> PathBuf {
    let suffix = &hash[hash.len().saturating_sub(3)..];
    device
        .join(kind.dir())
        .join(part.to_string())
        .join(suffix)
        .join(hash)
        .join(format!("{hash}.db"))
}

/// An account's or container's own record.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stat {
    pub created_at: Timestamp,
    pub put_timestamp: Timestamp,
    pub delete_timestamp: Timestamp,
    pub metadata: Metadata,
    /// Objects (container) or containers (account) listed, and their totals.
    pub count: i64,
    pub object_count: i64,
    pub bytes_used: i64,
}

impl Stat {
    pub fn is_deleted(&self) -> bool {
        self.delete_timestamp >= self.put_timestamp
    }
}

/// A container listing row.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ObjectRow {
    pub name: String,
    pub created_at: String,
    pub size: i64,
    pub content_type: String,
    pub etag: String,
}

/// An account listing row.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ContainerRow {
    pub name: String,
    pub put_timestamp: String,
    pub object_count: i64,
    pub bytes_used: i64,
}

/// Open databases, one single-connection pool per file (SQLite serialises writers anyway).
#[derive(Debug, Default)]
pub struct Databases {
    pools: tokio::sync::Mutex<HashMap<PathBuf, SqlitePool>>,
    /// Object rows waiting for their container database, by file (see
    /// [`Databases::container_put_object`]).
    row_queues: std::sync::Mutex<HashMap<PathBuf, Arc<RowQueue>>>,
}

/// An object row waiting to be written, and who waits for it.
type QueuedRow = (
    ObjectRow,
    bool,
    tokio::sync::oneshot::Sender<SwiftResult<()>>,
);

/// The object rows of concurrent PUTs and DELETEs into one container database, written
/// together: whoever holds `turn` takes every row queued so far.
#[derive(Debug, Default)]
struct RowQueue {
    rows: std::sync::Mutex<Vec<QueuedRow>>,
    turn: tokio::sync::Mutex<()>,
}

/// Rows one statement writes at most (SQLite binds up to 32,766 values; six a row).
const MAX_BATCH: usize = 256;

/// Databases kept open at once; beyond this the cache starts over.
const MAX_OPEN: usize = 128;

fn backend(e: impl std::fmt::Display) -> SwiftError {
    SwiftError::unavailable(e)
}

impl Databases {
    /// The database at `path`; `None` when it does not exist and `create` is false.
    pub async fn open(
        &self,
        path: &Path,
        kind: Kind,
        create: bool,
    ) -> SwiftResult<Option<SqlitePool>> {
        let mut pools = self.pools.lock().await;
        if let Some(p) = pools.get(path) {
            return Ok(Some(p.clone()));
        }
        if !path.exists() {
            if !create {
                return Ok(None);
            }
            let dir = path.parent().ok_or_else(|| backend("database path"))?;
            // The device itself must be there: a missing device is a failed backend.
            let device = dir
                .ancestors()
                .nth(4)
                .ok_or_else(|| backend("database path"))?;
            if !device.is_dir() {
                return Err(backend(format!(
                    "device {} is not mounted",
                    device.display()
                )));
            }
            tokio::fs::create_dir_all(dir).await.map_err(backend)?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(backend)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // As upstream's `swift/common/db.py` (`PRAGMA synchronous = NORMAL`): a commit
            // does not wait for the disk; the WAL keeps the file consistent after a crash,
            // and replicas on other devices cover the last commits.
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            // A database replica's export streams every row: let the connection's thread
            // run ahead rather than wait for the caller every 50 rows (sqlx's default).
            .row_buffer_size(4096)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(backend)?;
        let schema = match kind {
            Kind::Account => ACCOUNT_SCHEMA,
            Kind::Container => CONTAINER_SCHEMA,
        };
        sqlx::raw_sql(schema)
            .execute(&pool)
            .await
            .map_err(backend)?;
        if pools.len() >= MAX_OPEN {
            // Forget the open databases without closing them: requests still holding one
            // finish their work, and each closes when its last holder drops it.
            pools.clear();
        }
        pools.insert(path.to_path_buf(), pool.clone());
        Ok(Some(pool))
    }

    /// Records an object's row in the container database at `path` (open as `pool`) as
    /// [`container_put_object`] does, together with the rows of other requests into the same
    /// database meanwhile: one statement and one transaction for all of them, where each
    /// row on its own cost a round trip to the connection's thread and a commit (group
    /// commit; with sixteen PUTs at once into one container most of a PUT's database time).
    /// Each row keeps its own rule: it replaces only an older one.
    pub async fn container_put_object(
        &self,
        path: &Path,
        pool: &SqlitePool,
        row: ObjectRow,
        deleted: bool,
    ) -> SwiftResult<()> {
        let queue = {
            let mut queues = self.row_queues.lock().unwrap_or_else(|e| e.into_inner());
            if queues.len() >= MAX_OPEN && !queues.contains_key(path) {
                queues.retain(|_, q| Arc::strong_count(q) > 1);
            }
            queues.entry(path.to_path_buf()).or_default().clone()
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let retry = (row.clone(), deleted);
        queue
            .rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((row, deleted, tx));
        {
            let _turn = queue.turn.lock().await;
            loop {
                let batch: Vec<QueuedRow> = {
                    let mut rows = queue.rows.lock().unwrap_or_else(|e| e.into_inner());
                    let n = rows.len().min(MAX_BATCH);
                    rows.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                write_rows(pool, batch).await;
            }
        }
        match rx.await {
            Ok(result) => result,
            // The request that took this row was cancelled before it answered: written
            // or not, the row is written again here (an upsert that only replaces older).
            Err(_) => container_put_object(pool, &retry.0, retry.1).await,
        }
    }

    /// Closes every open database (shutdown and tests).
    pub async fn close_all(&self) {
        for (_, p) in self.pools.lock().await.drain() {
            p.close().await;
        }
    }
}

async fn read_stat_row(pool: &SqlitePool) -> SwiftResult<Option<(String, String, String, String)>> {
    sqlx::query_as(
        "SELECT created_at, put_timestamp, delete_timestamp, metadata FROM stat WHERE id = 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(backend)
}

/// Creates or re-creates the record at `ts` with `metadata` merged in. Returns true when
/// it did not exist (or was deleted) before.
pub async fn put_stat(pool: &SqlitePool, ts: Timestamp, metadata: &Metadata) -> SwiftResult<bool> {
    let row = read_stat_row(pool).await?;
    let (created, mut meta, existed, put_ts) = match &row {
        Some((created, put, delete, meta)) => {
            let put = Timestamp::parse(put).unwrap_or(Timestamp(0));
            let delete = Timestamp::parse(delete).unwrap_or(Timestamp(0));
            let meta: Metadata = serde_json::from_str(meta).unwrap_or_default();
            if delete >= put {
                (ts.normal(), Metadata::new(), false, put)
            } else {
                (created.clone(), meta, true, put)
            }
        }
        None => (ts.normal(), Metadata::new(), false, Timestamp(0)),
    };
    merge(&mut meta, metadata);
    let put = if existed { put_ts.max(ts) } else { ts };
    sqlx::query(
        "INSERT INTO stat (id, created_at, put_timestamp, delete_timestamp, metadata) \
         VALUES (1, ?, ?, '0', ?) ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, \
         put_timestamp = excluded.put_timestamp, metadata = excluded.metadata, \
         delete_timestamp = CASE WHEN stat.delete_timestamp >= excluded.put_timestamp \
           THEN '0' ELSE stat.delete_timestamp END",
    )
    .bind(&created)
    .bind(put.normal())
    .bind(serde_json::to_string(&meta).unwrap_or_else(|_| "{}".into()))
    .execute(pool)
    .await
    .map_err(backend)?;
    Ok(!existed)
}

/// Adds (non-empty values) and removes (empty values) metadata.
fn merge(meta: &mut Metadata, update: &Metadata) {
    for (k, v) in update {
        if v.is_empty() {
            meta.remove(k);
        } else {
            meta.insert(k.clone(), v.clone());
        }
    }
}

/// Updates metadata of an existing record; false when there is none (or it is deleted).
pub async fn post_stat(pool: &SqlitePool, kind: Kind, metadata: &Metadata) -> SwiftResult<bool> {
    let Some(stat) = get_stat(pool, kind).await? else {
        return Ok(false);
    };
    let mut meta = stat.metadata;
    merge(&mut meta, metadata);
    sqlx::query("UPDATE stat SET metadata = ? WHERE id = 1")
        .bind(serde_json::to_string(&meta).unwrap_or_else(|_| "{}".into()))
        .execute(pool)
        .await
        .map_err(backend)?;
    Ok(true)
}

/// Marks the record deleted at `ts`.
pub async fn delete_stat(pool: &SqlitePool, ts: Timestamp) -> SwiftResult<()> {
    sqlx::query("UPDATE stat SET delete_timestamp = ?, metadata = '{}' WHERE id = 1")
        .bind(ts.normal())
        .execute(pool)
        .await
        .map_err(backend)?;
    Ok(())
}

/// The record and its totals; `None` when missing or deleted.
pub async fn get_stat(pool: &SqlitePool, kind: Kind) -> SwiftResult<Option<Stat>> {
    let Some((created, put, delete, meta)) = read_stat_row(pool).await? else {
        return Ok(None);
    };
    let (count, objects, bytes): (i64, i64, i64) = match kind {
        Kind::Container => {
            // Kept by triggers as each row changes (upstream's container_stat does the
            // same), so a stat costs the same in a container of ten or ten million.
            let (n, b): (i64, i64) =
                sqlx::query_as("SELECT object_count, bytes_used FROM totals WHERE id = 1")
                    .fetch_one(pool)
                    .await
                    .map_err(backend)?;
            (n, n, b)
        }
        Kind::Account => sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(object_count), 0), COALESCE(SUM(bytes_used), 0) \
             FROM container WHERE deleted = 0",
        )
        .fetch_one(pool)
        .await
        .map_err(backend)?,
    };
    let stat = Stat {
        created_at: Timestamp::parse(&created).unwrap_or(Timestamp(0)),
        put_timestamp: Timestamp::parse(&put).unwrap_or(Timestamp(0)),
        delete_timestamp: Timestamp::parse(&delete).unwrap_or(Timestamp(0)),
        metadata: serde_json::from_str(&meta).unwrap_or_default(),
        count,
        object_count: objects,
        bytes_used: bytes,
    };
    Ok((!stat.is_deleted()).then_some(stat))
}

/// Records an object's PUT (or, with `deleted`, its DELETE) at `ts` in a container
/// database, unless the row already holds something newer.
pub async fn container_put_object(
    pool: &SqlitePool,
    row: &ObjectRow,
    deleted: bool,
) -> SwiftResult<()> {
    let sql = format!("{PUT_OBJECT_COLUMNS}(?, ?, ?, ?, ?, ?){PUT_OBJECT_UPSERT}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&row.name)
        .bind(&row.created_at)
        .bind(row.size)
        .bind(&row.content_type)
        .bind(&row.etag)
        .bind(i64::from(deleted))
        .execute(pool)
        .await
        .map_err(backend)?;
    Ok(())
}

const PUT_OBJECT_COLUMNS: &str =
    "INSERT INTO object (name, created_at, size, content_type, etag, deleted) VALUES ";
const PUT_OBJECT_UPSERT: &str = " ON CONFLICT (name) DO UPDATE SET \
     created_at = excluded.created_at, size = excluded.size, \
     content_type = excluded.content_type, etag = excluded.etag, deleted = excluded.deleted \
     WHERE excluded.created_at > object.created_at";

/// Writes queued rows in one statement and answers each; when that fails, row by row so
/// that each gets its own result.
async fn write_rows(pool: &SqlitePool, batch: Vec<QueuedRow>) {
    if batch.len() > 1 {
        let values = vec!["(?, ?, ?, ?, ?, ?)"; batch.len()].join(", ");
        let sql = format!("{PUT_OBJECT_COLUMNS}{values}{PUT_OBJECT_UPSERT}");
        // Only placeholders are formatted in; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (row, deleted, _) in &batch {
            q = q
                .bind(&row.name)
                .bind(&row.created_at)
                .bind(row.size)
                .bind(&row.content_type)
                .bind(&row.etag)
                .bind(i64::from(*deleted));
        }
        if q.execute(pool).await.is_ok() {
            for (_, _, tx) in batch {
                let _ = tx.send(Ok(()));
            }
            return;
        }
    }
    for (row, deleted, tx) in batch {
        let _ = tx.send(container_put_object(pool, &row, deleted).await);
    }
}

/// Records a container's totals (or its deletion) in an account database.
pub async fn account_put_container(
    pool: &SqlitePool,
    name: &str,
    put_timestamp: Timestamp,
    object_count: i64,
    bytes_used: i64,
    deleted: bool,
) -> SwiftResult<()> {
    sqlx::query(
        "INSERT INTO container (name, put_timestamp, delete_timestamp, object_count, bytes_used, deleted) \
         VALUES (?, ?, '0', ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
         put_timestamp = CASE WHEN excluded.deleted = 1 THEN container.put_timestamp \
           ELSE max(container.put_timestamp, excluded.put_timestamp) END, \
         object_count = excluded.object_count, bytes_used = excluded.bytes_used, \
         deleted = excluded.deleted",
    )
    .bind(name)
    .bind(put_timestamp.normal())
    .bind(object_count)
    .bind(bytes_used)
    .bind(i64::from(deleted))
    .execute(pool)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Opens (creating) the queue of objects to expire.
pub async fn open_expiring(path: &Path) -> SwiftResult<SqlitePool> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(backend)?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(backend)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(backend)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS expiring (delete_at INTEGER NOT NULL, account TEXT NOT NULL, \
         container TEXT NOT NULL, object TEXT NOT NULL, \
         PRIMARY KEY (delete_at, account, container, object))",
    )
    .execute(&pool)
    .await
    .map_err(backend)?;
    Ok(pool)
}

pub async fn expiring_add(
    pool: &SqlitePool,
    at: i64,
    account: &str,
    container: &str,
    object: &str,
) -> SwiftResult<()> {
    sqlx::query("INSERT OR IGNORE INTO expiring (delete_at, account, container, object) VALUES (?, ?, ?, ?)")
        .bind(at)
        .bind(account)
        .bind(container)
        .bind(object)
        .execute(pool)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Queued objects due at `now` or before, oldest first.
pub async fn expiring_due(
    pool: &SqlitePool,
    now: i64,
    limit: i64,
) -> SwiftResult<Vec<(i64, String, String, String)>> {
    sqlx::query_as(
        "SELECT delete_at, account, container, object FROM expiring WHERE delete_at <= ? \
         ORDER BY delete_at LIMIT ?",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(backend)
}

pub async fn expiring_remove(
    pool: &SqlitePool,
    at: i64,
    account: &str,
    container: &str,
    object: &str,
) -> SwiftResult<()> {
    sqlx::query(
        "DELETE FROM expiring WHERE delete_at = ? AND account = ? AND container = ? AND object = ?",
    )
    .bind(at)
    .bind(account)
    .bind(container)
    .bind(object)
    .execute(pool)
    .await
    .map_err(backend)?;
    Ok(())
}

/// One page of rows of `table` (each its `columns`, the first the name), after `marker`
/// in listing order.
///
/// SQLite hands the page back as one JSON array of rows (`json_group_array`) rather than
/// row by row: sqlx passes each row from its connection thread to the caller through a
/// channel, which costs two thread wake-ups a row and made most of a 10,000-row listing's
/// time.
async fn page<T>(
    pool: &SqlitePool,
    (table, columns): (&str, &str),
    params: &ListParams,
    marker: &str,
    limit: usize,
    name_of: fn(&T) -> &str,
) -> SwiftResult<Vec<T>>
where
    T: serde::de::DeserializeOwned,
{
    let (cmp, end_cmp, order) = if params.reverse {
        ("<", ">", "DESC")
    } else {
        (">", "<", "ASC")
    };
    let mut sql = format!("SELECT {columns} FROM {table} WHERE deleted = 0");
    let mut args: Vec<String> = Vec::new();
    if !marker.is_empty() {
        sql.push_str(&format!(" AND name {cmp} ?"));
        args.push(marker.to_string());
    }
    if let Some(end) = &params.end_marker {
        sql.push_str(&format!(" AND name {end_cmp} ?"));
        args.push(end.clone());
    }
    if !params.prefix.is_empty() {
        sql.push_str(" AND substr(name, 1, ?) = ?");
        args.push(params.prefix.chars().count().to_string());
        args.push(params.prefix.clone());
    }
    sql.push_str(&format!(" ORDER BY name {order} LIMIT {limit}"));
    let sql = format!("SELECT json_group_array(json_array({columns})) FROM ({sql})");
    // Only fixed SQL fragments are formatted in; every value is bound.
    let mut q = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
    for a in &args {
        q = q.bind(a);
    }
    let (json,) = q.fetch_one(pool).await.map_err(backend)?;
    let mut rows: Vec<T> = serde_json::from_str(&json).map_err(backend)?;
    // An aggregate's order is SQLite's to choose: put the page in listing order (a
    // linear pass when it already is, as it comes out in practice). Names compare as
    // SQLite's BINARY collation does, byte by byte.
    if params.reverse {
        rows.sort_by(|a, b| name_of(b).cmp(name_of(a)));
    } else {
        rows.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    }
    Ok(rows)
}

/// A listing as Swift builds it: rows after the marker, within the end marker and prefix,
/// names past the prefix cut at the delimiter and rolled up into `subdir`s.
async fn listing<T>(
    pool: &SqlitePool,
    select: (&str, &str),
    params: &ListParams,
    name_of: fn(&T) -> &str,
) -> SwiftResult<Vec<Entry<T>>>
where
    T: serde::de::DeserializeOwned,
{
    let mut out: Vec<Entry<T>> = Vec::new();
    let mut marker = params.marker.clone();
    while out.len() < params.limit {
        let want = params.limit - out.len();
        let rows: Vec<T> = page(pool, select, params, &marker, want, name_of).await?;
        if rows.is_empty() {
            break;
        }
        let n = rows.len();
        let mut rolled = false;
        for row in rows {
            let name = name_of(&row).to_string();
            if let Some(delim) = params.delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(idx) = name[params.prefix.len().min(name.len())..].find(delim)
            {
                let end = params.prefix.len() + idx + delim.len();
                let subdir = name[..end].to_string();
                // Skip everything under this subdir: continue after it.
                marker = if params.reverse {
                    subdir.clone()
                } else {
                    let mut m = name[..end - delim.len()].to_string();
                    let next = delim
                        .chars()
                        .next()
                        .and_then(|c| char::from_u32(c as u32 + 1))
                        .unwrap_or(char::MAX);
                    m.push(next);
                    m
                };
                if !matches!(out.last(), Some(Entry::Subdir(s)) if *s == subdir) {
                    out.push(Entry::Subdir(subdir));
                }
                rolled = true;
                break;
            }
            out.push(Entry::Item(name, row));
            if out.len() >= params.limit {
                break;
            }
        }
        if !rolled && n < want {
            break;
        }
        if !rolled && let Some(Entry::Item(last, _)) = out.last() {
            marker = last.clone();
        }
    }
    Ok(out)
}

/// A container's object listing.
pub async fn list_objects(
    pool: &SqlitePool,
    params: &ListParams,
) -> SwiftResult<Vec<Entry<ObjectRow>>> {
    listing(
        pool,
        ("object", "name, created_at, size, content_type, etag"),
        params,
        |r: &ObjectRow| &r.name,
    )
    .await
}

/// An account's container listing.
pub async fn list_containers(
    pool: &SqlitePool,
    params: &ListParams,
) -> SwiftResult<Vec<Entry<ContainerRow>>> {
    listing(
        pool,
        ("container", "name, put_timestamp, object_count, bytes_used"),
        params,
        |r: &ContainerRow| &r.name,
    )
    .await
}

/// Everything one replica of a database holds, as the database replicator sends it to a
/// peer: the record's timestamps and metadata and every row, deleted markers included.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Replica {
    pub created_at: String,
    pub put_timestamp: String,
    pub delete_timestamp: String,
    pub metadata: Metadata,
    pub objects: Vec<ReplicaObject>,
    pub containers: Vec<ReplicaContainer>,
}

/// A container database's row as replicated.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ReplicaObject {
    pub name: String,
    pub created_at: String,
    pub size: i64,
    pub content_type: String,
    pub etag: String,
    pub deleted: i64,
}

/// An account database's row as replicated.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ReplicaContainer {
    pub name: String,
    pub put_timestamp: String,
    pub delete_timestamp: String,
    pub object_count: i64,
    pub bytes_used: i64,
    pub deleted: i64,
}

/// The whole replica; `None` when the database has no record.
pub async fn replica_export(pool: &SqlitePool, kind: Kind) -> SwiftResult<Option<Replica>> {
    let Some((created_at, put_timestamp, delete_timestamp, meta)) = read_stat_row(pool).await?
    else {
        return Ok(None);
    };
    let (objects, containers) = match kind {
        Kind::Container => (
            sqlx::query_as(
                "SELECT name, created_at, size, content_type, etag, deleted FROM object \
                 ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(backend)?,
            Vec::new(),
        ),
        Kind::Account => (
            Vec::new(),
            sqlx::query_as(
                "SELECT name, put_timestamp, delete_timestamp, object_count, bytes_used, \
                 deleted FROM container ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(backend)?,
        ),
    };
    Ok(Some(Replica {
        created_at,
        put_timestamp,
        delete_timestamp,
        metadata: serde_json::from_str(&meta).unwrap_or_default(),
        objects,
        containers,
    }))
}

/// What two replicas compare to decide whether to sync: an md5 over the record's put and
/// delete timestamps and each row's name and timestamp (and deleted flag), in name order.
/// Equal digests: nothing to send (Swift's db replicator compares its `hash` likewise).
pub fn replica_digest(r: &Replica) -> String {
    use md5::Digest as _;
    let mut md5 = md5::Md5::new();
    md5.update(format!("{}|{}\n", r.put_timestamp, r.delete_timestamp));
    for o in &r.objects {
        md5.update(format!("{}|{}|{}\n", o.name, o.created_at, o.deleted));
    }
    for c in &r.containers {
        md5.update(format!("{}|{}\n", c.name, c.put_timestamp));
    }
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Merges a peer's replica into this one, newest wins: object rows by their timestamp (a
/// newer deletion marker too), container rows by their put timestamp (the newer row's
/// counts with it), the record's put and delete timestamps each the later of the two, and
/// metadata keys this side lacks.
// TODO-correctness: upstream keeps a timestamp per metadata key and per container-row
// report, so changed metadata values and later counts merge too; here only missing keys
// and newer container rows do (the proxy's next update corrects the counts).
pub async fn replica_merge(pool: &SqlitePool, r: &Replica) -> SwiftResult<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    let mine: Option<(String,)> = sqlx::query_as("SELECT metadata FROM stat WHERE id = 1")
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
    let mut meta: Metadata = mine
        .and_then(|(m,)| serde_json::from_str(&m).ok())
        .unwrap_or_default();
    for (k, v) in &r.metadata {
        meta.entry(k.clone()).or_insert_with(|| v.clone());
    }
    sqlx::query(
        "INSERT INTO stat (id, created_at, put_timestamp, delete_timestamp, metadata) \
         VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
         created_at = min(stat.created_at, excluded.created_at), \
         put_timestamp = max(stat.put_timestamp, excluded.put_timestamp), \
         delete_timestamp = max(stat.delete_timestamp, excluded.delete_timestamp), \
         metadata = excluded.metadata",
    )
    .bind(&r.created_at)
    .bind(&r.put_timestamp)
    .bind(&r.delete_timestamp)
    .bind(serde_json::to_string(&meta).unwrap_or_else(|_| "{}".into()))
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    for o in &r.objects {
        sqlx::query(
            "INSERT INTO object (name, created_at, size, content_type, etag, deleted) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
             created_at = excluded.created_at, size = excluded.size, \
             content_type = excluded.content_type, etag = excluded.etag, \
             deleted = excluded.deleted WHERE excluded.created_at > object.created_at",
        )
        .bind(&o.name)
        .bind(&o.created_at)
        .bind(o.size)
        .bind(&o.content_type)
        .bind(&o.etag)
        .bind(o.deleted)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    for c in &r.containers {
        sqlx::query(
            "INSERT INTO container (name, put_timestamp, delete_timestamp, object_count, \
             bytes_used, deleted) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
             put_timestamp = excluded.put_timestamp, \
             delete_timestamp = excluded.delete_timestamp, \
             object_count = excluded.object_count, bytes_used = excluded.bytes_used, \
             deleted = excluded.deleted WHERE excluded.put_timestamp > container.put_timestamp",
        )
        .bind(&c.name)
        .bind(&c.put_timestamp)
        .bind(&c.delete_timestamp)
        .bind(c.object_count)
        .bind(c.bytes_used)
        .bind(c.deleted)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, size: i64) -> ObjectRow {
        ObjectRow {
            name: name.into(),
            created_at: Timestamp::now().normal(),
            size,
            content_type: "text/plain".into(),
            etag: "e".into(),
        }
    }

    fn names(entries: &[Entry<ObjectRow>]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Item(n, _) => n.clone(),
                Entry::Subdir(s) => format!("subdir:{s}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn replicas_merge_to_the_same_digest_newest_row_winning() {
        let dev = tempfile::tempdir().unwrap();
        let dbs = Databases::default();
        let open = |hash: &str| db_path(dev.path(), Kind::Container, 1, hash);
        let a = dbs
            .open(&open("aaa"), Kind::Container, true)
            .await
            .unwrap()
            .unwrap();
        let b = dbs
            .open(&open("bbb"), Kind::Container, true)
            .await
            .unwrap()
            .unwrap();
        let ts = Timestamp::now();
        put_stat(&a, ts, &Metadata::new()).await.unwrap();
        put_stat(&b, ts, &Metadata::new()).await.unwrap();
        // `a` saw two objects; `b` (down meanwhile) only an older version of one of them.
        let old = row("x", 1);
        container_put_object(&b, &old, false).await.unwrap();
        container_put_object(&a, &row("x", 2), false).await.unwrap();
        container_put_object(&a, &row("y", 3), false).await.unwrap();
        container_put_object(&a, &row("y", 0), true).await.unwrap();
        let ra = replica_export(&a, Kind::Container).await.unwrap().unwrap();
        let rb = replica_export(&b, Kind::Container).await.unwrap().unwrap();
        assert_ne!(replica_digest(&ra), replica_digest(&rb));
        replica_merge(&b, &ra).await.unwrap();
        // Merging the older replica back changes nothing.
        replica_merge(&a, &rb).await.unwrap();
        let ra = replica_export(&a, Kind::Container).await.unwrap().unwrap();
        let rb = replica_export(&b, Kind::Container).await.unwrap().unwrap();
        assert_eq!(replica_digest(&ra), replica_digest(&rb));
        let stat = get_stat(&b, Kind::Container).await.unwrap().unwrap();
        assert_eq!(
            (stat.object_count, stat.bytes_used),
            (1, 2),
            "x at size 2; y deleted"
        );
    }

    #[tokio::test]
    async fn container_totals_match_a_recount_through_overwrites_and_deletes() {
        let dev = tempfile::tempdir().unwrap();
        let path = db_path(dev.path(), Kind::Container, 1, "0123456789abcdef");
        // A database written before the totals table existed: opening it fills the totals.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        {
            let old = SqlitePool::connect_with(
                SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
                    .unwrap()
                    .create_if_missing(true),
            )
            .await
            .unwrap();
            sqlx::raw_sql(
                "CREATE TABLE object (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, \
                 size INTEGER NOT NULL, content_type TEXT NOT NULL, etag TEXT NOT NULL, \
                 deleted INTEGER NOT NULL); \
                 INSERT INTO object VALUES ('a', '1', 5, 't', 'e', 0), ('b', '1', 7, 't', 'e', 1);",
            )
            .execute(&old)
            .await
            .unwrap();
            old.close().await;
        }
        let dbs = Databases::default();
        let pool = dbs
            .open(&path, Kind::Container, true)
            .await
            .unwrap()
            .unwrap();
        put_stat(&pool, Timestamp::now(), &Metadata::new())
            .await
            .unwrap();
        let totals = |pool: SqlitePool| async move {
            let s = get_stat(&pool, Kind::Container).await.unwrap().unwrap();
            let recount: (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM object WHERE deleted = 0",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!((s.object_count, s.bytes_used), recount);
            recount
        };
        assert_eq!(totals(pool.clone()).await, (1, 5));
        for (name, size, deleted) in [
            ("b", 3, false), // revives a deleted row
            ("c", 10, false),
            ("c", 4, false), // overwrite: the new size counts
            ("a", 0, true),
            ("a", 0, true), // a second tombstone changes nothing
            ("d", 0, true), // a tombstone for a name never stored
        ] {
            container_put_object(&pool, &row(name, size), deleted)
                .await
                .unwrap();
            totals(pool.clone()).await;
        }
        assert_eq!(totals(pool.clone()).await, (2, 7));
        // An older update loses, and leaves the totals alone.
        let mut stale = row("c", 1000);
        stale.created_at = "0000000001.00000".into();
        container_put_object(&pool, &stale, false).await.unwrap();
        assert_eq!(totals(pool).await, (2, 7));
    }

    #[tokio::test]
    async fn rows_written_together_keep_each_rows_rule_and_the_totals() {
        let dev = tempfile::tempdir().unwrap();
        let dbs = Databases::default();
        let path = db_path(
            dev.path(),
            Kind::Container,
            2,
            "00000000000000000000000000000ccc",
        );
        let pool = dbs
            .open(&path, Kind::Container, true)
            .await
            .unwrap()
            .unwrap();
        put_stat(&pool, Timestamp::now(), &Metadata::new())
            .await
            .unwrap();
        let at = |name: &str, size: i64, ts: u64| ObjectRow {
            created_at: Timestamp(ts).normal(),
            ..row(name, size)
        };
        // Many requests at once, names repeated with older and newer timestamps in any
        // order, deletions among them: each name ends as its newest row says.
        let mut updates = Vec::new();
        for i in 0..300u64 {
            let name = format!("o{}", i % 40);
            updates.push((at(&name, i as i64, 100_000 + i), i % 7 == 3));
        }
        updates.reverse();
        let results = futures::future::join_all(
            updates
                .iter()
                .map(|(r, deleted)| dbs.container_put_object(&path, &pool, r.clone(), *deleted)),
        )
        .await;
        assert!(results.iter().all(Result::is_ok));
        let mut want: HashMap<String, (i64, bool)> = HashMap::new();
        for i in 0..300u64 {
            want.insert(format!("o{}", i % 40), (i as i64, i % 7 == 3));
        }
        let live: Vec<_> = want.values().filter(|(_, d)| !d).collect();
        let stat = get_stat(&pool, Kind::Container).await.unwrap().unwrap();
        assert_eq!(stat.object_count, live.len() as i64);
        assert_eq!(stat.bytes_used, live.iter().map(|(s, _)| s).sum::<i64>());
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT name, size, deleted FROM object ORDER BY name")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(rows.len(), 40);
        for (name, size, deleted) in rows {
            assert_eq!(want[&name], (size, deleted == 1), "{name}");
        }
        // A stale row sent on its own still loses.
        dbs.container_put_object(&path, &pool, at("o1", 5, 1), false)
            .await
            .unwrap();
        assert_eq!(
            get_stat(&pool, Kind::Container).await.unwrap().unwrap(),
            stat
        );
    }

    #[tokio::test]
    async fn listings_follow_swifts_parameters() {
        let dev = tempfile::tempdir().unwrap();
        let dbs = Databases::default();
        let path = db_path(
            dev.path(),
            Kind::Container,
            3,
            "00000000000000000000000000000abc",
        );
        assert!(
            dbs.open(&path, Kind::Container, false)
                .await
                .unwrap()
                .is_none()
        );
        let pool = dbs
            .open(&path, Kind::Container, true)
            .await
            .unwrap()
            .unwrap();
        assert!(
            put_stat(&pool, Timestamp::now(), &Metadata::new())
                .await
                .unwrap()
        );
        for (n, s) in [("a", 1), ("b/1", 2), ("b/2", 3), ("c", 4), ("d/x/y", 5)] {
            container_put_object(&pool, &row(n, s), false)
                .await
                .unwrap();
        }
        let all = |p: ListParams| {
            let pool = pool.clone();
            async move { names(&list_objects(&pool, &p).await.unwrap()) }
        };
        let base = ListParams {
            limit: 10_000,
            ..Default::default()
        };
        assert_eq!(all(base.clone()).await, ["a", "b/1", "b/2", "c", "d/x/y"]);
        let delim = ListParams {
            delimiter: Some("/".into()),
            ..base.clone()
        };
        assert_eq!(
            all(delim.clone()).await,
            ["a", "subdir:b/", "c", "subdir:d/"]
        );
        let rev = ListParams {
            reverse: true,
            ..delim.clone()
        };
        assert_eq!(all(rev).await, ["subdir:d/", "c", "subdir:b/", "a"]);
        let pre = ListParams {
            prefix: "b/".into(),
            ..base.clone()
        };
        assert_eq!(all(pre).await, ["b/1", "b/2"]);
        let page = ListParams {
            marker: "a".into(),
            end_marker: Some("c".into()),
            limit: 1,
            ..base.clone()
        };
        assert_eq!(all(page).await, ["b/1"]);
        let stat = get_stat(&pool, Kind::Container).await.unwrap().unwrap();
        assert_eq!((stat.object_count, stat.bytes_used), (5, 15));
        // A delete marker hides the row; an older PUT does not bring it back.
        let mut old = row("a", 9);
        old.created_at = Timestamp(1).normal();
        let mut gone = row("a", 0);
        gone.created_at = Timestamp::now().normal();
        container_put_object(&pool, &gone, true).await.unwrap();
        container_put_object(&pool, &old, false).await.unwrap();
        assert_eq!(all(base.clone()).await, ["b/1", "b/2", "c", "d/x/y"]);
        // Names and types that JSON escapes come back as stored, in byte order.
        let odd = ["q\"uote", "back\\slash", "t\tab", "ünï/çødé", "z\u{10FFFF}"];
        for n in odd {
            let mut r = row(n, 1);
            r.content_type = format!("x/{n}");
            container_put_object(&pool, &r, false).await.unwrap();
        }
        let page = list_objects(&pool, &base).await.unwrap();
        let mut want: Vec<&str> = ["b/1", "b/2", "c", "d/x/y"]
            .into_iter()
            .chain(odd)
            .collect();
        want.sort();
        assert_eq!(names(&page), want);
        for e in &page {
            if let Entry::Item(n, r) = e
                && odd.contains(&n.as_str())
            {
                assert_eq!(
                    (&r.name, r.content_type.as_str()),
                    (n, format!("x/{n}").as_str())
                );
            }
        }
        delete_stat(&pool, Timestamp::now()).await.unwrap();
        assert!(get_stat(&pool, Kind::Container).await.unwrap().is_none());
        assert!(
            put_stat(&pool, Timestamp::now(), &Metadata::new())
                .await
                .unwrap()
        );
        dbs.close_all().await;
    }

    #[tokio::test]
    async fn a_database_in_use_survives_the_cache_starting_over() {
        let dev = tempfile::tempdir().unwrap();
        let dbs = Databases::default();
        let path = |i: usize| db_path(dev.path(), Kind::Account, 0, &format!("{i:032x}"));
        let first = dbs
            .open(&path(0), Kind::Account, true)
            .await
            .unwrap()
            .unwrap();
        for i in 1..=MAX_OPEN + 1 {
            dbs.open(&path(i), Kind::Account, true).await.unwrap();
        }
        assert!(
            put_stat(&first, Timestamp::now(), &Metadata::new())
                .await
                .unwrap()
        );
        dbs.close_all().await;
    }
}
