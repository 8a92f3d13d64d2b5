//! Multi-step operations that undo themselves on failure, in the manner of
//! Omicron's steno but typed and small. A [`Saga`] is an ordered list of
//! [`Step`]s, each with an async, idempotent `run` and `undo`; the runner
//! executes the steps in order, records progress in a [`SagaLog`], and when
//! a step fails undoes that step and every completed one in reverse order,
//! then returns the original error. [`recover`] finishes, at start-up, the
//! sagas a crash left unfinished. [`testing`] holds the helpers that prove a
//! saga unwinds without leaks and that its steps are idempotent.
//!
//! This crate owns the runner, the log contract and the in-memory log; it
//! must not know any service, resource or database (the SQL-backed log lives
//! with the database code and implements [`SagaLog`]).
//!
//! Rules for steps, which the runner relies on:
//! - `run` and `undo` are idempotent: calling either again after it
//!   succeeded changes nothing (recovery and redelivery repeat them);
//! - `run` records what it created in the state JSON *before* it can fail
//!   afterwards, so the state tells `undo` what to remove;
//! - `undo` tolerates a `run` that never happened or only partly happened:
//!   the failed step itself is undone too, since it may have had effects.
//!
//! ```
//! use std::sync::Mutex;
//! use async_trait::async_trait;
//! use ferro_saga::{MemoryLog, Saga, Step, StepError, testing};
//! use serde_json::{Value, json};
//!
//! #[derive(Default)]
//! struct Ports(Mutex<Vec<String>>);
//!
//! struct CreatePort;
//!
//! #[async_trait]
//! impl Step<Ports> for CreatePort {
//!     fn name(&self) -> &'static str { "create_port" }
//!     async fn run(&self, ports: &Ports, state: &mut Value) -> Result<(), StepError> {
//!         if state.get("port_id").is_none() {
//!             let id = format!("port-of-{}", state["server"]);
//!             ports.0.lock().map_err(StepError::new)?.push(id.clone());
//!             state["port_id"] = json!(id);
//!         }
//!         Ok(())
//!     }
//!     async fn undo(&self, ports: &Ports, state: &Value) -> Result<(), StepError> {
//!         if let Some(id) = state.get("port_id").and_then(Value::as_str) {
//!             ports.0.lock().map_err(StepError::new)?.retain(|p| p != id);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let make = || Saga::new("boot_server").step(CreatePort);
//! let ports = Ports::default();
//! let state = make().execute(&ports, &MemoryLog::new(), json!({"server": "s1"})).await?;
//! assert_eq!(state["port_id"], "port-of-\"s1\"");
//!
//! let count = async |p: &Ports| p.0.lock().map(|v| v.len()).unwrap_or(usize::MAX);
//! testing::fail_each_step_in_turn(make, &ports, json!({"server": "s2"}), count).await?;
//! testing::run_each_step_twice(make, &ports, json!({"server": "s3"}), count).await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

mod log;
pub mod testing;

pub use log::{LogError, MemoryLog, SagaId, SagaLog, SagaRecord, SagaStatus};

/// Why a step's `run` or `undo` failed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StepError(Arc<StepErrorInner>);

#[derive(Debug)]
struct StepErrorInner {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StepError {
    /// A step error with this message.
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self(Arc::new(StepErrorInner {
            message: message.to_string(),
            source: None,
        }))
    }

    /// A step error carrying `error` (its message, and the error itself for
    /// [`StepError::downcast_ref`], e.g. to choose an HTTP status).
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(StepErrorInner {
            message: error.to_string(),
            source: Some(Box::new(error)),
        }))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The error given to [`StepError::from_error`], if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.source.as_deref()?.downcast_ref::<E>()
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// The step name used in errors when a saga interrupted by a restart is
/// unwound by [`recover`].
pub const INTERRUPTED: &str = "(interrupted)";

