//! Where saga progress is persisted, so a restart can finish what a crash
//! interrupted.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The identifier a [`SagaLog`] gives a saga execution (an integer, so a SQL
/// log can use an auto-increment key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SagaId(pub i64);

impl std::fmt::Display for SagaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a saga execution stands. `Running` and `Unwinding` are unfinished
/// (see [`crate::recover`]); the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Steps are being run forward.
    Running,
    /// A step failed; completed steps are being undone.
    Unwinding,
    /// Every step ran.
    Succeeded,
    /// A step failed and every step was undone.
    Unwound,
    /// An undo failed; steps `[0, done)` may still have effects. Needs an
    /// operator; recovery leaves it alone.
    Stuck,
}

impl SagaStatus {
    /// The lowercase name stored in a status column (`"running"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Unwinding => "unwinding",
            Self::Succeeded => "succeeded",
            Self::Unwound => "unwound",
            Self::Stuck => "stuck",
        }
    }

    /// Whether the saga still needs recovery (`Running` or `Unwinding`).
    pub fn is_unfinished(self) -> bool {
        matches!(self, Self::Running | Self::Unwinding)
    }
}

impl std::fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SagaStatus {
    type Err = LogError;

    fn from_str(s: &str) -> Result<Self, LogError> {
        match s {
            "running" => Ok(Self::Running),
            "unwinding" => Ok(Self::Unwinding),
            "succeeded" => Ok(Self::Succeeded),
            "unwound" => Ok(Self::Unwound),
            "stuck" => Ok(Self::Stuck),
            other => Err(LogError::new(format!("unknown saga status {other:?}"))),
        }
    }
}

/// One saga execution as a log stores it — one row of a SQL log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaRecord {
    /// The execution.
    pub id: SagaId,
    /// The saga's name ([`crate::Saga::name`]), used to find its definition
    /// on recovery.
    pub name: String,
    /// Where it stands.
    pub status: SagaStatus,
    /// Steps `[0, done)` have (or may have) effects not yet undone. While
    /// `Running` these are the completed steps; while `Unwinding` it also
    /// counts the failed step and goes down as steps are undone.
    pub done: usize,
    /// The state JSON as of the last recorded step.
    pub state: Value,
    /// Why it is unwinding (the step error), or why it is stuck (the undo
    /// error).
    pub error: Option<String>,
}

/// A failure to read or write the saga log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("saga log: {message}")]
pub struct LogError {
    /// What went wrong.
    pub message: String,
}

impl LogError {
    /// A log error with this message.
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }
}

/// Persistent saga progress. Each method updates one [`SagaRecord`]; a SQL
/// implementation is one table with the record's columns, one `INSERT` for
/// [`SagaLog::begin`] and one `UPDATE … WHERE id = ?` for each other write.
///
/// The runner writes, in order: `begin`, `step_done` after each step,
/// then either `finish(Succeeded)` or `unwinding`, `step_undone` after each
/// undo, and `finish(Unwound | Stuck)`.
#[async_trait]
pub trait SagaLog: Send + Sync {
    /// Records a new execution of saga `saga`: status `Running`, `done` 0,
    /// `state` the initial state.
    async fn begin(&self, saga: &str, state: &Value) -> Result<SagaId, LogError>;

    /// Step `index` (named `step`) completed: `done = index + 1`, `state`
    /// as the step left it.
    async fn step_done(
        &self,
        id: SagaId,
        index: usize,
        step: &str,
        state: &Value,
    ) -> Result<(), LogError>;

    /// The saga failed with `error` and starts undoing steps
    /// `[0, undo_from)`: status `Unwinding`, `done = undo_from`, `state` as
    /// the failed step left it, `error`.
    async fn unwinding(
        &self,
        id: SagaId,
        undo_from: usize,
        state: &Value,
        error: &str,
    ) -> Result<(), LogError>;

    /// Step `index` (named `step`) was undone: `done = index`.
    async fn step_undone(&self, id: SagaId, index: usize, step: &str) -> Result<(), LogError>;

    /// The saga reached the final `status` (`Succeeded`, `Unwound` or
    /// `Stuck`); `error`, when given, replaces the record's error.
    async fn finish(
        &self,
        id: SagaId,
        status: SagaStatus,
        error: Option<&str>,
    ) -> Result<(), LogError>;

