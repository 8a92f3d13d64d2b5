//! Each service's schema migrations, applied in order and recorded.
//!
//! A migration is written once as SQL with portable type names that are rendered per
//! engine, so the three schemas cannot drift apart (whole-line `--` comments only; a `;`
//! ends a statement):
//! `{id}` an indexed id (64 characters), `{name}` an indexed name (255), `{text}` unbounded
//! text, `{bigint}`, `{bool}`. The widths keep MariaDB's composite keys under its 3072-byte
//! limit in utf8mb4.

use crate::{Db, DbError, Engine, Sql};

/// One schema step of a service. `version` increases; a recorded migration's SQL must
/// never change (its checksum is compared at every start).
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

#[derive(sqlx::FromRow)]
struct Applied {
    version: i64,
    checksum: String,
}

/// The migration's SQL for `engine`.
pub fn render(sql: &str, engine: Engine) -> String {
    let (id, name, text, bigint, boolean) = match engine {
        Engine::Sqlite => ("TEXT", "TEXT", "TEXT", "INTEGER", "BOOLEAN"),
        Engine::Postgres => ("VARCHAR(64)", "VARCHAR(255)", "TEXT", "BIGINT", "BOOLEAN"),
        Engine::MySql => (
            "VARCHAR(64)",
            "VARCHAR(255)",
            "LONGTEXT",
            "BIGINT",
            "BOOLEAN",
        ),
    };
    sql.replace("{id}", id)
        .replace("{name}", name)
        .replace("{text}", text)
        .replace("{bigint}", bigint)
        .replace("{bool}", boolean)
}

fn checksum(sql: &str) -> String {
    // FNV-1a: enough to notice an edited migration; not a security boundary.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Applies `service`'s migrations that are not yet recorded, each in its own transaction,
/// and refuses to start when a recorded one was edited.
// TODO-correctness: two processes migrating at once should take an engine lock
// (pg_advisory_lock / GET_LOCK); today the primary key on the record makes the loser fail.
pub async fn migrate(db: &Db, service: &str, migrations: &[Migration]) -> Result<(), DbError> {
    let create = render(
        "CREATE TABLE IF NOT EXISTS ferro_migrations (service {id} NOT NULL, version {bigint} NOT NULL, \
         name {text} NOT NULL, checksum {id} NOT NULL, applied_at {bigint} NOT NULL, PRIMARY KEY (service, version))",
        db.engine(),
    );
    db.execute(&Sql::new(&create)).await?;
    let applied: Vec<Applied> = db
        .fetch_all(
            &Sql::new("SELECT version, checksum FROM ferro_migrations WHERE service = ?")
                .arg(service),
        )
        .await?;
    for m in migrations {
        let text = render(m.sql, db.engine());
        let sum = checksum(m.sql);
        if let Some(a) = applied.iter().find(|a| a.version == m.version) {
            if a.checksum != sum {
                return Err(DbError::MigrationChanged {
                    service: service.to_string(),
                    version: m.version,
                });
            }
            continue;
        }
        tracing::info!(
            service,
            version = m.version,
            name = m.name,
            "applying migration"
        );
        let mut tx = db.begin().await?;
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for stmt in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            tx.execute(&Sql::new(stmt)).await?;
        }
        tx.execute(
            &Sql::new("INSERT INTO ferro_migrations (service, version, name, checksum, applied_at) VALUES (?, ?, ?, ?, ?)")
                .arg(service)
                .arg(m.version)
                .arg(m.name)
                .arg(sum)
                .arg(ferro_common::time::now_micros()),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