/// Why a saga failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SagaError {
    /// Step `step` failed with `error`; it and every earlier step were
    /// undone.
    #[error("saga {saga}: step {step} failed: {error}; its effects were undone")]
    StepFailed {
        /// The saga's name.
        saga: &'static str,
        /// The failing step's name.
        step: &'static str,
        /// The step's error.
        error: StepError,
    },
    /// Step `step` failed with `error`, and then undoing step `undo_step`
    /// failed with `undo_error`. Unwinding stopped there: `undo_step` and
    /// the steps before it may still have effects, and the saga is logged
    /// as [`SagaStatus::Stuck`].
    #[error(
        "saga {saga}: step {step} failed: {error}; then undoing step {undo_step} failed: \
         {undo_error}; the saga is stuck with effects left behind"
    )]
    UndoFailed {
        /// The saga's name.
        saga: &'static str,
        /// The failing step's name ([`INTERRUPTED`] on recovery).
        step: &'static str,
        /// The step's error.
        error: StepError,
        /// The step whose undo failed.
        undo_step: &'static str,
        /// The undo's error.
        undo_error: StepError,
    },
    /// The saga could not be started: the log refused it. Nothing ran.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl SagaError {
    /// The error of the step that made the saga fail (not for `Log`).
    pub fn step_error(&self) -> Option<&StepError> {
        match self {
            Self::StepFailed { error, .. } | Self::UndoFailed { error, .. } => Some(error),
            Self::Log(_) => None,
        }
    }
}

/// One step of a saga over a context `C` (the service's handles: database,
/// bus, clients). Both methods must be idempotent; see the crate docs.
#[async_trait]
pub trait Step<C: Send + Sync>: Send + Sync {
    /// The step's name, unique within its saga (used in logs and errors).
    fn name(&self) -> &'static str;

    /// Does the step's work, recording what it created in `state` for later
    /// steps and for [`Step::undo`].
    async fn run(&self, ctx: &C, state: &mut Value) -> Result<(), StepError>;

    /// Removes what [`Step::run`] created, as recorded in `state`; succeeds
    /// when there is nothing (left) to remove.
    async fn undo(&self, ctx: &C, state: &Value) -> Result<(), StepError>;
}

/// A named, ordered list of steps.
pub struct Saga<C> {
    name: &'static str,
    resumable: bool,
    steps: Vec<Box<dyn Step<C>>>,
}

impl<C> std::fmt::Debug for Saga<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saga")
            .field("name", &self.name)
            .field("resumable", &self.resumable)
            .field("steps", &self.steps.len())
            .finish()
    }
}

/// What [`recover`] did with one unfinished saga.
#[derive(Debug, Clone)]
pub enum Recovered {
    /// A resumable saga was run to completion; its final state.
    Completed(Value),
    /// The saga's steps were undone.
    Unwound,
}

/// The outcome of recovering one saga.
#[derive(Debug)]
pub struct Recovery {
    /// The execution recovered.
    pub id: SagaId,
    /// Its saga's name.
    pub saga: &'static str,
    /// What happened: a resumed saga that fails later returns its
    /// [`SagaError::StepFailed`]; an undo failure is
    /// [`SagaError::UndoFailed`].
    pub outcome: Result<Recovered, SagaError>,
}

