//! Bootstrap is a saga: failing any step in turn must leave nothing behind, and running
//! each step twice must change nothing.

use std::sync::Arc;

use ferro_identity::bootstrap::{BootstrapParams, saga};
use ferro_identity::{Identity, IdentityConfig};
use serde_json::json;

async fn identity(dir: &std::path::Path) -> Arc<Identity> {
    let db = ferro_db::Db::connect(&format!("sqlite://{}", dir.join("t.db").display()))
        .await
        .unwrap();
    ferro_db::migrate(&db, "identity", ferro_identity::migrations())
        .await
        .unwrap();
    let mut config = IdentityConfig::new(dir, "http://127.0.0.1:5000");
    config.bcrypt_cost = 4;
    Identity::open(db, config).await.unwrap()
}

fn params() -> BootstrapParams {
    BootstrapParams {
        admin_user: "admin".into(),
        admin_password: "pw".into(),
        admin_project: "admin".into(),
        region: "RegionOne".into(),
        services: vec![
            (
                "identity".into(),
                "keystone".into(),
                "http://127.0.0.1:5000/v3".into(),
            ),
            (
                "compute".into(),
                "nova".into(),
                "http://127.0.0.1:8774/v2.1".into(),
            ),
        ],
        service_password: Some("service-pw".into()),
    }
}

/// Row counts of every table bootstrap writes.
async fn rows(id: &Arc<Identity>) -> Vec<(String, i64)> {
    #[derive(sqlx::FromRow)]
    struct N {
        n: i64,
    }
    let mut out = Vec::new();
    for t in [
        "ks_project",
        "ks_user",
        "ks_role",
        "ks_implied_role",
        "ks_assignment",
        "ks_region",
        "ks_service",
        "ks_endpoint",
    ] {
        let n: Option<N> = id
            .db
            .fetch_optional(&ferro_db::Sql::new(&format!(
                "SELECT COUNT(*) AS n FROM {t}"
            )))
            .await
            .unwrap();
        out.push((t.to_string(), n.map_or(-1, |n| n.n)));
    }
    out
}

#[tokio::test]
async fn bootstrap_failing_at_any_step_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(dir.path()).await;
    let p = params();
    let r = ferro_saga::testing::fail_each_step_in_turn(
        || saga(&p),
        &id,
        json!({}),
        async |id: &Arc<Identity>| rows(id).await,
    )
    .await;
    assert_eq!(r, Ok(()));
}

#[tokio::test]
async fn bootstrap_steps_are_idempotent_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(dir.path()).await;
    let p = params();
    let r = ferro_saga::testing::run_each_step_twice(
        || saga(&p),
        &id,
        json!({}),
        async |id: &Arc<Identity>| rows(id).await,
    )
    .await;
    assert_eq!(r, Ok(()));
    ferro_identity::bootstrap::bootstrap(&id, &p).await.unwrap();
    let before = rows(&id).await;
    ferro_identity::bootstrap::bootstrap(&id, &p).await.unwrap();
    assert_eq!(rows(&id).await, before);
    assert!(before.iter().all(|(_, n)| *n > 0), "{before:?}");
}
