//! Servers end to end on fake hypervisors: the API records the server, the conductor
//! places it through placement, an agent builds it over the bus, and the conductor writes
//! the outcome — create → ACTIVE, list and show bodies, power actions and their state
//! checks, deletes that leave no allocation, reschedules away from a failing host, and
//! upstream's faults for bad input and exceeded quotas.

use std::time::Duration;

use ferro_client::Client;
use ferro_testkit::TestCloud;
use ferro_virt::{Driver, Op};
use serde_json::{Value, json};

/// The admin's compute client at microversion `v`.
pub(crate) fn nova(c: &TestCloud, v: &str) -> Client {
    c.admin
        .clone_with_base(&format!("{}/v2.1", c.compute_url))
        .with_header("OpenStack-API-Version", &format!("compute {v}"))
}

pub(crate) fn placement(c: &TestCloud) -> Client {
    c.admin
        .clone_with_base(&c.placement_url)
        .with_header("OpenStack-API-Version", "placement 1.36")
}

/// An active image with a few bytes, and a flavor: `(image_id, flavor_id)`.
pub(crate) async fn image_and_flavor(c: &TestCloud, vcpus: i64, ram: i64) -> (String, String) {
    let glance = c.admin.clone_with_base(&c.image_url);
    let r = glance
        .post(
            "/v2/images",
            &json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare",
                    "visibility": "public"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let image = r.body["id"].as_str().unwrap().to_string();
    let up = reqwest::Client::new()
        .put(format!("{}/v2/images/{image}/file", c.image_url))
        .header("X-Auth-Token", c.admin.token.clone().unwrap())
        .header("Content-Type", "application/octet-stream")
        .body(vec![7u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(up.status().as_u16(), 204);
    let f = nova(c, "2.1")
        .post(
            "/flavors",
            &json!({"flavor": {"name": format!("f{vcpus}-{ram}"), "vcpus": vcpus, "ram": ram,
                    "disk": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(f.status, 200, "{}", f.body);
    (image, f.body["flavor"]["id"].as_str().unwrap().to_string())
}

pub(crate) fn server_body(name: &str, image: &str, flavor: &str) -> Value {
    json!({"server": {"name": name, "imageRef": image, "flavorRef": flavor, "networks": "none"}})
}

pub(crate) async fn create(n: &Client, name: &str, image: &str, flavor: &str) -> String {
    let r = n
        .post("/servers", &server_body(name, image, flavor))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["server"]["id"].as_str().unwrap().to_string()
}

/// Polls the server until its status is `want` (panics after 15 s).
pub(crate) async fn wait_status(n: &Client, id: &str, want: &str) -> Value {
    for _ in 0..300 {
        let r = n.get(&format!("/servers/{id}")).await.unwrap();
        if r.status == 200 && r.body["server"]["status"] == want {
            return r.body["server"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = n.get(&format!("/servers/{id}")).await.unwrap();
    panic!("server {id} never reached {want}: {}", r.body);
}

pub(crate) async fn wait_gone(n: &Client, id: &str) {
    for _ in 0..300 {
        if n.get(&format!("/servers/{id}")).await.unwrap().status == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server {id} was never deleted");
}

pub(crate) async fn wait_hosts(c: &TestCloud, n: usize) {
    for _ in 0..300 {
        let r = nova(c, "2.1").get("/os-hypervisors").await.unwrap();
        if r.body["hypervisors"].as_array().map_or(0, Vec::len) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the compute hosts never registered");
}

pub(crate) async fn allocations(c: &TestCloud, id: &str) -> Value {
    let r = placement(c)
        .get(&format!("/allocations/{id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["allocations"].clone()
}

#[tokio::test]
async fn create_becomes_active_then_delete_frees_everything() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 2, 256).await;
    let n = nova(&c, "2.47");
    let r = n
        .post("/servers", &server_body("web 1", &image, &flavor))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let s = &r.body["server"];
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["OS-DCF:diskConfig"], "MANUAL");
    assert_eq!(s["security_groups"], json!([{"name": "default"}]));
    assert!(s["adminPass"].as_str().is_some_and(|p| p.len() >= 8));
    assert!(s["links"][0]["href"].as_str().unwrap().ends_with(&id));
    assert!(
        r.header("location")
            .unwrap()
            .ends_with(&format!("/servers/{id}"))
    );

    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-STS:vm_state"], "active");
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-0");
    assert_eq!(s["OS-EXT-AZ:availability_zone"], "nova");
    assert_eq!(s["hostId"].as_str().unwrap().len(), 56);
    assert_eq!(s["addresses"], json!({}));
    assert_eq!(s["flavor"]["vcpus"], 2);
    assert_eq!(s["flavor"]["ram"], 256);
    assert_eq!(s["image"]["id"], image);
    assert_eq!(s["locked"], false);
    assert!(s["OS-SRV-USG:launched_at"].is_string());
    assert_eq!(s["progress"], 0);
    let old = nova(&c, "2.1")
        .get(&format!("/servers/{id}"))
        .await
        .unwrap();
    assert_eq!(old.body["server"]["flavor"]["id"], flavor);
    assert!(old.body["server"].get("locked").is_none());

    // The agent's guest exists, placement holds the claim, the hypervisor shows the use.
    let guests = c.fake_driver("fake-0");
    assert_eq!(
        ferro_virt::Driver::list_instances(guests.as_ref())
            .await
            .unwrap(),
        vec![id.clone()]
    );
    let a = allocations(&c, &id).await;
    let (_, alloc) = a.as_object().unwrap().iter().next().unwrap();
    assert_eq!(alloc["resources"]["VCPU"], 2);
    assert_eq!(alloc["resources"]["MEMORY_MB"], 256);
    let h = nova(&c, "2.1").get("/os-hypervisors/detail").await.unwrap();
    assert_eq!(h.body["hypervisors"][0]["running_vms"], 1, "{}", h.body);
    assert_eq!(h.body["hypervisors"][0]["vcpus_used"], 2);
    let stats = nova(&c, "2.1")
        .get("/os-hypervisors/statistics")
        .await
        .unwrap();
    assert_eq!(stats.body["hypervisor_statistics"]["count"], 1);
    let limits = n.get("/limits").await.unwrap();
    let abs = &limits.body["limits"]["absolute"];
    assert_eq!(abs["totalInstancesUsed"], 1, "{}", limits.body);
    assert_eq!(abs["totalCoresUsed"], 2);
    assert_eq!(abs["totalRAMUsed"], 256);

    // Lists, with filters and pages.
    let second = create(&n, "db", &image, &flavor).await;
    wait_status(&n, &second, "ACTIVE").await;
    let l = n.get("/servers").await.unwrap();
    let ids: Vec<&str> = l.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str(), id.as_str()]);
    let d = n.get("/servers/detail?name=^web").await.unwrap();
    assert_eq!(d.body["servers"].as_array().unwrap().len(), 1);
    assert_eq!(d.body["servers"][0]["status"], "ACTIVE");
    let shut = n.get("/servers/detail?status=SHUTOFF").await.unwrap();
    assert_eq!(shut.body["servers"], json!([]));
    let page = n.get("/servers?limit=1").await.unwrap();
    assert_eq!(page.body["servers"].as_array().unwrap().len(), 1);
    assert!(
        page.body["servers_links"][0]["href"]
            .as_str()
            .unwrap()
            .contains(&format!("marker={second}"))
    );
    let rest = n.get(&format!("/servers?marker={second}")).await.unwrap();
    assert_eq!(rest.body["servers"][0]["id"], id);
    let bad = n.get("/servers?marker=nope").await.unwrap();
    assert_eq!(bad.status, 400);

    let u = n
        .put(
            &format!("/servers/{id}"),
            Some(&json!({"server": {"name": "web-2", "description": "front"}})),
        )
        .await
        .unwrap();
    assert_eq!(u.status, 200, "{}", u.body);
    assert_eq!(u.body["server"]["name"], "web-2");
    assert_eq!(u.body["server"]["description"], "front");

    for sid in [&id, &second] {
        let d = n.delete(&format!("/servers/{sid}")).await.unwrap();
        assert_eq!(d.status, 204, "{}", d.body);
    }
    for sid in [&id, &second] {
        wait_gone(&n, sid).await;
        assert_eq!(allocations(&c, sid).await, json!({}));
    }
    assert!(
        ferro_virt::Driver::list_instances(guests.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
    let limits = n.get("/limits").await.unwrap();
    assert_eq!(limits.body["limits"]["absolute"]["totalInstancesUsed"], 0);
}

#[tokio::test]
async fn a_failing_host_reschedules_to_another_then_errors_when_none_is_left() {
    let c = TestCloud::with_fake_hosts(2).await;
    wait_hosts(&c, 2).await;
    let (image, flavor) = image_and_flavor(&c, 1, 128).await;
    let n = nova(&c, "2.37");
    // Equal hosts weigh the same, so fake-0 comes first; make it fail.
    c.fake_driver("fake-0").fail(Op::Spawn, true);
    let id = create(&n, "retry", &image, &flavor).await;
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-1");
    let a = allocations(&c, &id).await;
    assert_eq!(a.as_object().unwrap().len(), 1);
    assert!(
        ferro_virt::Driver::list_instances(c.fake_driver("fake-0").as_ref())
            .await
            .unwrap()
            .is_empty(),
        "the failed build was undone"
    );

    // Both hosts fail it: upstream's MaxRetriesExceeded once the alternates run out
    // (conductor build_instances), the last host's reason in the details admins see.
    c.fake_driver("fake-1").fail(Op::Spawn, true);
    let doomed = create(&n, "doomed", &image, &flavor).await;
    let s = wait_status(&n, &doomed, "ERROR").await;
    assert_eq!(s["fault"]["code"], 500);
    assert_eq!(
        s["fault"]["message"],
        format!(
            "Exceeded maximum number of retries. Exhausted all hosts available for retrying \
             build failures for instance {doomed}."
        ),
        "{s}"
    );
    assert!(
        s["fault"]["details"]
            .as_str()
            .unwrap()
            .contains("injected failure"),
        "{s}"
    );
    assert_eq!(allocations(&c, &doomed).await, json!({}));
    // An ERROR server without a host deletes at once.
    let d = n.delete(&format!("/servers/{doomed}")).await.unwrap();
    assert_eq!(d.status, 204);
    assert_eq!(
        n.get(&format!("/servers/{doomed}")).await.unwrap().status,
        404
    );
}

#[tokio::test]
async fn max_attempts_bounds_the_reschedules() {
    let c = TestCloud::start_with(|cfg| {
        cfg.compute.fake_hosts = 3;
        cfg.compute.max_attempts = 2;
    })
    .await
    .unwrap();
    wait_hosts(&c, 3).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.37");
    for h in ["fake-0", "fake-1", "fake-2"] {
        c.fake_driver(h).fail(Op::Spawn, true);
    }
    // Two hosts tried, a third left: upstream's populate_retry names the attempts and the
    // last failure.
    let id = create(&n, "twice", &image, &flavor).await;
    let s = wait_status(&n, &id, "ERROR").await;
    let message = s["fault"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Exceeded maximum number of retries. Exceeded max scheduling attempts 2 for \
             instance {id}. Last exception: "
        )) && message.contains("injected failure"),
        "{s}"
    );
    // Admins see why the build failed; the allocation is gone.
    assert!(
        s["fault"]["details"]
            .as_str()
            .unwrap()
            .contains("injected failure")
    );
    assert_eq!(allocations(&c, &id).await, json!({}));

    // A forced host is not rescheduled at all: the fault is the build's own reason, as
    // upstream's compute records it when the request has no retry information.
    let mut forced = server_body("forced", &image, &flavor);
    forced["server"]["availability_zone"] = json!("nova:fake-1");
    let r = n.post("/servers", &forced).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&n, &id, "ERROR").await;
    let message = s["fault"]["message"].as_str().unwrap();
    assert!(message.contains("injected failure of Spawn"), "{s}");
    assert!(!message.starts_with("Exceeded"), "{s}");
    assert_eq!(allocations(&c, &id).await, json!({}));
}

#[tokio::test]
async fn bad_input_and_exceeded_quotas_answer_nova_faults() {
    let c = TestCloud::with_fake_hosts(1).await;
    let (image, flavor) = image_and_flavor(&c, 4, 512).await;
    let n = nova(&c, "2.37");
    let fault = |r: &ferro_client::Response, name: &str| {
        r.body[name]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    let r = n
        .post(
            "/servers",
            &server_body("x", "70a599e0-31e7-49b7-b260-868f441e862b", &flavor),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(fault(&r, "badRequest"), "Can not find requested image");
    let r = n
        .post("/servers", &server_body("x", &image, "no-such-flavor"))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(fault(&r, "badRequest"), "Invalid flavorRef provided.");
    let mut no_net = server_body("x", &image, &flavor);
    no_net["server"].as_object_mut().unwrap().remove("networks");
    assert_eq!(n.post("/servers", &no_net).await.unwrap().status, 400);
    let mut odd_net = server_body("x", &image, &flavor);
    odd_net["server"]["networks"] = json!("everything");
    assert_eq!(n.post("/servers", &odd_net).await.unwrap().status, 400);
    let r = n
        .post("/servers", &server_body(" padded", &image, &flavor))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let mut bad_key = server_body("x", &image, &flavor);
    bad_key["server"]["key_name"] = json!("nokey");
    let r = n.post("/servers", &bad_key).await.unwrap();
    assert_eq!(fault(&r, "badRequest"), "Invalid key_name provided.");
    let mut bad_az = server_body("x", &image, &flavor);
    bad_az["server"]["availability_zone"] = json!("elsewhere");
    assert_eq!(n.post("/servers", &bad_az).await.unwrap().status, 400);
    let mut counts = server_body("x", &image, &flavor);
    counts["server"]["min_count"] = json!(3);
    counts["server"]["max_count"] = json!(2);
    let r = n.post("/servers", &counts).await.unwrap();
    assert_eq!(fault(&r, "badRequest"), "min_count must be <= max_count");

    // The image as local boot disk, as the CLI sends it, is a boot source; volumes are not.
    let mut bdm = server_body("bdm", "", &flavor);
    bdm["server"].as_object_mut().unwrap().remove("imageRef");
    bdm["server"]["block_device_mapping_v2"] = json!([{"uuid": image, "source_type": "image",
        "destination_type": "local", "boot_index": 0, "delete_on_termination": true}]);
    let r = n.post("/servers", &bdm).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let booted = r.body["server"]["id"].as_str().unwrap().to_string();
    let shown = n.get(&format!("/servers/{booted}")).await.unwrap();
    assert_eq!(shown.body["server"]["image"]["id"], image);
    assert_eq!(
        n.delete(&format!("/servers/{booted}"))
            .await
            .unwrap()
            .status,
        204
    );
    wait_gone(&n, &booted).await;
    bdm["server"]["block_device_mapping_v2"][0]["destination_type"] = json!("volume");
    assert_eq!(n.post("/servers", &bdm).await.unwrap().status, 400);

    // Default quotas: 10 instances, 20 cores. 6 servers of 4 vCPUs need 24 cores.
    let mut many = server_body("many", &image, &flavor);
    many["server"]["min_count"] = json!(6);
    let r = n.post("/servers", &many).await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        fault(&r, "forbidden"),
        "Quota exceeded for cores: Requested 24, but already used 0 of 20 cores"
    );
    let project = c.admin_token["token"]["project"]["id"].as_str().unwrap();
    let q = n
        .put(
            &format!("/os-quota-sets/{project}"),
            Some(&json!({"quota_set": {"instances": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(q.status, 200, "{}", q.body);
    // max_count shrinks to what fits; min_count 1 fits once.
    let mut two = server_body("two", &image, &flavor);
    two["server"]["max_count"] = json!(2);
    let r = n.post("/servers", &two).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let r = n
        .post("/servers", &server_body("third", &image, &flavor))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(fault(&r, "forbidden").starts_with("Quota exceeded for instances"));
    let d = n
        .get(&format!("/os-quota-sets/{project}/detail"))
        .await
        .unwrap();
    assert_eq!(d.body["quota_set"]["instances"]["in_use"], 1, "{}", d.body);
    assert_eq!(d.body["quota_set"]["cores"]["in_use"], 4);
}

#[tokio::test]
async fn actions_follow_upstream_state_checks() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.73");
    let id = create(&n, "act", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let act = async |body: Value| {
        n.post(&format!("/servers/{id}/action"), &body)
            .await
            .unwrap()
    };

    let r = act(json!({"os-start": null})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        format!("Cannot 'start' instance {id} while it is in vm_state active")
    );
    assert_eq!(act(json!({"os-stop": null})).await.status, 202);
    let s = wait_status(&n, &id, "SHUTOFF").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4);
    assert_eq!(act(json!({"os-stop": null})).await.status, 409);
    assert_eq!(act(json!({"pause": null})).await.status, 409);
    assert_eq!(act(json!({"os-start": null})).await.status, 202);
    wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(act(json!({"pause": null})).await.status, 202);
    wait_status(&n, &id, "PAUSED").await;
    let r = act(json!({"suspend": null})).await;
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        format!("Cannot 'suspend' instance {id} while it is in vm_state paused")
    );
    assert_eq!(act(json!({"unpause": null})).await.status, 202);
    wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(act(json!({"suspend": null})).await.status, 202);
    wait_status(&n, &id, "SUSPENDED").await;
    assert_eq!(act(json!({"resume": null})).await.status, 202);
    wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(act(json!({"reboot": {"type": "HARD"}})).await.status, 202);
    wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(
        act(json!({"reboot": {"type": "sideways"}})).await.status,
        400
    );
    assert_eq!(act(json!({"frobnicate": null})).await.status, 400);

    // A lock with its reason (2.73); it stops non-admins, not the admin.
    c.project_user("proj-b", "member-b", "pw-member-b", "member")
        .await;
    let r = act(json!({"lock": {"locked_reason": "maintenance"}})).await;
    assert_eq!(r.status, 202);
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["locked"], true);
    assert_eq!(s["locked_reason"], "maintenance");
    // The admin may still act on a locked server.
    assert_eq!(act(json!({"os-stop": null})).await.status, 202);
    wait_status(&n, &id, "SHUTOFF").await;
    assert_eq!(act(json!({"unlock": null})).await.status, 202);

    // Another project sees nothing.
    let (other, _) = c
        .login("member-b", "pw-member-b", Some("proj-b"))
        .await
        .unwrap();
    let other = other.clone_with_base(&format!("{}/v2.1", c.compute_url));
    assert_eq!(
        other.get(&format!("/servers/{id}")).await.unwrap().status,
        404
    );
    assert_eq!(
        other.get("/servers").await.unwrap().body["servers"],
        json!([])
    );
    assert_eq!(
        other
            .post(&format!("/servers/{id}/action"), &json!({"os-start": null}))
            .await
            .unwrap()
            .status,
        404
    );

    assert_eq!(
        n.delete(&format!("/servers/{id}")).await.unwrap().status,
        204
    );
    wait_gone(&n, &id).await;
}

#[tokio::test]
async fn console_output_comes_from_the_agent_tailed_to_length() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.37");
    let id = create(&n, "console", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let action = format!("/servers/{id}/action");

    let r = n
        .post(&action, &json!({"os-getConsoleOutput": {}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let all = r.body["output"].as_str().unwrap().to_string();
    assert!(all.starts_with("fake: booting instance-"), "{all}");
    let r = n
        .post(&action, &json!({"os-getConsoleOutput": {"length": "2"}}))
        .await
        .unwrap();
    // The log ends with a newline: its last two lines are the prompt and "".
    assert_eq!(r.body["output"], "login:\n");
    let r = n
        .post(&action, &json!({"os-getConsoleOutput": {"length": -1}}))
        .await
        .unwrap();
    assert_eq!(r.body["output"], all);
    for bad in [json!(-2), json!("ten"), json!(1.5)] {
        let r = n
            .post(&action, &json!({"os-getConsoleOutput": {"length": bad}}))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }

    // A server no host took has no console yet.
    let f = n
        .post(
            "/flavors",
            &json!({"flavor": {"name": "huge", "vcpus": 1, "ram": 64, "disk": 1000000}}),
        )
        .await
        .unwrap();
    let huge = f.body["flavor"]["id"].as_str().unwrap().to_string();
    let nowhere = create(&n, "nowhere", &image, &huge).await;
    wait_status(&n, &nowhere, "ERROR").await;
    let r = n
        .post(
            &format!("/servers/{nowhere}/action"),
            &json!({"os-getConsoleOutput": {}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        format!("Instance {nowhere} is not ready")
    );
}

/// A host that stops answering mid-build (its agent hung or killed) must not leave the
/// server building forever: the conductor's sweep fails it and gives its resources back.
#[tokio::test]
async fn the_sweep_fails_a_build_whose_host_went_silent() {
    let c = TestCloud::start_with(|cfg| {
        cfg.compute.fake_hosts = 1;
        cfg.compute.task_timeout = 1;
    })
    .await
    .unwrap();
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.37");
    c.fake_driver("fake-0").set_delay(Duration::from_secs(3600));
    let id = create(&n, "stuck", &image, &flavor).await;
    for _ in 0..100 {
        let s = n.get(&format!("/servers/{id}")).await.unwrap();
        if s.body["server"]["OS-EXT-STS:task_state"] == "spawning" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(allocations(&c, &id).await.as_object().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.cloud.compute.sweep().await.unwrap(), 1);
    let s = wait_status(&n, &id, "ERROR").await;
    assert_eq!(
        s["fault"]["message"],
        "Instance build timed out. Set to error state."
    );
    assert!(allocations(&c, &id).await.as_object().unwrap().is_empty());
    // Nothing else is stale: a second sweep touches nothing.
    assert_eq!(c.cloud.compute.sweep().await.unwrap(), 0);
}

/// Regression: a rename while the conductor moved the build on answered 409 (the update's
/// compare-and-swap lost to a task state change upstream does not care about).
#[tokio::test]
async fn renames_during_a_build_never_conflict() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    c.fake_driver("fake-0")
        .set_delay(Duration::from_millis(300));
    let n = nova(&c, "2.37");
    let id = create(&n, "busy", &image, &flavor).await;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let n = n.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for k in 0..60 {
                let r = n
                    .put(
                        &format!("/servers/{id}"),
                        Some(&json!({"server": {"name": format!("busy-{w}-{k}")}})),
                    )
                    .await
                    .unwrap();
                statuses.push((r.status, r.body.to_string()));
                if r.status == 200 && r.body["server"]["status"] == "ACTIVE" {
                    break;
                }
            }
            statuses
        }));
    }
    for t in tasks {
        for (status, body) in t.await.unwrap() {
            assert_eq!(status, 200, "{body}");
        }
    }
    wait_status(&n, &id, "ACTIVE").await;
}

#[tokio::test]
async fn servers_are_listed_by_reservation_id() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.37");
    create(&n, "alone", &image, &flavor).await;
    let mut pair = server_body("pair", &image, &flavor);
    pair["server"]["min_count"] = json!(2);
    pair["server"]["return_reservation_id"] = json!(true);
    let r = n.post("/servers", &pair).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let rid = r.body["reservation_id"].as_str().unwrap().to_string();
    let r = n
        .get(&format!("/servers/detail?reservation_id={rid}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = r.body["servers"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{}", r.body);
    assert!(
        listed
            .iter()
            .all(|s| s["OS-EXT-SRV-ATTR:reservation_id"] == rid.as_str())
    );
    let r = n.get("/servers?reservation_id=r-nothing").await.unwrap();
    assert_eq!(r.body["servers"], json!([]));
}

#[tokio::test]
async fn recorded_power_states_follow_the_guests() {
    let c = TestCloud::start_with(|c| {
        c.compute.fake_hosts = 1;
        c.compute.sync_power_state_interval = 1;
    })
    .await
    .unwrap();
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.37");
    let id = create(&n, "drifts", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let driver = c.fake_driver("fake-0");

    // The guest shuts itself down: the server is SHUTOFF, and starts again on request.
    assert!(driver.set_power_state(&id, ferro_virt::PowerState::Shutdown));
    let s = wait_status(&n, &id, "SHUTOFF").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4, "{s}");
    let r = n
        .post(&format!("/servers/{id}/action"), &json!({"os-start": null}))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    wait_status(&n, &id, "ACTIVE").await;

    // Stopped, the guest is started behind the API's back: it is stopped again.
    let r = n
        .post(&format!("/servers/{id}/action"), &json!({"os-stop": null}))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    wait_status(&n, &id, "SHUTOFF").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(driver.set_power_state(&id, ferro_virt::PowerState::Running));
    for _ in 0..100 {
        if driver.power_state(&id).await.unwrap() == ferro_virt::PowerState::Shutdown {
            let s = wait_status(&n, &id, "SHUTOFF").await;
            assert_eq!(s["OS-EXT-STS:power_state"], 4, "{s}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the guest of a stopped server kept running");
}
