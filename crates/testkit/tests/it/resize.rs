//! Resize, confirm and revert on fake hosts: the flavor, host and placement allocations
//! at each step, upstream's refusals, and a failing step that leaves the server as it was.

use ferro_client::Client;
use ferro_testkit::TestCloud;
use ferro_virt::Op;
use serde_json::{Value, json};

use crate::servers::{allocations, create, image_and_flavor, nova, wait_hosts, wait_status};

async fn flavor(n: &Client, name: &str, vcpus: i64, ram: i64) -> String {
    let r = n
        .post(
            "/flavors",
            &json!({"flavor": {"name": name, "vcpus": vcpus, "ram": ram, "disk": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["flavor"]["id"].as_str().unwrap().to_string()
}

pub(crate) async fn act(n: &Client, id: &str, body: Value) -> ferro_client::Response {
    n.post(&format!("/servers/{id}/action"), &body)
        .await
        .unwrap()
}

/// Resizes server `id` to `flavor`, waits for VERIFY_RESIZE and confirms.
async fn resize_and_confirm(n: &Client, id: &str, flavor: &str) {
    let r = act(n, id, json!({"resize": {"flavorRef": flavor}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_status(n, id, "VERIFY_RESIZE").await;
    let r = act(n, id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 204, "{}", r.body);
}

/// The VCPU each consumer holds in placement.
async fn vcpus(c: &TestCloud, consumer: &str) -> i64 {
    let a = allocations(c, consumer).await;
    a.as_object()
        .unwrap()
        .values()
        .map(|rp| rp["resources"]["VCPU"].as_i64().unwrap_or(0))
        .sum()
}

/// The VCPU the admin project holds in placement, all consumers together.
async fn project_vcpus(c: &TestCloud) -> i64 {
    let project = c.admin_token["token"]["project"]["id"].as_str().unwrap();
    let r = crate::servers::placement(c)
        .get(&format!("/usages?project_id={project}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["usages"]["VCPU"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn resize_then_confirm_or_revert_moves_flavor_host_and_allocations() {
    let c = TestCloud::with_fake_hosts(2).await;
    wait_hosts(&c, 2).await;
    let (image, small) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.47");
    let medium = flavor(&n, "medium", 2, 128).await;
    let large = flavor(&n, "large", 3, 192).await;
    let id = create(&n, "grow", &image, &small).await;
    let before = wait_status(&n, &id, "ACTIVE").await;
    let source = before["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string();

    let r = act(&n, &id, json!({"resize": {"flavorRef": medium}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_status(&n, &id, "VERIFY_RESIZE").await;
    assert_eq!(s["flavor"]["vcpus"], 2, "{s}");
    assert_eq!(vcpus(&c, &id).await, 2);
    // Not again while it waits; confirm it.
    let r = act(&n, &id, json!({"resize": {"flavorRef": large}})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = act(&n, &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["flavor"]["original_name"], "medium");
    assert_eq!(vcpus(&c, &id).await, 2);
    // The migration's hold on the old host is gone: the project uses 2 VCPU in all.
    assert_eq!(project_vcpus(&c).await, 2);
    let r = act(&n, &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 409, "{}", r.body);

    // Resize again and revert: the medium flavor, its host and its allocation come back.
    let host = s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string();
    assert_eq!(
        act(&n, &id, json!({"resize": {"flavorRef": large}}))
            .await
            .status,
        202
    );
    wait_status(&n, &id, "VERIFY_RESIZE").await;
    assert_eq!(vcpus(&c, &id).await, 3);
    let r = act(&n, &id, json!({"revertResize": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["flavor"]["original_name"], "medium");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], host.as_str());
    assert_eq!(vcpus(&c, &id).await, 2);
    assert_eq!(project_vcpus(&c).await, 2);
    assert_ne!(source, "", "the server had a host");

    let actions = n
        .get(&format!("/servers/{id}/os-instance-actions"))
        .await
        .unwrap();
    let names: Vec<&str> = actions.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "revertResize",
            "resize",
            "confirmResize",
            "resize",
            "create"
        ]
    );

    // A stopped server stays stopped through a resize.
    assert_eq!(act(&n, &id, json!({"os-stop": null})).await.status, 202);
    wait_status(&n, &id, "SHUTOFF").await;
    resize_and_confirm(&n, &id, &small).await;
    let s = wait_status(&n, &id, "SHUTOFF").await;
    assert_eq!(s["flavor"]["original_name"], "f1-64");
}

#[tokio::test]
async fn resize_refusals_and_a_failing_host_leave_the_server_as_it_was() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, small) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.47");
    let medium = flavor(&n, "medium", 2, 128).await;
    let id = create(&n, "stay", &image, &small).await;
    wait_status(&n, &id, "ACTIVE").await;

    let r = act(&n, &id, json!({"resize": {"flavorRef": small}})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["badRequest"]["message"],
        "When resizing, instances must change flavor!"
    );
    let r = act(&n, &id, json!({"resize": {"flavorRef": "nope"}})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Flavor nope could not be found."
    );
    assert_eq!(act(&n, &id, json!({"resize": {}})).await.status, 400);
    let r = act(&n, &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        format!("Cannot 'confirmResize' instance {id} while it is in vm_state active")
    );
    // More cores than the quota allows.
    let project = c.admin_token["token"]["project"]["id"].as_str().unwrap();
    n.put(
        &format!("/os-quota-sets/{project}"),
        Some(&json!({"quota_set": {"cores": 1}})),
    )
    .await
    .unwrap();
    let r = act(&n, &id, json!({"resize": {"flavorRef": medium}})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["forbidden"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Quota exceeded for cores: Requested 1"),
        "{}",
        r.body
    );
    n.put(
        &format!("/os-quota-sets/{project}"),
        Some(&json!({"quota_set": {"cores": 20}})),
    )
    .await
    .unwrap();

    // The source cannot power the guest off: the resize is undone.
    c.fake_driver("fake-0").fail(Op::PowerOff, true);
    assert_eq!(
        act(&n, &id, json!({"resize": {"flavorRef": medium}}))
            .await
            .status,
        202
    );
    let mut s = Value::Null;
    for _ in 0..200 {
        s = wait_status(&n, &id, "ACTIVE").await;
        if s["OS-EXT-STS:task_state"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(s["OS-EXT-STS:task_state"].is_null(), "{s}");
    assert_eq!(s["flavor"]["vcpus"], 1);
    assert_eq!(vcpus(&c, &id).await, 1);
    let actions = n
        .get(&format!("/servers/{id}/os-instance-actions"))
        .await
        .unwrap();
    assert_eq!(actions.body["instanceActions"][0]["action"], "resize");
    assert_eq!(actions.body["instanceActions"][0]["message"], "Error");
}

#[tokio::test]
async fn rebuild_changes_image_and_name_keeps_power_and_recovers_from_error() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let (other, _) = image_and_flavor(&c, 1, 65).await;
    let n = nova(&c, "2.57");
    let id = create(&n, "first", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;

    let r = act(
        &n,
        &id,
        json!({"rebuild": {"imageRef": other, "name": "second", "metadata": {"k": "v"},
            "adminPass": "pw", "user_data": "aGk="}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["server"]["status"], "REBUILD");
    assert_eq!(r.body["server"]["adminPass"], "pw");
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["image"]["id"], other.as_str());
    assert_eq!(s["name"], "second");
    assert_eq!(s["metadata"], json!({"k": "v"}));

    let r = act(
        &n,
        &id,
        json!({"rebuild": {"imageRef": "3f2f9a53-1d0e-4d6c-8c1e-55b0f2d4a111"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Cannot find image for rebuild"
    );
    assert_eq!(act(&n, &id, json!({"rebuild": {}})).await.status, 400);
    assert_eq!(
        act(&n, &id, json!({"rebuild": {"imageRef": image, "bogus": 1}}))
            .await
            .status,
        400
    );

    // Stopped stays stopped.
    assert_eq!(act(&n, &id, json!({"os-stop": null})).await.status, 202);
    wait_status(&n, &id, "SHUTOFF").await;
    assert_eq!(
        act(&n, &id, json!({"rebuild": {"imageRef": image}}))
            .await
            .status,
        202
    );
    let s = wait_status(&n, &id, "SHUTOFF").await;
    assert_eq!(s["image"]["id"], image.as_str());

    // A host that cannot build puts the server in ERROR; a rebuild from ERROR recovers it.
    c.fake_driver("fake-0").fail(Op::Spawn, true);
    assert_eq!(
        act(&n, &id, json!({"rebuild": {"imageRef": other}}))
            .await
            .status,
        202
    );
    let s = wait_status(&n, &id, "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .contains("injected failure"),
        "{s}"
    );
    c.fake_driver("fake-0").fail(Op::Spawn, false);
    assert_eq!(
        act(&n, &id, json!({"rebuild": {"imageRef": other}}))
            .await
            .status,
        202
    );
    wait_status(&n, &id, "ACTIVE").await;
}

#[tokio::test]
async fn create_image_uploads_the_guest_disk_or_deletes_the_image() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.45");
    let id = create(&n, "snap", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let glance = c.admin.clone_with_base(&c.image_url);

    let r = act(
        &n,
        &id,
        json!({"createImage": {"name": "snap-1", "metadata": {"purpose": "test"}}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["image_id"].as_str().unwrap().to_string();
    let mut img = Value::Null;
    for _ in 0..200 {
        img = glance
            .get(&format!("/v2/images/{snap}"))
            .await
            .unwrap()
            .body;
        if img["status"] == "active" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(img["status"], "active", "{img}");
    assert_eq!(img["image_type"], "snapshot");
    assert_eq!(img["instance_uuid"], id.as_str());
    assert_eq!(img["base_image_ref"], image.as_str());
    assert_eq!(img["purpose"], "test");
    let data = reqwest::Client::new()
        .get(format!("{}/v2/images/{snap}/file", c.image_url))
        .header("X-Auth-Token", c.admin.token.clone().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(data.starts_with(&format!("fake disk of {id}")), "{data}");
    // The image is active a moment before the agent's report clears the task.
    wait_at_rest(&n, &id).await;

    // Before 2.45 the image is in the Location header.
    let r = act(
        &nova(&c, "2.1"),
        &id,
        json!({"createImage": {"name": "snap-2"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.headers.get("location").is_some());
    assert_eq!(act(&n, &id, json!({"createImage": {}})).await.status, 400);

    // A host that cannot snapshot: the image is deleted, the server is back at rest.
    wait_at_rest(&n, &id).await;
    c.fake_driver("fake-0").fail(Op::Snapshot, true);
    let r = act(&n, &id, json!({"createImage": {"name": "broken"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let broken = r.body["image_id"].as_str().unwrap().to_string();
    let mut gone = false;
    for _ in 0..200 {
        if glance
            .get(&format!("/v2/images/{broken}"))
            .await
            .unwrap()
            .status
            == 404
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the failed snapshot's image is still there");
    wait_at_rest(&n, &id).await;
}

/// Waits until the server is ACTIVE with no task (a snapshot shows ACTIVE while it runs).
pub(crate) async fn wait_at_rest(n: &Client, id: &str) {
    for _ in 0..200 {
        let s = wait_status(n, id, "ACTIVE").await;
        if s["OS-EXT-STS:task_state"].is_null() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server {id} never came to rest");
}

/// The host a server runs on.
fn host_of(server: &Value) -> String {
    server["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn cold_migration_moves_the_server_to_another_host() {
    let c = TestCloud::with_fake_hosts(3).await;
    wait_hosts(&c, 3).await;
    let (image, small) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.56");
    let id = create(&n, "mover", &image, &small).await;
    let source = host_of(&wait_status(&n, &id, "ACTIVE").await);

    // Refusals: the host it is on, a host that does not exist, an unknown key, a member.
    let r = act(&n, &id, json!({"migrate": {"host": source}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Cannot migrate to the host where the server exists."
    );
    let r = act(&n, &id, json!({"migrate": {"host": "nowhere"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Compute host nowhere could not be found."
    );
    let r = act(&n, &id, json!({"migrate": {"colour": "red"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let (_, _) = c.project_user("mig", "mia", "pw", "member").await;
    let (mia, _) = c.login("mia", "pw", Some("mig")).await.unwrap();
    let mia = mia
        .clone_with_base(&format!("{}/v2.1", c.compute_url))
        .with_header("OpenStack-API-Version", "compute 2.56");
    let r = act(&mia, &id, json!({"migrate": null})).await;
    assert!(matches!(r.status, 403 | 404), "{}", r.body);

    // The scheduler's choice: anywhere but the source; confirmed, it stays there with its
    // flavor and only the new host's allocation.
    let r = act(&n, &id, json!({"migrate": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_status(&n, &id, "VERIFY_RESIZE").await;
    let moved = host_of(&s);
    assert_ne!(moved, source, "{s}");
    let r = act(&n, &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), moved);
    assert_eq!(s["flavor"]["original_name"], "f1-64");
    assert_eq!(project_vcpus(&c).await, 1);
    let actions = n
        .get(&format!("/servers/{id}/os-instance-actions"))
        .await
        .unwrap();
    assert_eq!(
        actions.body["instanceActions"][0]["action"],
        "confirmResize"
    );
    assert_eq!(actions.body["instanceActions"][1]["action"], "migrate");

    // 2.56: to the host named; revert brings it back.
    let target = ["fake-0", "fake-1", "fake-2"]
        .into_iter()
        .find(|h| *h != moved)
        .unwrap();
    let r = act(&n, &id, json!({"migrate": {"host": target}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_status(&n, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&s), target);
    let r = act(&n, &id, json!({"revertResize": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), moved);
    assert_eq!(project_vcpus(&c).await, 1);
}

#[tokio::test]
async fn a_cold_migration_with_nowhere_to_go_leaves_the_server_active() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, small) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.56");
    let id = create(&n, "stuck", &image, &small).await;
    wait_status(&n, &id, "ACTIVE").await;
    let r = act(&n, &id, json!({"migrate": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    // The only host is the source: no valid host, the server stays where it was.
    for _ in 0..100 {
        let s = n.get(&format!("/servers/{id}")).await.unwrap().body["server"].clone();
        if s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null() {
            assert_eq!(host_of(&s), "fake-0");
            assert_eq!(project_vcpus(&c).await, 1);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server never came back to ACTIVE");
}

#[tokio::test]
async fn os_migrations_lists_resizes_and_cold_migrations() {
    let c = TestCloud::with_fake_hosts(2).await;
    wait_hosts(&c, 2).await;
    let (image, small) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.80");
    let medium = flavor(&n, "medium", 2, 128).await;
    let id = create(&n, "listed", &image, &small).await;
    wait_status(&n, &id, "ACTIVE").await;
    resize_and_confirm(&n, &id, &medium).await;
    wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(act(&n, &id, json!({"migrate": null})).await.status, 202);
    wait_status(&n, &id, "VERIFY_RESIZE").await;

    // 2.80: newest first, with type, uuid and owner.
    let r = n.get("/os-migrations").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["migrations"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{}", r.body);
    assert_eq!(list[0]["migration_type"], "migration");
    assert_eq!(list[0]["status"], "finished");
    assert_eq!(list[1]["migration_type"], "resize");
    assert_eq!(list[1]["status"], "confirmed");
    assert_eq!(list[0]["instance_uuid"], id.as_str());
    assert_ne!(list[0]["source_compute"], list[0]["dest_compute"]);
    assert!(list[0]["uuid"].is_string() && list[0]["project_id"].is_string());
    assert!(list[0]["old_instance_type_id"].is_null());
    // Filters and paging.
    let r = n.get("/os-migrations?migration_type=resize").await.unwrap();
    assert_eq!(r.body["migrations"].as_array().unwrap().len(), 1);
    let r = n.get("/os-migrations?limit=1").await.unwrap();
    assert_eq!(r.body["migrations"].as_array().unwrap().len(), 1);
    let next = r.body["migrations_links"][0]["href"].as_str().unwrap();
    assert!(next.contains("marker="), "{next}");
    let marker = r.body["migrations"][0]["uuid"].as_str().unwrap();
    let r = n
        .get(&format!("/os-migrations?limit=1&marker={marker}"))
        .await
        .unwrap();
    assert_eq!(r.body["migrations"][0]["migration_type"], "resize");
    assert_eq!(
        n.get("/os-migrations?marker=nope").await.unwrap().status,
        400
    );
    assert_eq!(
        n.get("/os-migrations?colour=red").await.unwrap().status,
        400
    );
    assert_eq!(
        n.get(
            "/os-migrations?changes-since=2026-01-02T00:00:00&changes-before=2026-01-01T00:00:00"
        )
        .await
        .unwrap()
        .status,
        400
    );
    // Before 2.23: no type, no uuid; unknown parameters are ignored.
    let r = nova(&c, "2.1")
        .get("/os-migrations?colour=red")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["migrations"][0].get("migration_type").is_none());
    assert!(r.body["migrations"][0].get("uuid").is_none());
    assert_eq!(r.body["migrations"][0]["migration_type"], Value::Null);
    // A member may not list them.
    let (_, _) = c.project_user("ml", "max", "pw", "member").await;
    let (max, _) = c.login("max", "pw", Some("ml")).await.unwrap();
    let max = max.clone_with_base(&format!("{}/v2.1", c.compute_url));
    assert_eq!(max.get("/os-migrations").await.unwrap().status, 403);
}
