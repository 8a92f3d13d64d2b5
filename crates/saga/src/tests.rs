//! Runner, recovery and helper tests over a toy context.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::*;
use crate::testing::{fail_each_step_in_turn, run_each_step_twice};

/// The toy world: things that exist, and a journal of step calls.
#[derive(Default)]
struct Toy {
    things: Mutex<Vec<String>>,
    journal: Mutex<Vec<String>>,
}

impl Toy {
    fn things(&self) -> MutexGuard<'_, Vec<String>> {
        self.things.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, entry: String) {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }

    fn journal(&self) -> Vec<String> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn observe(toy: &Toy) -> Vec<String> {
    let mut things = toy.things().clone();
    things.sort();
    things
}

#[derive(Clone, Copy, PartialEq)]
enum Bug {
    None,
    /// `undo` forgets to remove the thing.
    LeakyUndo,
    /// `run` ignores the state and creates a new thing every time.
    RepeatedRun,
    /// `undo` fails when the thing is already gone.
    StrictUndo,
    /// `run` creates the thing, then fails before recording it.
    RecordsLate,
}

/// Creates the thing `key` (named `<prefix>-<key>`), recording it in the
/// state under `key`.
struct Create {
    key: &'static str,
    bug: Bug,
}

fn create(key: &'static str) -> Create {
    Create {
        key,
        bug: Bug::None,
    }
}

#[async_trait]
impl Step<Toy> for Create {
    fn name(&self) -> &'static str {
        self.key
    }

    async fn run(&self, toy: &Toy, state: &mut Value) -> Result<(), StepError> {
        toy.note(format!("run {}", self.key));
        if self.bug != Bug::RepeatedRun && state.get(self.key).is_some() {
            return Ok(());
        }
        let prefix = state["prefix"].as_str().unwrap_or("x").to_owned();
        let mut things = toy.things();
        let name = if self.bug == Bug::RepeatedRun {
            format!("{prefix}-{}-{}", self.key, things.len())
        } else {
            format!("{prefix}-{}", self.key)
        };
        things.push(name.clone());
        drop(things);
        if self.bug == Bug::RecordsLate {
            return Err(StepError::new("lost track"));
        }
        state[self.key] = json!(name);
        Ok(())
    }

    async fn undo(&self, toy: &Toy, state: &Value) -> Result<(), StepError> {
        toy.note(format!("undo {}", self.key));
        if self.bug == Bug::LeakyUndo {
            return Ok(());
        }
        let Some(name) = state.get(self.key).and_then(Value::as_str) else {
            return Ok(());
        };
        let mut things = toy.things();
        match things.iter().position(|thing| thing == name) {
            Some(index) => {
                things.remove(index);
                Ok(())
            }
            None if self.bug == Bug::StrictUndo => Err(StepError::new(format!("{name} not found"))),
            None => Ok(()),
        }
    }
}

/// A step that always fails, and whose undo may fail too.
struct Fail {
    undo_fails: bool,
}

#[async_trait]
impl Step<Toy> for Fail {
    fn name(&self) -> &'static str {
        "fail"
    }

    async fn run(&self, toy: &Toy, _state: &mut Value) -> Result<(), StepError> {
        toy.note("run fail".to_owned());
        Err(StepError::new("no capacity"))
    }

    async fn undo(&self, toy: &Toy, _state: &Value) -> Result<(), StepError> {
        toy.note("undo fail".to_owned());
        if self.undo_fails {
            Err(StepError::new("undo broke"))
        } else {
            Ok(())
        }
    }
}

fn good_saga() -> Saga<Toy> {
    Saga::new("build")
        .step(create("network"))
        .step(create("port"))
        .step(create("volume"))
}

fn saga_with(bug_at: usize, bug: Bug) -> Saga<Toy> {
    let mut saga = Saga::new("buggy");
    for (index, key) in ["network", "port", "volume"].into_iter().enumerate() {
        let bug = if index == bug_at { bug } else { Bug::None };
        saga = saga.step(Create { key, bug });
    }
    saga
}

