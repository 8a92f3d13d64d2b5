//! Instance actions: each request that changes a server is recorded with the steps the
//! conductor and agents finished for it, readable after the server is deleted (2.21).

use serde_json::Value;

use crate::servers::{create, image_and_flavor, nova, wait_gone, wait_hosts, wait_status};
use ferro_testkit::TestCloud;
use serde_json::json;

fn names(body: &Value) -> Vec<String> {
    body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn actions_and_their_events_are_recorded_and_paged() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.84");
    let id = create(&n, "acted", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let act = |body: Value| {
        let n = n.clone();
        let path = format!("/servers/{id}/action");
        async move { assert_eq!(n.post(&path, &body).await.unwrap().status, 202) }
    };
    act(json!({"os-stop": null})).await;
    wait_status(&n, &id, "SHUTOFF").await;
    act(json!({"os-start": null})).await;
    wait_status(&n, &id, "ACTIVE").await;

    let list = format!("/servers/{id}/os-instance-actions");
    let r = n.get(&list).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r.body), ["start", "stop", "create"]);
    let create_action = r.body["instanceActions"][2].clone();
    assert_eq!(create_action["instance_uuid"], id);
    assert!(create_action["message"].is_null());
    assert!(create_action["updated_at"].is_string());
    let request = create_action["request_id"].as_str().unwrap().to_string();

    let r = n.get(&format!("{list}/{request}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.body["instanceAction"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", r.body);
    assert_eq!(events[0]["event"], "compute__do_build_and_run_instance");
    assert_eq!(events[0]["result"], "Success");
    assert_eq!(events[0]["host"], "fake-0");
    assert!(events[0]["hostId"].as_str().is_some_and(|h| h.len() == 56));
    assert!(events[0].get("details").is_some());
    // Before 2.62 no host, before 2.58 no updated_at.
    let r = nova(&c, "2.51")
        .get(&format!("{list}/{request}"))
        .await
        .unwrap();
    assert!(r.body["instanceAction"]["events"][0].get("host").is_none());
    assert!(r.body["instanceAction"].get("updated_at").is_none());
    let r = n.get(&format!("{list}/req-nothing")).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        "Action req-nothing not found"
    );

    // Paging from 2.58: newest first, marker is a request id.
    let r = n.get(&format!("{list}?limit=1")).await.unwrap();
    assert_eq!(names(&r.body), ["start"]);
    let marker = r.body["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        r.body["links"][0]["href"]
            .as_str()
            .unwrap()
            .contains(&marker)
    );
    let r = n.get(&format!("{list}?marker={marker}")).await.unwrap();
    assert_eq!(names(&r.body), ["stop", "create"]);
    assert_eq!(
        n.get(&format!("{list}?marker=nope")).await.unwrap().status,
        400
    );
    let r = n
        .get(&format!("{list}?changes-since=2999-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(names(&r.body), Vec::<String>::new());

    // A deleted server's actions stay readable from 2.21, not before.
    assert_eq!(
        n.delete(&format!("/servers/{id}")).await.unwrap().status,
        204
    );
    wait_gone(&n, &id).await;
    let r = n.get(&list).await.unwrap();
    assert_eq!(names(&r.body), ["delete", "start", "stop", "create"]);
    let delete_request = r.body["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = n.get(&format!("{list}/{delete_request}")).await.unwrap();
    assert_eq!(
        r.body["instanceAction"]["events"][0]["event"],
        "compute_terminate_instance"
    );
    assert_eq!(nova(&c, "2.20").get(&list).await.unwrap().status, 404);
}

#[tokio::test]
async fn a_server_no_host_takes_records_the_failed_scheduling() {
    let c = TestCloud::start().await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.84");
    let id = create(&n, "homeless", &image, &flavor).await;
    wait_status(&n, &id, "ERROR").await;
    let r = n
        .get(&format!("/servers/{id}/os-instance-actions"))
        .await
        .unwrap();
    let a = &r.body["instanceActions"][0];
    assert_eq!(a["action"], "create");
    assert_eq!(a["message"], "Error");
    let r = n
        .get(&format!(
            "/servers/{id}/os-instance-actions/{}",
            a["request_id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    let e = &r.body["instanceAction"]["events"][0];
    assert_eq!(e["event"], "conductor_schedule_and_build_instances");
    assert_eq!(e["result"], "Error");
}

#[tokio::test]
async fn simple_tenant_usage_counts_running_and_deleted_servers() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 2, 64).await;
    let n = nova(&c, "2.40");
    let kept = create(&n, "kept", &image, &flavor).await;
    let gone = create(&n, "gone", &image, &flavor).await;
    wait_status(&n, &kept, "ACTIVE").await;
    wait_status(&n, &gone, "ACTIVE").await;
    assert_eq!(
        n.delete(&format!("/servers/{gone}")).await.unwrap().status,
        204
    );
    wait_gone(&n, &gone).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let fmt = |d: chrono::TimeDelta| {
        (chrono::Utc::now() + d)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let (start, end) = (
        fmt(chrono::TimeDelta::hours(-1)),
        fmt(chrono::TimeDelta::hours(1)),
    );
    let r = n
        .get(&format!(
            "/os-simple-tenant-usage?start={start}&end={end}&detailed=1"
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let usages = r.body["tenant_usages"].as_array().unwrap();
    assert_eq!(usages.len(), 1, "{}", r.body);
    let u = &usages[0];
    let servers = u["server_usages"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    let states: Vec<&str> = servers
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "terminated"]);
    assert!(u["total_hours"].as_f64().unwrap() > 0.0);
    let vcpu_hours = u["total_vcpus_usage"].as_f64().unwrap();
    assert!((vcpu_hours - 2.0 * u["total_hours"].as_f64().unwrap()).abs() < 1e-9);

    let project = c.admin_token["token"]["project"]["id"].as_str().unwrap();
    let r = n
        .get(&format!(
            "/os-simple-tenant-usage/{project}?start={start}&end={end}&limit=1"
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["tenant_usage"]["server_usages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        r.body["tenant_usage_links"][0]["href"]
            .as_str()
            .unwrap()
            .contains(&kept)
    );
    let r = n
        .get("/os-simple-tenant-usage/no-such-project")
        .await
        .unwrap();
    assert_eq!(r.body, json!({"tenant_usage": {}}));

    let r = n
        .get(&format!("/os-simple-tenant-usage?start={end}&end={start}"))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Invalid start time. The start time cannot occur after the end time."
    );
    assert_eq!(
        n.get("/os-simple-tenant-usage?start=soon")
            .await
            .unwrap()
            .status,
        400
    );
}
