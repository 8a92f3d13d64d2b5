//! The test harness itself: a cloud's scratch database goes away with it, whatever holds it.

use std::time::{Duration, Instant};

use ferro_db::{Db, Sql};
use ferro_testkit::TestCloud;

/// A transaction left open on the cloud's database (as a cloud task blocked mid-way by the
/// dropping thread would leave it) must not stall the drop: on MariaDB, DROP DATABASE would
/// otherwise wait on its metadata lock for a year.
#[tokio::test]
async fn a_cloud_drops_its_database_even_with_a_transaction_open() {
    let c = TestCloud::start().await;
    let url = c.config.database.url.clone();
    if !url.starts_with("postgres") && !url.starts_with("mysql") {
        return; // SQLite: the file goes with the state directory; run with FERRO_TEST_DB.
    }
    let db = Db::connect(&url).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.execute(&Sql::new("UPDATE ks_project SET description = description"))
        .await
        .unwrap();
    let started = Instant::now();
    drop(c);
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "the drop took {:?}",
        started.elapsed()
    );
    assert!(
        Db::connect(&url).await.is_err(),
        "the scratch database outlived its cloud"
    );
    drop(tx);
}
