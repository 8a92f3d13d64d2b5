//! `PUT /os-services`: disabling a compute service keeps the scheduler off it, forcing it
//! down makes deletes of its servers local (upstream's `_local_delete`), and the agent's
//! report of its guests then destroys those of deleted servers (the "reap" of running
//! deleted instances). The faults and bodies of both API generations (before and from 2.53).

use std::time::Duration;

use ferro_client::Client;
use ferro_testkit::TestCloud;
use ferro_virt::Driver;
use serde_json::{Value, json};

use crate::servers::{
    allocations, create, image_and_flavor, nova, placement, wait_hosts, wait_status,
};

fn service<'a>(list: &'a Value, host: &str) -> &'a Value {
    list["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["host"] == host && s["binary"] == "nova-compute")
        .unwrap_or_else(|| panic!("no nova-compute on {host}: {list}"))
}

/// PUTs `body` at `path`, checks the answer is `status`, and gives the fault's message.
async fn refused(n: &Client, path: &str, body: Value, status: u16) -> String {
    let r = n.put(path, Some(&body)).await.unwrap();
    assert_eq!(r.status, status, "{}", r.body);
    r.body
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|f| f["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn service_update_before_and_from_2_53() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let old = nova(&c, "2.10");
    let v211 = nova(&c, "2.11");
    let host = json!({"host": "fake-0", "binary": "nova-compute"});
    let with = |extra: Value| {
        let mut b = host.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };

    let r = old.put("/os-services/disable", Some(&host)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"service": {"host": "fake-0", "binary": "nova-compute", "status": "disabled"}})
    );
    let list = old.get("/os-services").await.unwrap().body;
    assert_eq!(service(&list, "fake-0")["status"], "disabled");
    assert!(service(&list, "fake-0").get("forced_down").is_none());

    let r = old
        .put(
            "/os-services/disable-log-reason",
            Some(&with(json!({"disabled_reason": "maintenance"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["service"]["disabled_reason"], "maintenance");
    let list = old.get("/os-services").await.unwrap().body;
    assert_eq!(service(&list, "fake-0")["disabled_reason"], "maintenance");
    assert_eq!(
        refused(&old, "/os-services/disable-log-reason", host.clone(), 400).await,
        "Missing disabled reason field"
    );

    let r = old.put("/os-services/enable", Some(&host)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["service"]["status"], "enabled");
    let list = old.get("/os-services").await.unwrap().body;
    assert_eq!(service(&list, "fake-0")["disabled_reason"], Value::Null);

    // force-down is 2.11's; before it the action is unknown.
    assert_eq!(
        refused(&old, "/os-services/force-down", host.clone(), 404).await,
        "Unknown action"
    );
    assert_eq!(
        refused(&v211, "/os-services/force-down", host.clone(), 400).await,
        "Missing forced_down field"
    );
    let r = v211
        .put(
            "/os-services/force-down",
            Some(&with(json!({"forced_down": true}))),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"service": {"host": "fake-0", "binary": "nova-compute", "forced_down": true}})
    );
    let list = v211.get("/os-services").await.unwrap().body;
    assert_eq!(service(&list, "fake-0")["forced_down"], true);
    assert_eq!(service(&list, "fake-0")["state"], "down");

    // Bad input.
    let nowhere = json!({"host": "nowhere", "binary": "nova-compute"});
    assert_eq!(
        refused(&old, "/os-services/disable", nowhere, 404).await,
        "Could not find binary nova-compute on host nowhere."
    );
    let scheduler = json!({"host": "fake-0", "binary": "nova-scheduler"});
    assert!(
        refused(&old, "/os-services/disable", scheduler, 400)
            .await
            .starts_with("Updating a nova-scheduler service is not supported.")
    );
    refused(&old, "/os-services/disable", json!({"host": "fake-0"}), 400).await;
    refused(&old, "/os-services/explode", host.clone(), 404).await;
    let (_, _) = c.project_user("svc", "sam", "pw", "member").await;
    let (sam, _) = c.login("sam", "pw", Some("svc")).await.unwrap();
    let sam = sam.clone_with_base(&format!("{}/v2.1", c.compute_url));
    refused(&sam, "/os-services/disable", host.clone(), 403).await;

    // From 2.53 the service is its uuid in the path; the answer is the whole service.
    let new = nova(&c, "2.53");
    let list = new.get("/os-services").await.unwrap().body;
    let id = service(&list, "fake-0")["id"].as_str().unwrap().to_string();
    let path = format!("/os-services/{id}");
    let r = new
        .put(
            &path,
            Some(&json!({"status": "disabled", "disabled_reason": "rack 4", "forced_down": false})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let s = &r.body["service"];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["status"], "disabled");
    assert_eq!(s["disabled_reason"], "rack 4");
    assert_eq!(s["forced_down"], false);
    assert_eq!(s["state"], "up");
    assert_eq!(s["zone"], "nova");
    let enabled_with_reason = json!({"status": "enabled", "disabled_reason": "x"});
    assert_eq!(
        refused(&new, &path, enabled_with_reason, 400).await,
        "Specifying 'disabled_reason' with status 'enabled' is invalid."
    );
    assert!(
        refused(&new, &path, json!({}), 400)
            .await
            .starts_with("No updates were requested.")
    );
    let enable = json!({"status": "enabled"});
    assert_eq!(
        refused(&new, "/os-services/disable", enable.clone(), 400).await,
        "Invalid uuid disable"
    );
    let missing = "/os-services/7d3f1a52-64a3-4bd5-9a41-1a6a1f4f8c00";
    refused(&new, missing, enable, 404).await;
    refused(&new, &path, json!({"status": "paused"}), 400).await;
}

#[tokio::test]
async fn a_disabled_host_gets_no_new_servers() {
    let c = TestCloud::with_fake_hosts(2).await;
    wait_hosts(&c, 2).await;
    let (image, flavor) = image_and_flavor(&c, 1, 128).await;
    let n = nova(&c, "2.37");
    let r = n
        .put(
            "/os-services/disable",
            Some(&json!({"host": "fake-0", "binary": "nova-compute"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for i in 0..4 {
        let id = create(&n, &format!("s{i}"), &image, &flavor).await;
        let s = wait_status(&n, &id, "ACTIVE").await;
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-1", "{s}");
    }
}

#[tokio::test]
async fn deleting_on_a_down_host_is_local_and_its_guest_is_reaped_later() {
    let c = TestCloud::start_with(|c| {
        c.compute.fake_hosts = 1;
        c.compute.running_deleted_instance_poll_interval = 1;
    })
    .await
    .unwrap();
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 128).await;
    let n = nova(&c, "2.37");
    let id = create(&n, "left-behind", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let driver = c.fake_driver("fake-0");
    assert_eq!(driver.list_instances().await.unwrap(), vec![id.clone()]);

    let down = json!({"host": "fake-0", "binary": "nova-compute", "forced_down": true});
    let r = nova(&c, "2.11")
        .put("/os-services/force-down", Some(&down))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // The host is down: the delete is done by the API at once, allocation included.
    let r = n.delete(&format!("/servers/{id}")).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(n.get(&format!("/servers/{id}")).await.unwrap().status, 404);
    assert_eq!(allocations(&c, &id).await, json!({}));
    let r = n
        .get(&format!("/servers/{id}/os-instance-actions"))
        .await
        .unwrap();
    // Deleted servers' actions stay readable from 2.21; the delete is recorded.
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["instanceActions"][0]["action"], "delete",
        "{}",
        r.body
    );

    // The agent (alive here, only forced down) reports its guests every second: the
    // deleted server's guest goes.
    for _ in 0..100 {
        if driver.list_instances().await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the guest of the deleted server was never destroyed");
}

#[tokio::test]
async fn service_delete_refuses_a_busy_host_and_removes_an_idle_one() {
    let c = TestCloud::with_fake_hosts(2).await;
    wait_hosts(&c, 2).await;
    let (image, flavor) = image_and_flavor(&c, 1, 128).await;
    let n = nova(&c, "2.53");
    // Nothing goes to fake-1: fake-0 holds the server.
    let r = nova(&c, "2.1")
        .put(
            "/os-services/disable",
            Some(&json!({"host": "fake-1", "binary": "nova-compute"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let id = create(&nova(&c, "2.37"), "busy", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let list = n.get("/os-services").await.unwrap().body;
    let busy = service(&list, "fake-0")["id"].as_str().unwrap().to_string();
    let idle = service(&list, "fake-1")["id"].as_str().unwrap().to_string();

    let r = n.delete(&format!("/os-services/{busy}")).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["conflictingRequest"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unable to delete compute service that is hosting instances."),
        "{}",
        r.body
    );
    assert_eq!(n.delete("/os-services/42").await.unwrap().status, 400);
    assert_eq!(
        nova(&c, "2.52")
            .delete("/os-services/abc")
            .await
            .unwrap()
            .body["badRequest"]["message"],
        "Invalid input received: id must be an integer"
    );
    assert_eq!(
        nova(&c, "2.52")
            .delete("/os-services/424242")
            .await
            .unwrap()
            .status,
        404
    );
    let missing = "7d3f1a52-64a3-4bd5-9a41-1a6a1f4f8c00";
    let r = n.delete(&format!("/os-services/{missing}")).await.unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        format!("Service {missing} not found.")
    );

    // The idle host goes, its hypervisor and resource provider with it.
    let providers = |body: Value| -> Vec<String> {
        body["resource_providers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let before = providers(placement(&c).get("/resource_providers").await.unwrap().body);
    assert!(before.contains(&"fake-1".to_string()), "{before:?}");
    // An aggregate holding the idle host loses it with the service.
    let agg = n
        .post("/os-aggregates", &json!({"aggregate": {"name": "rack"}}))
        .await
        .unwrap();
    assert_eq!(agg.status, 200, "{}", agg.body);
    let agg = agg.body["aggregate"]["id"].clone();
    let r = n
        .post(
            &format!("/os-aggregates/{agg}/action"),
            &json!({"add_host": {"host": "fake-1"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = n.delete(&format!("/os-services/{idle}")).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    let r = n.get(&format!("/os-aggregates/{agg}")).await.unwrap();
    assert_eq!(r.body["aggregate"]["hosts"], json!([]), "{}", r.body);
    let after = providers(placement(&c).get("/resource_providers").await.unwrap().body);
    assert!(!after.contains(&"fake-1".to_string()), "{after:?}");
    let hv = n.get("/os-hypervisors").await.unwrap().body;
    assert!(
        hv["hypervisors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["hypervisor_hostname"] != "fake-1"),
        "{hv}"
    );
    assert_eq!(
        n.delete(&format!("/os-services/{idle}"))
            .await
            .unwrap()
            .status,
        404
    );
}
