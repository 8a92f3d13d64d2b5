//! `Identity::effective_limit` with a configured limits region: that region's registration
//! (or else a region-less one) and the project limits under it, nothing of other regions.

use std::sync::Arc;

use ferro_identity::db::{self, LimitRow, RegionRow, RegisteredLimitRow, ServiceRow};
use ferro_identity::{Identity, IdentityConfig};

async fn identity(dir: &std::path::Path, region: Option<&str>) -> Arc<Identity> {
    let db = ferro_db::Db::connect(&format!("sqlite://{}", dir.join("t.db").display()))
        .await
        .unwrap();
    ferro_db::migrate(&db, "identity", ferro_identity::migrations())
        .await
        .unwrap();
    let mut config = IdentityConfig::new(dir, "http://127.0.0.1:5000");
    config.limits_region = region.map(str::to_string);
    Identity::open(db, config).await.unwrap()
}

fn registered(id: &str, region: &str, default_limit: i64) -> RegisteredLimitRow {
    RegisteredLimitRow {
        id: id.into(),
        service_id: "svc".into(),
        region_id: region.into(),
        resource_name: "ports".into(),
        default_limit,
        description: None,
    }
}

#[tokio::test]
async fn effective_limit_reads_the_configured_region_then_a_region_less_registration() {
    let dir = tempfile::tempdir().unwrap();
    {
        let id = identity(dir.path(), None).await;
        let ex = &mut &id.db;
        let service = ServiceRow {
            id: "svc".into(),
            kind: "network".into(),
            enabled: true,
            extra: "{}".into(),
        };
        db::service_upsert(ex, &service, true).await.unwrap();
        for r in ["RegionOne", "RegionTwo"] {
            let region = RegionRow {
                id: r.into(),
                description: None,
                parent_region_id: None,
                extra: "{}".into(),
            };
            db::region_upsert(ex, &region, true).await.unwrap();
        }
        db::registered_limit_upsert(ex, &registered("r1", "RegionOne", 10), true)
            .await
            .unwrap();
        db::registered_limit_upsert(ex, &registered("r2", "RegionTwo", 20), true)
            .await
            .unwrap();
        let own = LimitRow {
            id: "l2".into(),
            registered_limit_id: "r2".into(),
            project_id: Some("p1".into()),
            domain_id: None,
            resource_limit: 2,
            description: None,
            service_id: String::new(),
            region_id: String::new(),
            resource_name: String::new(),
        };
        db::limit_upsert(ex, &own, true).await.unwrap();
        assert_eq!(
            id.effective_limit("p1", "network", "ports").await.unwrap(),
            Some(10),
            "no region configured: the lowest region id"
        );
    }
    let two = identity(dir.path(), Some("RegionTwo")).await;
    assert_eq!(
        two.effective_limit("p1", "network", "ports").await.unwrap(),
        Some(2)
    );
    assert_eq!(
        two.effective_limit("p9", "network", "ports").await.unwrap(),
        Some(20)
    );
    let three = identity(dir.path(), Some("RegionThree")).await;
    assert_eq!(
        three
            .effective_limit("p1", "network", "ports")
            .await
            .unwrap(),
        None
    );
    // A region-less registration serves every region, after the region's own.
    db::registered_limit_upsert(&mut &three.db, &registered("r0", "", 5), true)
        .await
        .unwrap();
    assert_eq!(
        three
            .effective_limit("p1", "network", "ports")
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(
        two.effective_limit("p9", "network", "ports").await.unwrap(),
        Some(20)
    );
}
