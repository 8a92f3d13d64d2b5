//! Shelve, shelveOffload and unshelve on fake hosts: the snapshot image, what an offloaded
//! server holds (no host, no allocation, no guest), unshelve onto a named host or wherever
//! the scheduler puts it, upstream's refusals, and failures that leave nothing behind.

use ferro_client::Client;
use ferro_testkit::TestCloud;
use ferro_virt::{Driver, Op};
use serde_json::{Value, json};

use crate::resize::{act, wait_at_rest};
use crate::servers::{allocations, create, image_and_flavor, nova, wait_hosts, wait_status};

/// The images named `name` the admin sees.
async fn images_named(c: &TestCloud, name: &str) -> Vec<Value> {
    let r = c
        .admin
        .clone_with_base(&c.image_url)
        .get(&format!("/v2/images?name={name}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["images"].as_array().unwrap().clone()
}

async fn show(n: &Client, id: &str) -> Value {
    let r = n.get(&format!("/servers/{id}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["server"].clone()
}

async fn guests(c: &TestCloud, host: &str) -> Vec<String> {
    c.fake_driver(host).list_instances().await.unwrap()
}

/// The actions recorded for server `id`, oldest first.
async fn actions(n: &Client, id: &str) -> Vec<String> {
    let r = n
        .get(&format!("/servers/{id}/os-instance-actions"))
        .await
        .unwrap();
    let mut a: Vec<String> = r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect();
    a.reverse();
    a
}

#[tokio::test]
async fn shelve_offloads_and_unshelve_builds_from_the_snapshot() {
    let c = TestCloud::with_fake_hosts(2).await;
    wait_hosts(&c, 2).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.91");
    let id = create(&n, "sh", &image, &flavor).await;
    let s = wait_status(&n, &id, "ACTIVE").await;
    let first = s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string();
    let other = if first == "fake-0" {
        "fake-1"
    } else {
        "fake-0"
    };

    // Only an offloaded server may be unshelved to a zone or host; an active one not at all.
    let r = act(&n, &id, json!({"unshelve": null})).await;
    assert_eq!(r.status, 409, "{}", r.body);

    let r = act(&n, &id, json!({"shelve": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_status(&n, &id, "SHELVED_OFFLOADED").await;
    assert!(s["OS-EXT-STS:task_state"].is_null(), "{s}");
    assert!(s["OS-EXT-SRV-ATTR:host"].is_null(), "{s}");
    assert_eq!(s["OS-EXT-STS:power_state"], 4, "{s}");
    assert_eq!(s["image"]["id"], image.as_str(), "{s}");
    assert!(guests(&c, &first).await.is_empty());
    assert_eq!(allocations(&c, &id).await, json!({}));
    let shelved = images_named(&c, "sh-shelved").await;
    assert_eq!(shelved.len(), 1, "{shelved:?}");
    assert_eq!(shelved[0]["status"], "active");
    assert_eq!(shelved[0]["image_type"], "snapshot");
    assert_eq!(
        shelved[0]["disk_format"], "qcow2",
        "the driver's snapshot format"
    );
    assert_eq!(shelved[0]["instance_uuid"], id.as_str());
    let snapshot = shelved[0]["id"].as_str().unwrap().to_string();

    // Refusals: shelve twice, offload an offloaded one, unknown zone or host.
    let r = act(&n, &id, json!({"shelve": null})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["conflictingRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("vm_state shelved_offloaded"),
        "{}",
        r.body
    );
    assert_eq!(
        act(&n, &id, json!({"shelveOffload": null})).await.status,
        409
    );
    let r = act(
        &nova(&c, "2.77"),
        &id,
        json!({"unshelve": {"availability_zone": "nowhere"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = act(&nova(&c, "2.77"), &id, json!({"unshelve": {}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = act(&n, &id, json!({"unshelve": {"host": "nohost"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = act(&n, &id, json!({"unshelve": {"host": other, "bogus": 1}})).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Unshelve onto the other host (2.91): built there from the snapshot, which goes.
    let r = act(&n, &id, json!({"unshelve": {"host": other}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_at_rest(&n, &id).await;
    let s = show(&n, &id).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], other, "{s}");
    assert_eq!(s["OS-EXT-STS:power_state"], 1, "{s}");
    assert_eq!(s["image"]["id"], image.as_str(), "{s}");
    assert_eq!(guests(&c, other).await, vec![id.clone()]);
    let a = allocations(&c, &id).await;
    assert_eq!(a.as_object().unwrap().len(), 1, "{a}");
    let r = c
        .admin
        .clone_with_base(&c.image_url)
        .get(&format!("/v2/images/{snapshot}"))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "the shelve image is deleted: {}", r.body);
    assert_eq!(
        actions(&n, &id).await,
        ["create", "shelve", "unshelve"],
        "instance actions"
    );

    // A paused server shelves too; deleting it offloaded deletes its image.
    assert_eq!(act(&n, &id, json!({"pause": null})).await.status, 202);
    wait_status(&n, &id, "PAUSED").await;
    assert_eq!(act(&n, &id, json!({"shelve": null})).await.status, 202);
    wait_status(&n, &id, "SHELVED_OFFLOADED").await;
    assert_eq!(images_named(&c, "sh-shelved").await.len(), 1);
    let r = n.delete(&format!("/servers/{id}")).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(n.get(&format!("/servers/{id}")).await.unwrap().status, 404);
    assert!(images_named(&c, "sh-shelved").await.is_empty());
    assert_eq!(allocations(&c, &id).await, json!({}));
}

#[tokio::test]
async fn shelved_servers_stay_until_offloaded_and_unshelve_in_place() {
    let c = TestCloud::start_with(|cfg| {
        cfg.compute.fake_hosts = 1;
        cfg.compute.shelved_offload_time = -1;
    })
    .await
    .unwrap();
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let id = create(&nova(&c, "2.37"), "keep", &image, &flavor).await;
    let n = nova(&c, "2.1");
    wait_status(&n, &id, "ACTIVE").await;

    // Never offloaded: SHELVED on its host, powered off, still holding its resources.
    assert_eq!(act(&n, &id, json!({"shelve": null})).await.status, 202);
    let s = wait_status(&n, &id, "SHELVED").await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-0", "{s}");
    assert_eq!(s["OS-EXT-STS:power_state"], 4, "{s}");
    assert_eq!(guests(&c, "fake-0").await, vec![id.clone()]);
    assert_eq!(allocations(&c, &id).await.as_object().unwrap().len(), 1);
    // Before 2.77 unshelve takes any body and ignores it; a SHELVED server starts in place.
    let r = act(&n, &id, json!({"unshelve": {"availability_zone": "x"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_at_rest(&n, &id).await;
    let s = show(&n, &id).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-0", "{s}");
    assert_eq!(s["OS-EXT-STS:power_state"], 1, "{s}");
    assert!(images_named(&c, "keep-shelved").await.is_empty());

    // shelveOffload is the admin's, from SHELVED only; then unshelve schedules anew.
    assert_eq!(
        act(&n, &id, json!({"shelveOffload": null})).await.status,
        409
    );
    assert_eq!(act(&n, &id, json!({"shelve": null})).await.status, 202);
    wait_status(&n, &id, "SHELVED").await;
    wait_task_cleared(&n, &id).await;
    let r = act(&n, &id, json!({"shelveOffload": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_status(&n, &id, "SHELVED_OFFLOADED").await;
    assert!(guests(&c, "fake-0").await.is_empty());
    assert_eq!(allocations(&c, &id).await, json!({}));

    // A host that cannot build it: back to SHELVED_OFFLOADED, holding nothing.
    c.fake_driver("fake-0").fail(Op::Spawn, true);
    assert_eq!(act(&n, &id, json!({"unshelve": null})).await.status, 202);
    wait_task_cleared(&n, &id).await;
    let s = show(&n, &id).await;
    assert_eq!(s["status"], "SHELVED_OFFLOADED", "{s}");
    assert!(s["OS-EXT-SRV-ATTR:host"].is_null(), "{s}");
    assert_eq!(allocations(&c, &id).await, json!({}));
    assert!(guests(&c, "fake-0").await.is_empty());
    assert_eq!(images_named(&c, "keep-shelved").await.len(), 1);
    c.fake_driver("fake-0").fail(Op::Spawn, false);
    assert_eq!(act(&n, &id, json!({"unshelve": null})).await.status, 202);
    wait_at_rest(&n, &id).await;
    assert!(images_named(&c, "keep-shelved").await.is_empty());

    // A snapshot that fails: the image goes, the server is back at rest in its vm_state
    // (upstream's reverts_task_state; the power state sync records the guest off later).
    c.fake_driver("fake-0").fail(Op::Snapshot, true);
    assert_eq!(act(&n, &id, json!({"shelve": null})).await.status, 202);
    wait_task_cleared(&n, &id).await;
    let s = show(&n, &id).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert!(images_named(&c, "keep-shelved").await.is_empty());
}

async fn wait_task_cleared(n: &Client, id: &str) {
    for _ in 0..300 {
        let s = show(n, id).await;
        if s["OS-EXT-STS:task_state"].is_null() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("server {id} kept its task");
}
