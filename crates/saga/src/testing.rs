//! Test helpers every saga's tests should call, after Omicron's
//! `action_failure_can_unwind` and `actions_succeed_idempotently`.
//!
//! Both take `make_saga` (a fresh saga each time: the helpers wrap its
//! steps), the context, the initial state, and `observe`, an async function
//! returning what the saga changes in the world as a comparable value — e.g.
//! the sorted names of the ports and volumes that exist, or just their
//! count. Generated ids belong out of it: two runs need not produce the same
//! ids. The helpers return `Err` describing each violation, so a test can
//! assert that a saga passes (`helper(..).await?`) or that a buggy one is
//! caught.

use std::fmt::Debug;

use async_trait::async_trait;
use serde_json::Value;

use crate::{MemoryLog, Saga, SagaError, SagaLog, SagaStatus, Step, StepError};

/// The message of the errors the helpers inject.
pub const INJECTED: &str = "injected failure (saga test)";

/// Where [`fail_each_step_in_turn`] makes a step fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// The step fails without running.
    BeforeRun,
    /// The step runs, then fails: its own undo must clean up after it.
    AfterRun,
}

struct Inject<C> {
    inner: Box<dyn Step<C>>,
    when: Injection,
}

#[async_trait]
impl<C: Send + Sync> Step<C> for Inject<C> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn run(&self, ctx: &C, state: &mut Value) -> Result<(), StepError> {
        if self.when == Injection::AfterRun {
            self.inner.run(ctx, state).await?;
        }
        Err(StepError::new(INJECTED))
    }

    async fn undo(&self, ctx: &C, state: &Value) -> Result<(), StepError> {
        self.inner.undo(ctx, state).await
    }
}

struct Twice<C> {
    inner: Box<dyn Step<C>>,
}

#[async_trait]
impl<C: Send + Sync> Step<C> for Twice<C> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn run(&self, ctx: &C, state: &mut Value) -> Result<(), StepError> {
        self.inner.run(ctx, state).await?;
        self.inner.run(ctx, state).await
    }

    async fn undo(&self, ctx: &C, state: &Value) -> Result<(), StepError> {
        self.inner.undo(ctx, state).await?;
        self.inner.undo(ctx, state).await
    }
}

/// For every step `i` and both [`Injection`]s, runs the saga with step `i`
/// failing and checks that the saga returns [`SagaError::StepFailed`] for
/// step `i` with the injected error, that the log records it as unwound,
/// and that `observe` sees the world as it was before the run (nothing
/// leaked). `Err` lists every violation.
pub async fn fail_each_step_in_turn<C, S>(
    make_saga: impl Fn() -> Saga<C>,
    ctx: &C,
    initial: Value,
    observe: impl AsyncFn(&C) -> S,
) -> Result<(), String>
where
    C: Send + Sync + 'static,
    S: PartialEq + Debug,
{
    let mut problems = Vec::new();
    let steps = make_saga().len();
    for failing in 0..steps {
        for when in [Injection::BeforeRun, Injection::AfterRun] {
            let saga = make_saga().map_steps(|index, inner| {
                if index == failing {
                    Box::new(Inject { inner, when })
                } else {
                    inner
                }
            });
            let name = saga.step_names().get(failing).copied().unwrap_or("?");
            let case = format!(
                "saga {}, failure {when:?} of step {failing} ({name})",
                saga.name()
            );
            let log = MemoryLog::new();
            let before = observe(ctx).await;
            let result = saga.execute(ctx, &log, initial.clone()).await;
            match &result {
                Err(SagaError::StepFailed { step, error, .. })
                    if *step == name && error.message() == INJECTED => {}
                other => problems.push(format!(
                    "{case}: expected StepFailed for {name} with the injected error, got {other:?}"
                )),
            }
            let after = observe(ctx).await;
            if after != before {
                problems.push(format!(
                    "{case}: leaked: before the saga {before:?}, after unwinding {after:?}"
                ));
            }
            let statuses: Vec<SagaStatus> =
                log.records().iter().map(|record| record.status).collect();
            if statuses != [SagaStatus::Unwound] {
                problems.push(format!(
                    "{case}: expected the log to hold one unwound saga, got {statuses:?}"
                ));
            }
            if let Ok(unfinished) = log.unfinished().await
                && !unfinished.is_empty()
            {
                problems.push(format!("{case}: log still has unfinished sagas"));
            }
        }
    }
    report(problems)
}

/// Checks idempotence: runs the saga normally, observes the world, and
/// undoes every step; then runs it with each step's `run` called twice in a
/// row, requires the same observation as the normal run, and undoes every
/// step with each `undo` called twice, requiring the world as before. `Err`
/// lists every violation.
pub async fn run_each_step_twice<C, S>(
    make_saga: impl Fn() -> Saga<C>,
    ctx: &C,
    initial: Value,
    observe: impl AsyncFn(&C) -> S,
) -> Result<(), String>
where
    C: Send + Sync + 'static,
    S: PartialEq + Debug,
{
    let mut problems = Vec::new();
    let before = observe(ctx).await;

    let once = make_saga();
    let name = once.name();
    let once_result = match once.execute(ctx, &MemoryLog::new(), initial.clone()).await {
        Ok(state) => {
            let observed = observe(ctx).await;
            if let Err((step, error)) = once.undo_all(ctx, &state).await {
                problems.push(format!(
                    "saga {name}: undoing step {step} after a normal run failed: {error}"
                ));
            }
            let after = observe(ctx).await;
            if after != before {
                problems.push(format!(
                    "saga {name}: undoing a normal run leaked: before {before:?}, after {after:?}"
                ));
            }
            Some(observed)
        }
        Err(error) => {
            problems.push(format!("saga {name}: a normal run failed: {error}"));
            None
        }
    };

    let twice = make_saga().map_steps(|_, inner| Box::new(Twice { inner }));
    match twice.execute(ctx, &MemoryLog::new(), initial).await {
        Ok(state) => {
            let observed = observe(ctx).await;
            if let Some(once_observed) = once_result
                && observed != once_observed
            {
                problems.push(format!(
                    "saga {name}: running each step twice differs from running it once: \
                     once {once_observed:?}, twice {observed:?}"
                ));
            }
            if let Err((step, error)) = twice.undo_all(ctx, &state).await {
                problems.push(format!(
                    "saga {name}: undoing step {step} twice failed: {error}"
                ));
            }
            let after = observe(ctx).await;
            if after != before {
                problems.push(format!(
                    "saga {name}: undoing each step twice leaked: before {before:?}, after {after:?}"
                ));
            }
        }
        Err(error) => problems.push(format!(
            "saga {name}: running each step twice failed: {error}"
        )),
    }
    report(problems)
}

fn report(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
