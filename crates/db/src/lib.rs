//! One database layer for three engines: SQLite (the embedded default), PostgreSQL and
//! MariaDB/MySQL, chosen by the URL (`sqlite://`, `postgres://`, `mysql://`).
//!
//! Services write SQL once with `?` placeholders through [`Sql`]; this crate renders the
//! placeholders per engine, binds the values, decodes rows into `sqlx::FromRow` records,
//! runs transactions and applies each service's migrations. It holds no service's
//! schema and no business rule. Departure from ARCHITECTURE.md (sea-query): the services'
//! queries are simple enough that a 100-line builder is clearer than a DSL, and it keeps one
//! SQL text per query across the three engines.

mod migrate;
mod sql;

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{AssertSqlSafe, FromRow};

pub use migrate::{Migration, migrate};
pub use sql::{Kind, Sql, Value, int_sum};

/// Errors of the database layer. Services turn them into `ferro_common::Error`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database URL {0:?} names no supported engine (sqlite://, postgres://, mysql://)")]
    UnsupportedUrl(String),
    /// A unique constraint refused the write: the caller answers 409.
    #[error("duplicate entry: {0}")]
    Duplicate(String),
    #[error("migration {service}/{version} was changed after it was applied")]
    MigrationChanged { service: String, version: i64 },
    #[error("database error: {0}")]
    Sqlx(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e
            && d.is_unique_violation()
        {
            return DbError::Duplicate(d.message().to_string());
        }
        DbError::Sqlx(e)
    }
}

impl From<DbError> for ferro_common::Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Duplicate(m) => ferro_common::Error::Conflict(m),
            other => ferro_common::Error::internal(other),
        }
    }
}

/// Which SQL dialect a statement is rendered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    MySql,
}

/// A record type that decodes from a row of each engine. Derive `sqlx::FromRow` on a
/// struct whose fields are `String`, `i64`, `bool` and `Option`s of them.
pub trait Record:
    for<'r> FromRow<'r, SqliteRow>
    + for<'r> FromRow<'r, PgRow>
    + for<'r> FromRow<'r, MySqlRow>
    + Send
    + Unpin
    + 'static
{
}
impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow>
        + for<'r> FromRow<'r, PgRow>
        + for<'r> FromRow<'r, MySqlRow>
        + Send
        + Unpin
        + 'static
{
}

/// A connection pool on one of the three engines.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
}

/// Runs `$body` with `$q` bound to the engine-specific query built from `$sql`.
macro_rules! with_query {
    ($engine:expr, $sql:expr, |$q:ident| $body:expr) => {{
        let text = $sql.render($engine);
        let $q = $sql.bind_all(sqlx::query(AssertSqlSafe(text)));
        $body
    }};
}

macro_rules! with_query_as {
    ($engine:expr, $sql:expr, $t:ty, |$q:ident| $body:expr) => {{
        let text = $sql.render($engine);
        let $q = $sql.bind_all_as(sqlx::query_as::<_, $t>(AssertSqlSafe(text)));
        $body
    }};
}

/// Implements the query methods on a type whose variants hold an executor.
macro_rules! executor_methods {
    ($ty:ident, |$this:ident, $ex:ident| $get:expr) => {
        impl $ty {
            /// Every row of `sql`, decoded as `T`.
            pub async fn fetch_all<T: Record>(&mut self, sql: &Sql) -> Result<Vec<T>, DbError> {
                let $this = self;
                Ok(match $this {
                    $ty::Sqlite($ex) => {
                        with_query_as!(Engine::Sqlite, sql, T, |q| q.fetch_all($get).await?)
                    }
                    $ty::Postgres($ex) => {
                        with_query_as!(Engine::Postgres, sql, T, |q| q.fetch_all($get).await?)
                    }
                    $ty::MySql($ex) => {
                        with_query_as!(Engine::MySql, sql, T, |q| q.fetch_all($get).await?)
                    }
                })
            }

            /// The first row of `sql`, if any.
            pub async fn fetch_optional<T: Record>(
                &mut self,
                sql: &Sql,
            ) -> Result<Option<T>, DbError> {
                let $this = self;
                Ok(match $this {
                    $ty::Sqlite($ex) => {
                        with_query_as!(Engine::Sqlite, sql, T, |q| q.fetch_optional($get).await?)
                    }
                    $ty::Postgres($ex) => {
                        with_query_as!(Engine::Postgres, sql, T, |q| q.fetch_optional($get).await?)
                    }
                    $ty::MySql($ex) => {
                        with_query_as!(Engine::MySql, sql, T, |q| q.fetch_optional($get).await?)
                    }
                })
            }

            /// Runs a statement; returns the number of rows it affected.
            pub async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
                let $this = self;
                Ok(match $this {
                    $ty::Sqlite($ex) => with_query!(Engine::Sqlite, sql, |q| q
                        .execute($get)
                        .await?
                        .rows_affected()),
                    $ty::Postgres($ex) => with_query!(Engine::Postgres, sql, |q| q
                        .execute($get)
                        .await?
                        .rows_affected()),
                    $ty::MySql($ex) => with_query!(Engine::MySql, sql, |q| q
                        .execute($get)
                        .await?
                        .rows_affected()),
                })
            }
        }
    };
}