fn initial() -> Value {
    json!({"prefix": "vm1"})
}

#[tokio::test]
async fn success_runs_steps_in_order_and_logs_success() -> Result<(), SagaError> {
    let toy = Toy::default();
    let log = MemoryLog::new();
    let state = good_saga().execute(&toy, &log, initial()).await?;
    assert_eq!(state["port"], json!("vm1-port"));
    assert_eq!(*toy.things(), ["vm1-network", "vm1-port", "vm1-volume"]);
    assert_eq!(toy.journal(), ["run network", "run port", "run volume"]);
    let records = log.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "build");
    assert_eq!(records[0].status, SagaStatus::Succeeded);
    assert_eq!(records[0].done, 3);
    assert_eq!(records[0].state, state);
    Ok(())
}

#[tokio::test]
async fn failure_undoes_failed_and_completed_steps_in_reverse() {
    let toy = Toy::default();
    let log = MemoryLog::new();
    let saga = good_saga()
        .step(Fail { undo_fails: false })
        .step(create("never"));
    let err = saga
        .execute(&toy, &log, initial())
        .await
        .expect_err("the fail step fails");
    match &err {
        SagaError::StepFailed { saga, step, error } => {
            assert_eq!((*saga, *step), ("build", "fail"));
            assert_eq!(error.message(), "no capacity");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.step_error().map(StepError::message),
        Some("no capacity")
    );
    assert!(toy.things().is_empty());
    assert_eq!(
        toy.journal(),
        [
            "run network",
            "run port",
            "run volume",
            "run fail",
            "undo fail",
            "undo volume",
            "undo port",
            "undo network"
        ]
    );
    let record = &log.records()[0];
    assert_eq!(record.status, SagaStatus::Unwound);
    assert_eq!(record.done, 0);
    assert!(
        record
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no capacity"))
    );
}

#[tokio::test]
async fn undo_failure_reports_both_errors_and_leaves_saga_stuck() {
    let toy = Toy::default();
    let log = MemoryLog::new();
    let saga = Saga::new("stuck")
        .step(create("network"))
        .step(Fail { undo_fails: true });
    let err = saga
        .execute(&toy, &log, initial())
        .await
        .expect_err("fails");
    match &err {
        SagaError::UndoFailed {
            step,
            error,
            undo_step,
            undo_error,
            ..
        } => {
            assert_eq!(*step, "fail");
            assert_eq!(error.message(), "no capacity");
            assert_eq!(*undo_step, "fail");
            assert_eq!(undo_error.message(), "undo broke");
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("no capacity") && text.contains("undo broke"),
        "{text}"
    );
    // Unwinding stopped at the failed undo: the network is still there.
    assert_eq!(*toy.things(), ["vm1-network"]);
    let record = &log.records()[0];
    assert_eq!(record.status, SagaStatus::Stuck);
    assert_eq!(record.done, 2);
    assert!(
        record
            .error
            .as_deref()
            .is_some_and(|e| e.contains("undo broke"))
    );
}

/// A log whose `step_done` fails from the `fail_at`-th call on.
struct FlakyLog {
    inner: MemoryLog,
    calls: Mutex<usize>,
    fail_at: usize,
}

#[async_trait]
impl SagaLog for FlakyLog {
    async fn begin(&self, saga: &str, state: &Value) -> Result<SagaId, LogError> {
        self.inner.begin(saga, state).await
    }
    async fn step_done(
        &self,
        id: SagaId,
        index: usize,
        step: &str,
        state: &Value,
    ) -> Result<(), LogError> {
        let call = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            *calls += 1;
            *calls
        };
        if call >= self.fail_at {
            return Err(LogError::new("database is gone"));
        }
        self.inner.step_done(id, index, step, state).await
    }
    async fn unwinding(
        &self,
        id: SagaId,
        undo_from: usize,
        state: &Value,
        error: &str,
    ) -> Result<(), LogError> {
        self.inner.unwinding(id, undo_from, state, error).await
    }
    async fn step_undone(&self, id: SagaId, index: usize, step: &str) -> Result<(), LogError> {
        self.inner.step_undone(id, index, step).await
    }
    async fn finish(
        &self,
        id: SagaId,
        status: SagaStatus,
        error: Option<&str>,
    ) -> Result<(), LogError> {
        self.inner.finish(id, status, error).await
    }
    async fn unfinished(&self) -> Result<Vec<SagaRecord>, LogError> {
        self.inner.unfinished().await
    }
}

#[tokio::test]
async fn failing_log_write_unwinds_the_step_just_run() {
    let toy = Toy::default();
    let log = FlakyLog {
        inner: MemoryLog::new(),
        calls: Mutex::new(0),
        fail_at: 2,
    };
    let err = good_saga()
        .execute(&toy, &log, initial())
        .await
        .expect_err("log failure fails the saga");
    match &err {
        SagaError::StepFailed { step, error, .. } => {
            assert_eq!(*step, "port");
            assert!(error.downcast_ref::<LogError>().is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(toy.things().is_empty(), "port and network undone");
    assert_eq!(log.inner.records()[0].status, SagaStatus::Unwound);
}

#[tokio::test]
async fn saga_error_from_log_when_begin_fails() {
    struct NoLog;
    #[async_trait]
    impl SagaLog for NoLog {
        async fn begin(&self, _: &str, _: &Value) -> Result<SagaId, LogError> {
            Err(LogError::new("read-only"))
        }
        async fn step_done(&self, _: SagaId, _: usize, _: &str, _: &Value) -> Result<(), LogError> {
            Ok(())
        }
        async fn unwinding(&self, _: SagaId, _: usize, _: &Value, _: &str) -> Result<(), LogError> {
            Ok(())
        }
        async fn step_undone(&self, _: SagaId, _: usize, _: &str) -> Result<(), LogError> {
            Ok(())
        }
        async fn finish(&self, _: SagaId, _: SagaStatus, _: Option<&str>) -> Result<(), LogError> {
            Ok(())
        }
        async fn unfinished(&self) -> Result<Vec<SagaRecord>, LogError> {
            Ok(Vec::new())
        }
    }
    let toy = Toy::default();
    let err = good_saga()
        .execute(&toy, &NoLog, initial())
        .await
        .expect_err("begin fails");
    assert!(matches!(err, SagaError::Log(_)));
    assert!(toy.journal().is_empty(), "nothing ran");
}

/// Simulates a crash after `done` steps of `saga` ran and were logged.
async fn crash_after(saga: &Saga<Toy>, toy: &Toy, log: &MemoryLog, done: usize) -> SagaId {
    let mut state = initial();
    let id = log.begin(saga.name(), &state).await.expect("begin");
    for (index, step) in saga.steps.iter().enumerate().take(done) {
        step.run(toy, &mut state).await.expect("run");
        log.step_done(id, index, step.name(), &state)
            .await
            .expect("step_done");
    }
    id
}

#[tokio::test]
async fn recover_unwinds_an_interrupted_saga() -> Result<(), LogError> {
    let toy = Toy::default();
    let log = MemoryLog::new();
    let saga = good_saga();
    let id = crash_after(&saga, &toy, &log, 2).await;
    assert_eq!(toy.things().len(), 2);
    let report = recover(&toy, &log, &[&saga]).await?;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].id, id);
    assert_eq!(report[0].saga, "build");
    assert!(matches!(report[0].outcome, Ok(Recovered::Unwound)));
    assert!(toy.things().is_empty());
    // The step in progress at the crash (volume) is undone too.
    assert!(toy.journal().ends_with(&[
        "undo volume".to_owned(),
        "undo port".to_owned(),
        "undo network".to_owned()
    ]));
    assert_eq!(log.get(id).map(|r| r.status), Some(SagaStatus::Unwound));
    assert!(log.unfinished().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn recover_resumes_a_resumable_saga() -> Result<(), LogError> {
    let toy = Toy::default();
    let log = MemoryLog::new();
    let saga = good_saga().resumable();
    let id = crash_after(&saga, &toy, &log, 1).await;
    let report = recover(&toy, &log, &[&saga]).await?;
    match &report[0].outcome {
        Ok(Recovered::Completed(state)) => assert_eq!(state["volume"], json!("vm1-volume")),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(*toy.things(), ["vm1-network", "vm1-port", "vm1-volume"]);
    assert_eq!(log.get(id).map(|r| r.status), Some(SagaStatus::Succeeded));
    Ok(())
}

#[tokio::test]
async fn recover_finishes_an_interrupted_unwind() -> Result<(), LogError> {
    let toy = Toy::default();
    let log = MemoryLog::new();
    let saga = good_saga();
    let id = crash_after(&saga, &toy, &log, 3).await;
    let state = log.get(id).map(|r| r.state).unwrap_or_default();
    // The saga failed after its last step; the volume was undone, then the
    // process died.
    log.unwinding(id, 3, &state, "step x failed: boom").await?;
    saga.steps[2].undo(&toy, &state).await.expect("undo");
    log.step_undone(id, 2, "volume").await?;
    // Even a resumable saga keeps unwinding once it started to.
    let resumable = good_saga().resumable();
    let report = recover(&toy, &log, &[&resumable]).await?;
    assert!(matches!(report[0].outcome, Ok(Recovered::Unwound)));
    assert!(toy.things().is_empty());
    let record = log.get(id).expect("record");
    assert_eq!(record.status, SagaStatus::Unwound);
    assert_eq!(record.error.as_deref(), Some("step x failed: boom"));
    Ok(())
}

#[tokio::test]
async fn recover_reports_a_failing_undo() -> Result<(), LogError> {
    let toy = Toy::default();
    let log = MemoryLog::new();
    let saga = Saga::new("stuck")
        .step(create("network"))
        .step(Fail { undo_fails: true });
    crash_after(&saga, &toy, &log, 1).await;
    let report = recover(&toy, &log, &[&saga]).await?;
    match &report[0].outcome {
        Err(SagaError::UndoFailed {
            step, undo_step, ..
        }) => {
            assert_eq!(*step, INTERRUPTED);
            assert_eq!(*undo_step, "fail");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(log.records()[0].status, SagaStatus::Stuck);
    assert!(
        log.unfinished().await?.is_empty(),
        "stuck sagas are left alone"
    );
    Ok(())
}

#[tokio::test]
async fn recover_leaves_other_sagas_alone() -> Result<(), LogError> {
    let toy = Toy::default();
    let log = MemoryLog::new();
    let saga = good_saga();
    let other = Saga::<Toy>::new("someone-else").step(create("thing"));
    crash_after(&other, &toy, &log, 1).await;
    let report = recover(&toy, &log, &[&saga]).await?;
    assert!(report.is_empty());
    assert_eq!(log.unfinished().await?.len(), 1);
    assert_eq!(toy.things().len(), 1);
    Ok(())
}

#[test]
fn execute_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let toy = Toy::default();
    let log = MemoryLog::new();
    let saga = good_saga();
    let future = saga.execute(&toy, &log, Value::Null);
    assert_send(&future);
    let sagas = [&saga];
    let recovery = recover(&toy, &log, &sagas);
    assert_send(&recovery);
}

#[test]
fn step_error_keeps_its_source() {
    let error = StepError::from_error(LogError::new("x"));
    assert_eq!(error.message(), "saga log: x");
    assert!(error.downcast_ref::<LogError>().is_some());
    assert!(
        StepError::from("plain")
            .downcast_ref::<LogError>()
            .is_none()
    );
    assert!(std::error::Error::source(&error).is_some());
}

// --- the test helpers, on good and buggy sagas ---

#[tokio::test]
async fn helpers_pass_a_correct_saga() -> Result<(), String> {
    let toy = Toy::default();
    fail_each_step_in_turn(good_saga, &toy, initial(), observe).await?;
    run_each_step_twice(good_saga, &toy, initial(), observe).await?;
    assert!(toy.things().is_empty());
    // Both failure variants of every step were exercised.
    let journal = toy.journal();
    let runs_of = |key: &str| {
        journal
            .iter()
            .filter(|e| *e == &format!("run {key}"))
            .count()
    };
    assert!(runs_of("volume") >= 4);
    Ok(())
}

#[tokio::test]
async fn fail_each_step_catches_an_undo_that_forgets_to_clean_up() {
    for bug_at in 0..3 {
        let toy = Toy::default();
        let err = fail_each_step_in_turn(
            || saga_with(bug_at, Bug::LeakyUndo),
            &toy,
            initial(),
            observe,
        )
        .await
        .expect_err("the leak must be caught");
        assert!(err.contains("leaked"), "{err}");
        let step = ["network", "port", "volume"][bug_at];
        // At least the after-run failure of the leaky step itself leaks.
        assert!(
            err.contains(&format!("failure AfterRun of step {bug_at} ({step})")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn fail_each_step_catches_a_run_that_records_too_late() {
    let toy = Toy::default();
    let err = fail_each_step_in_turn(|| saga_with(1, Bug::RecordsLate), &toy, initial(), observe)
        .await
        .expect_err("the leak must be caught");
    assert!(err.contains("leaked"), "{err}");
}

#[tokio::test]
async fn fail_each_step_catches_an_undo_that_cannot_handle_a_step_that_never_ran() {
    struct NeedsRun;
    #[async_trait]
    impl Step<Toy> for NeedsRun {
        fn name(&self) -> &'static str {
            "needs-run"
        }
        async fn run(&self, _: &Toy, state: &mut Value) -> Result<(), StepError> {
            state["ran"] = json!(true);
            Ok(())
        }
        async fn undo(&self, _: &Toy, state: &Value) -> Result<(), StepError> {
            state
                .get("ran")
                .map(|_| ())
                .ok_or_else(|| StepError::new("nothing to undo?!"))
        }
    }
    let toy = Toy::default();
    let err = fail_each_step_in_turn(
        || Saga::new("fragile").step(create("a")).step(NeedsRun),
        &toy,
        initial(),
        observe,
    )
    .await
    .expect_err("BeforeRun must break the undo");
    assert!(
        err.contains("BeforeRun") && err.contains("UndoFailed"),
        "{err}"
    );
    assert!(!err.contains("AfterRun"), "{err}");
}

#[tokio::test]
async fn helpers_pass_an_empty_saga() -> Result<(), String> {
    let toy = Toy::default();
    fail_each_step_in_turn(|| Saga::new("empty"), &toy, initial(), observe).await?;
    run_each_step_twice(|| Saga::new("empty"), &toy, initial(), observe).await
}

#[tokio::test]
async fn run_each_step_twice_catches_a_run_that_is_not_idempotent() {
    let toy = Toy::default();
    let err = run_each_step_twice(|| saga_with(1, Bug::RepeatedRun), &toy, initial(), observe)
        .await
        .expect_err("duplicate creation must be caught");
    assert!(err.contains("differs from running it once"), "{err}");
}

#[tokio::test]
async fn run_each_step_twice_catches_an_undo_that_is_not_idempotent() {
    let toy = Toy::default();
    let err = run_each_step_twice(|| saga_with(2, Bug::StrictUndo), &toy, initial(), observe)
        .await
        .expect_err("a second undo failing must be caught");
    assert!(err.contains("undoing step volume twice failed"), "{err}");
    // A single undo is fine: the normal run's part passes.
    assert!(!err.contains("normal run"), "{err}");
}

#[tokio::test]
async fn run_each_step_twice_catches_a_leaky_undo() {
    let toy = Toy::default();
    let err = run_each_step_twice(|| saga_with(0, Bug::LeakyUndo), &toy, initial(), observe)
        .await
        .expect_err("the leak must be caught");
    assert!(err.contains("undoing a normal run leaked"), "{err}");
}