impl<C: Send + Sync> Saga<C> {
    /// An empty saga named `name` (the name is stored in the log and
    /// matched by [`recover`], so keep it stable).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            resumable: false,
            steps: Vec::new(),
        }
    }

    /// Appends a step.
    #[must_use]
    pub fn step(mut self, step: impl Step<C> + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// Marks the saga resumable: [`recover`] runs it forward from the step
    /// that was interrupted instead of unwinding it. Only for sagas whose
    /// steps can be re-run after a partial run.
    #[must_use]
    pub fn resumable(mut self) -> Self {
        self.resumable = true;
        self
    }

    /// The saga's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether [`recover`] resumes rather than unwinds it.
    pub fn is_resumable(&self) -> bool {
        self.resumable
    }

    /// The steps' names, in order.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|step| step.name()).collect()
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the saga has no step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the saga from `initial` state and returns the final state.
    ///
    /// On a step error the failed step and the completed ones are undone in
    /// reverse order and [`SagaError::StepFailed`] is returned; if an undo
    /// fails, unwinding stops and [`SagaError::UndoFailed`] reports both
    /// errors. A log write that fails during the forward run counts as a
    /// failure of the step just run (the log must never record less than
    /// what exists); log writes that fail while unwinding are only traced,
    /// as recovery would repeat the idempotent undos anyway.
    pub async fn execute(
        &self,
        ctx: &C,
        log: &dyn SagaLog,
        initial: Value,
    ) -> Result<Value, SagaError> {
        let id = log.begin(self.name, &initial).await?;
        tracing::debug!(saga = self.name, %id, "saga started");
        self.run_from(ctx, log, id, 0, initial).await
    }

    async fn run_from(
        &self,
        ctx: &C,
        log: &dyn SagaLog,
        id: SagaId,
        start: usize,
        mut state: Value,
    ) -> Result<Value, SagaError> {
        for (index, step) in self.steps.iter().enumerate().skip(start) {
            let outcome = match step.run(ctx, &mut state).await {
                Ok(()) => log
                    .step_done(id, index, step.name(), &state)
                    .await
                    .map_err(StepError::from_error),
                Err(error) => Err(error),
            };
            if let Err(error) = outcome {
                return Err(self
                    .unwind(ctx, log, id, index + 1, &state, step.name(), error)
                    .await);
            }
        }
        if let Err(error) = log.finish(id, SagaStatus::Succeeded, None).await {
            let error = StepError::new(format!("recording the saga's completion failed: {error}"));
            let step = self.steps.last().map_or("(completion)", |step| step.name());
            return Err(self
                .unwind(ctx, log, id, self.steps.len(), &state, step, error)
                .await);
        }
        tracing::debug!(saga = self.name, %id, "saga succeeded");
        Ok(state)
    }

    /// Undoes steps `[0, undo_from)` after `step` failed with `error`.
    #[allow(clippy::too_many_arguments)]
    async fn unwind(
        &self,
        ctx: &C,
        log: &dyn SagaLog,
        id: SagaId,
        undo_from: usize,
        state: &Value,
        step: &'static str,
        error: StepError,
    ) -> SagaError {
        tracing::warn!(saga = self.name, %id, step, %error, "saga step failed, unwinding");
        let reason = format!("step {step} failed: {error}");
        if let Err(log_error) = log.unwinding(id, undo_from, state, &reason).await {
            tracing::warn!(saga = self.name, %id, %log_error, "could not log the unwind");
        }
        match self
            .undo_steps(ctx, Some((log, id)), undo_from, state)
            .await
        {
            Ok(()) => SagaError::StepFailed {
                saga: self.name,
                step,
                error,
            },
            Err((undo_step, undo_error)) => SagaError::UndoFailed {
                saga: self.name,
                step,
                error,
                undo_step,
                undo_error,
            },
        }
    }

    /// Undoes steps `[0, undo_from)` in reverse order, stopping at the first
    /// failing undo; with a log, records each undo and the final status.
    async fn undo_steps(
        &self,
        ctx: &C,
        log: Option<(&dyn SagaLog, SagaId)>,
        undo_from: usize,
        state: &Value,
    ) -> Result<(), (&'static str, StepError)> {
        for (index, step) in self.steps.iter().enumerate().take(undo_from).rev() {
            if let Err(undo_error) = step.undo(ctx, state).await {
                tracing::error!(
                    saga = self.name,
                    step = step.name(),
                    %undo_error,
                    "saga undo failed; the saga is stuck"
                );
                if let Some((log, id)) = log {
                    let detail = format!("undoing step {} failed: {undo_error}", step.name());
                    if let Err(log_error) = log.finish(id, SagaStatus::Stuck, Some(&detail)).await {
                        tracing::warn!(saga = self.name, %id, %log_error, "could not log the stuck saga");
                    }
                }
                return Err((step.name(), undo_error));
            }
            if let Some((log, id)) = log
                && let Err(log_error) = log.step_undone(id, index, step.name()).await
            {
                tracing::warn!(saga = self.name, %id, %log_error, "could not log an undo");
            }
        }
        if let Some((log, id)) = log
            && let Err(log_error) = log.finish(id, SagaStatus::Unwound, None).await
        {
            tracing::warn!(saga = self.name, %id, %log_error, "could not log the unwound saga");
        }
        Ok(())
    }

    /// Finishes one unfinished execution found in the log.
    async fn recover_one(
        &self,
        ctx: &C,
        log: &dyn SagaLog,
        record: SagaRecord,
    ) -> Result<Recovered, SagaError> {
        let steps = self.steps.len();
        if record.done > steps {
            tracing::warn!(
                saga = self.name,
                id = %record.id,
                done = record.done,
                steps,
                "saga log records more steps than the saga has"
            );
        }
        let done = record.done.min(steps);
        let (undo_from, reason) = match record.status {
            SagaStatus::Running if self.resumable => {
                tracing::info!(saga = self.name, id = %record.id, from = done, "resuming saga");
                return self
                    .run_from(ctx, log, record.id, done, record.state)
                    .await
                    .map(Recovered::Completed);
            }
            SagaStatus::Running => {
                // Step `done` may have been cut short mid-run: undo it too.
                let interrupted = self.steps.get(done).map_or("(completion)", |s| s.name());
                let reason = format!("interrupted by a restart during step {interrupted}");
                if let Err(log_error) = log
                    .unwinding(record.id, (done + 1).min(steps), &record.state, &reason)
                    .await
                {
                    tracing::warn!(saga = self.name, id = %record.id, %log_error, "could not log the unwind");
                }
                ((done + 1).min(steps), reason)
            }
            _ => (
                done,
                record
                    .error
                    .unwrap_or_else(|| "interrupted by a restart while unwinding".to_owned()),
            ),
        };
        tracing::info!(saga = self.name, id = %record.id, undo_from, %reason, "unwinding saga");
        match self
            .undo_steps(ctx, Some((log, record.id)), undo_from, &record.state)
            .await
        {
            Ok(()) => Ok(Recovered::Unwound),
            Err((undo_step, undo_error)) => Err(SagaError::UndoFailed {
                saga: self.name,
                step: INTERRUPTED,
                error: StepError::new(reason),
                undo_step,
                undo_error,
            }),
        }
    }

    /// Rebuilds the saga with each step passed through `wrap` (testing).
    pub(crate) fn map_steps(
        self,
        mut wrap: impl FnMut(usize, Box<dyn Step<C>>) -> Box<dyn Step<C>>,
    ) -> Self {
        Self {
            name: self.name,
            resumable: self.resumable,
            steps: self
                .steps
                .into_iter()
                .enumerate()
                .map(|(index, step)| wrap(index, step))
                .collect(),
        }
    }

    /// Undoes every step of a completed run, without a log (testing).
    pub(crate) async fn undo_all(
        &self,
        ctx: &C,
        state: &Value,
    ) -> Result<(), (&'static str, StepError)> {
        self.undo_steps(ctx, None, self.steps.len(), state).await
    }
}

/// Finishes, at start-up, the sagas a crash left unfinished in `log`.
///
/// Policy, per unfinished execution whose name matches one of `sagas`:
/// - `Running` and [`Saga::resumable`]: run forward from the first step not
///   recorded as done (that step may have partly run before);
/// - `Running` otherwise: unwind — undo the steps recorded as done and the
///   step that was in progress (undo tolerates a step that never ran);
/// - `Unwinding`: finish undoing the steps not yet recorded as undone.
///
/// Executions of sagas not in `sagas` are left untouched (another caller,
/// with another context type, may own them). Each execution's outcome is
/// reported; only failing to read the log is an error.
pub async fn recover<C: Send + Sync>(
    ctx: &C,
    log: &dyn SagaLog,
    sagas: &[&Saga<C>],
) -> Result<Vec<Recovery>, LogError> {
    let mut report = Vec::new();
    for record in log.unfinished().await? {
        let Some(saga) = sagas.iter().find(|saga| saga.name == record.name) else {
            tracing::debug!(saga = %record.name, id = %record.id, "not ours to recover");
            continue;
        };
        let id = record.id;
        let outcome = saga.recover_one(ctx, log, record).await;
        report.push(Recovery {
            id,
            saga: saga.name,
            outcome,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