executor_methods!(Tx, |this, tx| &mut **tx);

/// Something statements run on: a pool (`&Db`, each statement on its own connection) or an
/// open transaction (`Tx`). Query functions take `&mut impl Executor` so one function
/// serves reads outside and inside a transaction.
#[allow(async_fn_in_trait)]
pub trait Executor {
    async fn fetch_all<T: Record>(&mut self, sql: &Sql) -> Result<Vec<T>, DbError>;
    async fn fetch_optional<T: Record>(&mut self, sql: &Sql) -> Result<Option<T>, DbError>;
    async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError>;
    /// The engine the statements run on.
    fn engine(&self) -> Engine;
}

impl Executor for Tx {
    async fn fetch_all<T: Record>(&mut self, sql: &Sql) -> Result<Vec<T>, DbError> {
        Tx::fetch_all(self, sql).await
    }
    async fn fetch_optional<T: Record>(&mut self, sql: &Sql) -> Result<Option<T>, DbError> {
        Tx::fetch_optional(self, sql).await
    }
    async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        Tx::execute(self, sql).await
    }
    fn engine(&self) -> Engine {
        Tx::engine(self)
    }
}

impl Executor for &Db {
    async fn fetch_all<T: Record>(&mut self, sql: &Sql) -> Result<Vec<T>, DbError> {
        PoolExec(self).fetch_all(sql).await
    }
    async fn fetch_optional<T: Record>(&mut self, sql: &Sql) -> Result<Option<T>, DbError> {
        PoolExec(self).fetch_optional(sql).await
    }
    async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        PoolExec(self).execute(sql).await
    }
    fn engine(&self) -> Engine {
        Db::engine(self)
    }
}

/// A `Db` used as an executor: each statement on its own pooled connection.
pub struct PoolExec<'a>(&'a Db);

impl Db {
    /// Connects to `url`, creating an SQLite file if missing (WAL, busy timeout).
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .connect(url)
                    .await?,
            ))
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let url = url.replacen("mariadb:", "mysql:", 1);
            Ok(Db::MySql(
                MySqlPoolOptions::new()
                    .max_connections(16)
                    .connect(&url)
                    .await?,
            ))
        } else {
            Err(DbError::UnsupportedUrl(url.to_string()))
        }
    }

    /// The engine behind this pool.
    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
            Db::MySql(_) => Engine::MySql,
        }
    }

    /// Begins a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so two writers queue on the busy timeout instead of failing on lock upgrade.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
            Db::MySql(p) => Tx::MySql(p.begin().await?),
        })
    }

    /// Every row of `sql`, outside any transaction.
    pub async fn fetch_all<T: Record>(&self, sql: &Sql) -> Result<Vec<T>, DbError> {
        PoolExec(self).fetch_all(sql).await
    }

    /// The first row of `sql`, outside any transaction.
    pub async fn fetch_optional<T: Record>(&self, sql: &Sql) -> Result<Option<T>, DbError> {
        PoolExec(self).fetch_optional(sql).await
    }

    /// Runs one statement in its own implicit transaction.
    pub async fn execute(&self, sql: &Sql) -> Result<u64, DbError> {
        PoolExec(self).execute(sql).await
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
            Db::MySql(p) => p.close().await,
        }
    }
}

impl PoolExec<'_> {
    async fn fetch_all<T: Record>(&self, sql: &Sql) -> Result<Vec<T>, DbError> {
        Ok(match self.0 {
            Db::Sqlite(p) => with_query_as!(Engine::Sqlite, sql, T, |q| q.fetch_all(p).await?),
            Db::Postgres(p) => with_query_as!(Engine::Postgres, sql, T, |q| q.fetch_all(p).await?),
            Db::MySql(p) => with_query_as!(Engine::MySql, sql, T, |q| q.fetch_all(p).await?),
        })
    }

    async fn fetch_optional<T: Record>(&self, sql: &Sql) -> Result<Option<T>, DbError> {
        Ok(match self.0 {
            Db::Sqlite(p) => {
                with_query_as!(Engine::Sqlite, sql, T, |q| q.fetch_optional(p).await?)
            }
            Db::Postgres(p) => {
                with_query_as!(Engine::Postgres, sql, T, |q| q.fetch_optional(p).await?)
            }
            Db::MySql(p) => with_query_as!(Engine::MySql, sql, T, |q| q.fetch_optional(p).await?),
        })
    }

    async fn execute(&self, sql: &Sql) -> Result<u64, DbError> {
        Ok(match self.0 {
            Db::Sqlite(p) => {
                with_query!(Engine::Sqlite, sql, |q| q.execute(p).await?.rows_affected())
            }
            Db::Postgres(p) => with_query!(Engine::Postgres, sql, |q| q
                .execute(p)
                .await?
                .rows_affected()),
            Db::MySql(p) => {
                with_query!(Engine::MySql, sql, |q| q.execute(p).await?.rows_affected())
            }
        })
    }
}

impl Tx {
    /// Makes the transaction's writes durable.
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
            Tx::MySql(t) => t.commit().await?,
        }
        Ok(())
    }

    /// The engine this transaction runs on.
    pub fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
            Tx::MySql(_) => Engine::MySql,
        }
    }
}