    /// The `Running` and `Unwinding` executions this process should
    /// recover. With several processes sharing one log, an implementation
    /// must return only sagas no live process is executing (e.g. by an
    /// owner column), or [`crate::recover`] would unwind them under the
    /// running process.
    async fn unfinished(&self) -> Result<Vec<SagaRecord>, LogError>;
}

/// An in-memory [`SagaLog`] (tests, single-process deployments with nothing
/// to recover). Keeps every record, finished or not.
#[derive(Debug, Default)]
pub struct MemoryLog {
    records: Mutex<BTreeMap<SagaId, SagaRecord>>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record, in id order.
    pub fn records(&self) -> Vec<SagaRecord> {
        self.lock().values().cloned().collect()
    }

    /// The record of `id`, if any.
    pub fn get(&self, id: SagaId) -> Option<SagaRecord> {
        self.lock().get(&id).cloned()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<SagaId, SagaRecord>> {
        // Updates below cannot panic half-way, so poisoned data is intact.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, id: SagaId, f: impl FnOnce(&mut SagaRecord)) -> Result<(), LogError> {
        let mut records = self.lock();
        let record = records
            .get_mut(&id)
            .ok_or_else(|| LogError::new(format!("no saga with id {id}")))?;
        f(record);
        Ok(())
    }
}

#[async_trait]
impl SagaLog for MemoryLog {
    async fn begin(&self, saga: &str, state: &Value) -> Result<SagaId, LogError> {
        let mut records = self.lock();
        let id = SagaId(records.keys().next_back().map_or(1, |last| last.0 + 1));
        records.insert(
            id,
            SagaRecord {
                id,
                name: saga.to_owned(),
                status: SagaStatus::Running,
                done: 0,
                state: state.clone(),
                error: None,
            },
        );
        Ok(id)
    }

    async fn step_done(
        &self,
        id: SagaId,
        index: usize,
        _step: &str,
        state: &Value,
    ) -> Result<(), LogError> {
        self.update(id, |record| {
            record.done = index + 1;
            record.state = state.clone();
        })
    }

    async fn unwinding(
        &self,
        id: SagaId,
        undo_from: usize,
        state: &Value,
        error: &str,
    ) -> Result<(), LogError> {
        self.update(id, |record| {
            record.status = SagaStatus::Unwinding;
            record.done = undo_from;
            record.state = state.clone();
            record.error = Some(error.to_owned());
        })
    }

    async fn step_undone(&self, id: SagaId, index: usize, _step: &str) -> Result<(), LogError> {
        self.update(id, |record| record.done = index)
    }

    async fn finish(
        &self,
        id: SagaId,
        status: SagaStatus,
        error: Option<&str>,
    ) -> Result<(), LogError> {
        self.update(id, |record| {
            record.status = status;
            if let Some(error) = error {
                record.error = Some(error.to_owned());
            }
        })
    }

    async fn unfinished(&self) -> Result<Vec<SagaRecord>, LogError> {
        Ok(self
            .lock()
            .values()
            .filter(|record| record.status.is_unfinished())
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_column_text() {
        for status in [
            SagaStatus::Running,
            SagaStatus::Unwinding,
            SagaStatus::Succeeded,
            SagaStatus::Unwound,
            SagaStatus::Stuck,
        ] {
            assert_eq!(status.as_str().parse::<SagaStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).expect("serialize"),
                Value::String(status.as_str().to_owned())
            );
        }
        assert!("done".parse::<SagaStatus>().is_err());
    }

    #[tokio::test]
    async fn memory_log_tracks_a_record() -> Result<(), LogError> {
        let log = MemoryLog::new();
        let id = log.begin("s", &serde_json::json!({})).await?;
        let other = log.begin("s", &Value::Null).await?;
        assert_ne!(id, other);
        log.step_done(id, 0, "a", &serde_json::json!({"a": 1}))
            .await?;
        assert_eq!(log.unfinished().await?.len(), 2);
        log.unwinding(id, 2, &serde_json::json!({"a": 1, "b": 2}), "boom")
            .await?;
        log.step_undone(id, 1, "b").await?;
        log.finish(id, SagaStatus::Unwound, None).await?;
        let record = log.get(id).ok_or_else(|| LogError::new("missing"))?;
        assert_eq!(record.status, SagaStatus::Unwound);
        assert_eq!(record.done, 1);
        assert_eq!(record.error.as_deref(), Some("boom"));
        assert_eq!(log.unfinished().await?.len(), 1);
        assert!(log.step_undone(SagaId(99), 0, "x").await.is_err());
        Ok(())
    }
}
