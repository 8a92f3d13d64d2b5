//! Host aggregates end to end: `/os-aggregates` with upstream's bodies and faults, the
//! membership mirrored on the hosts' resource providers in placement, availability zones
//! made by aggregates (zone list, services, hosts, the server's zone, the scheduler), and
//! flavors whose `aggregate_instance_extra_specs` choose the hosts.

use ferro_client::Client;
use ferro_testkit::TestCloud;
use serde_json::{Value, json};

use crate::scheduler::cloud;
use crate::servers::{image_and_flavor, nova, placement, wait_status};

async fn create_aggregate(n: &Client, name: &str, zone: Option<&str>) -> Value {
    let r = n
        .post(
            "/os-aggregates",
            &json!({"aggregate": {"name": name, "availability_zone": zone}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["aggregate"].clone()
}

async fn update(n: &Client, id: &Value, aggregate: Value) -> (u16, Value) {
    let r = n
        .put(
            &format!("/os-aggregates/{id}"),
            Some(&json!({ "aggregate": aggregate })),
        )
        .await
        .unwrap();
    (r.status, r.body)
}

async fn action(n: &Client, id: &Value, body: Value) -> (u16, Value) {
    let r = n
        .post(&format!("/os-aggregates/{id}/action"), &body)
        .await
        .unwrap();
    (r.status, r.body)
}

async fn set_metadata(n: &Client, id: &Value, metadata: Value) -> (u16, Value) {
    action(n, id, json!({"set_metadata": {"metadata": metadata}})).await
}

async fn add_host(n: &Client, id: &Value, host: &str) -> (u16, Value) {
    action(n, id, json!({"add_host": {"host": host}})).await
}

fn message(body: &Value) -> &str {
    body.as_object()
        .and_then(|m| m.values().next())
        .and_then(|f| f["message"].as_str())
        .unwrap_or_default()
}

/// The aggregates of `host`'s resource provider in placement.
async fn provider_aggregates(c: &TestCloud, host: &str) -> Value {
    let p = placement(c);
    let r = p
        .get(&format!("/resource_providers?name={host}"))
        .await
        .unwrap();
    let rp = r.body["resource_providers"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = p
        .get(&format!("/resource_providers/{rp}/aggregates"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["aggregates"].clone()
}

async fn boot(n: &Client, image: &str, flavor: &str, zone: Option<&str>) -> (u16, Value) {
    let mut body = json!({"server": {"name": "s", "imageRef": image, "flavorRef": flavor,
        "networks": "none"}});
    if let Some(z) = zone {
        body["server"]["availability_zone"] = json!(z);
    }
    let r = n.post("/servers", &body).await.unwrap();
    (r.status, r.body)
}

/// Boots a server and waits for `status`; the server's body.
async fn boot_until(
    n: &Client,
    image: &str,
    flavor: &str,
    zone: Option<&str>,
    status: &str,
) -> Value {
    let (code, body) = boot(n, image, flavor, zone).await;
    assert_eq!(code, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_string();
    wait_status(n, &id, status).await
}

#[tokio::test]
async fn aggregates_are_managed_with_upstream_bodies_and_faults() {
    let c = cloud(2).await;
    let n = nova(&c, "2.1");
    let n41 = nova(&c, "2.41");
    let r = n.get("/os-aggregates").await.unwrap();
    assert_eq!((r.status, r.body.clone()), (200, json!({"aggregates": []})));

    // Create: 200 without hosts and metadata; the uuid from 2.41.
    let a = create_aggregate(&n, "agg1", Some("az1")).await;
    assert_eq!(a["availability_zone"], "az1");
    assert_eq!(a["deleted"], false);
    assert!(
        a["deleted_at"].is_null() && a["updated_at"].is_null(),
        "{a}"
    );
    assert!(a["created_at"].as_str().unwrap().contains('T'), "{a}");
    assert!(a.get("hosts").is_none() && a.get("metadata").is_none() && a.get("uuid").is_none());
    let id = a["id"].clone();
    let b = create_aggregate(&n41, "agg2", None).await;
    assert!(b["availability_zone"].is_null(), "{b}");
    assert_eq!(b["uuid"].as_str().unwrap().len(), 36, "{b}");
    let b_id = b["id"].clone();

    // Bad input.
    let r = n
        .post("/os-aggregates", &json!({"aggregate": {"name": "agg1"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(message(&r.body), "Aggregate agg1 already exists.");
    for bad in [
        json!({"aggregate": {"name": ""}}),
        json!({"aggregate": {"name": "x".repeat(256)}}),
        json!({"aggregate": {"name": " lead"}}),
        json!({"aggregate": {"name": "z", "availability_zone": "a:b"}}),
        json!({"aggregate": {"name": "z", "availability_zone": ""}}),
        json!({"aggregate": {"name": "z", "extra": 1}}),
        json!({"aggregate": {}}),
    ] {
        let r = n.post("/os-aggregates", &bad).await.unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = n
        .post("/os-aggregates", &json!({"aggregate": {"name": " lead"}}))
        .await
        .unwrap();
    assert!(
        message(&r.body).starts_with("An invalid 'name' value was provided."),
        "{}",
        r.body
    );
    for (path, status) in [("x", 400), ("999", 404)] {
        let r = n.get(&format!("/os-aggregates/{path}")).await.unwrap();
        assert_eq!(r.status, status, "{}", r.body);
    }
    let r = n.get("/os-aggregates/999").await.unwrap();
    assert_eq!(message(&r.body), "Aggregate 999 could not be found.");

    // Hosts: unknown, added, added twice, in two zones.
    let (s, body) = add_host(&n, &id, "no-such-host").await;
    assert_eq!(
        (s, message(&body)),
        (404, "Compute host no-such-host could not be found.")
    );
    let (s, body) = add_host(&n, &json!(999), "fake-0").await;
    assert_eq!(s, 404, "{body}");
    let (s, body) = add_host(&n, &id, "fake-0").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["aggregate"]["hosts"], json!(["fake-0"]));
    assert_eq!(
        body["aggregate"]["metadata"],
        json!({"availability_zone": "az1"})
    );
    let (s, body) = add_host(&n, &id, "fake-0").await;
    assert_eq!(
        (s, message(&body).to_string()),
        (409, format!("Aggregate {id} already has host fake-0."))
    );
    let other = create_aggregate(&n, "agg-az2", Some("az2")).await;
    let (s, body) = add_host(&n, &other["id"], "fake-0").await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(
        message(&body),
        format!(
            "Cannot add host to aggregate {}. Reason: One or more hosts already in \
             availability zone(s) ['az1'].",
            other["id"]
        )
    );
    // An aggregate without a zone takes it; it may not then name another zone.
    let (s, body) = add_host(&n, &b_id, "fake-0").await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = set_metadata(&n, &b_id, json!({"availability_zone": "az9"})).await;
    assert_eq!(s, 400, "{body}");
    assert!(message(&body).contains("['az1']"), "{body}");

    // Placement mirrors the membership on the host's provider.
    let on_rp = provider_aggregates(&c, "fake-0").await;
    let uuid = |id: &Value| {
        let n41 = n41.clone();
        let id = id.clone();
        async move {
            n41.get(&format!("/os-aggregates/{id}")).await.unwrap().body["aggregate"]["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (u1, u2) = (uuid(&id).await, uuid(&b_id).await);
    let mut want = vec![u1.clone(), u2.clone()];
    want.sort();
    let mut got: Vec<String> = serde_json::from_value(on_rp).unwrap();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(provider_aggregates(&c, "fake-1").await, json!([]));

    // Metadata: set, remove with null, no empty zone, keys as upstream's schema allows.
    let (s, body) = set_metadata(&n, &id, json!({"ssd": "true", "gone": "soon"})).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = set_metadata(&n, &id, json!({"gone": null})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["aggregate"]["metadata"],
        json!({"availability_zone": "az1", "ssd": "true"})
    );
    assert!(body["aggregate"]["updated_at"].is_string(), "{body}");
    let (s, body) = set_metadata(&n, &id, json!({"availability_zone": null})).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        message(&body),
        format!(
            "Cannot update metadata of aggregate {id}. Reason: Aggregate agg1 does not support \
             empty named availability zone."
        )
    );
    for bad in [
        json!({"set_metadata": {"metadata": {"bad/key": "x"}}}),
        json!({"set_metadata": {"metadata": {"k": 1}}}),
        json!({"set_metadata": {}}),
        json!({"add_host": {"host": "bad host"}}),
        json!({"remove_host": {}}),
        json!({"no_such": {}}),
    ] {
        let (s, body) = action(&n, &id, bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {body}");
    }

    // Update: name (spaces stripped) and zone; a taken name is 409, nothing is 400.
    let (s, body) = update(&n, &id, json!({"name": "agg2"})).await;
    assert_eq!(s, 409, "{body}");
    let (s, body) = update(&n, &id, json!({})).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = update(
        &n,
        &id,
        json!({"name": "  renamed ", "availability_zone": "az1b"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["aggregate"]["name"], "renamed");
    assert_eq!(body["aggregate"]["availability_zone"], "az1b");
    assert_eq!(body["aggregate"]["hosts"], json!(["fake-0"]));

    // The list shows everything; a member may not see it.
    let r = n41.get("/os-aggregates").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<&str> = r.body["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["renamed", "agg2", "agg-az2"]);
    assert!(r.body["aggregates"][0]["uuid"].is_string());
    c.project_user("proj-agg", "member-agg", "pw-member-agg", "member")
        .await;
    let (member, _) = c
        .login("member-agg", "pw-member-agg", Some("proj-agg"))
        .await
        .unwrap();
    let member = member.clone_with_base(&format!("{}/v2.1", c.compute_url));
    assert_eq!(member.get("/os-aggregates").await.unwrap().status, 403);
    let r = member
        .post("/os-aggregates", &json!({"aggregate": {"name": "m"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    let (s, _) = add_host(&member, &id, "fake-1").await;
    assert_eq!(s, 403);

    // Delete: not while hosts remain; remove_host of a non-member is 404.
    let r = n.delete(&format!("/os-aggregates/{id}")).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        message(&r.body),
        format!("Cannot remove host from aggregate {id}. Reason: Host aggregate is not empty.")
    );
    for host in ["fake-1", "no-such-host"] {
        let (s, body) = action(&n, &id, json!({"remove_host": {"host": host}})).await;
        assert_eq!(s, 404, "{body}");
        assert_eq!(
            message(&body),
            format!("Cannot remove host {host} in aggregate {id}")
        );
    }
    for agg in [&id, &b_id] {
        let (s, body) = action(&n, agg, json!({"remove_host": {"host": "fake-0"}})).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["aggregate"]["hosts"], json!([]));
    }
    assert_eq!(provider_aggregates(&c, "fake-0").await, json!([]));
    let r = n.delete(&format!("/os-aggregates/{id}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        n.get(&format!("/os-aggregates/{id}")).await.unwrap().status,
        404
    );
    assert_eq!(
        n.delete(&format!("/os-aggregates/{id}"))
            .await
            .unwrap()
            .status,
        404
    );
    // Its name is free again.
    create_aggregate(&n, "agg1", None).await;
}

#[tokio::test]
async fn an_aggregate_zone_is_its_hosts_zone_everywhere() {
    let c = cloud(2).await;
    let n = nova(&c, "2.53");
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let a = create_aggregate(&n, "zone-a", Some("az1")).await;
    let (s, body) = add_host(&n, &a["id"], "fake-1").await;
    assert_eq!(s, 200, "{body}");
    // A zone without hosts is nobody's zone.
    create_aggregate(&n, "empty-zone", Some("az-empty")).await;

    let r = n.get("/os-availability-zone").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let zones: Vec<&str> = r.body["availabilityZoneInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zoneName"].as_str().unwrap())
        .collect();
    assert_eq!(zones, ["az1", "nova"], "{}", r.body);
    let r = n.get("/os-availability-zone/detail").await.unwrap();
    let info = r.body["availabilityZoneInfo"].as_array().unwrap();
    let az1 = info.iter().find(|z| z["zoneName"] == "az1").unwrap();
    assert!(az1["hosts"]["fake-1"]["nova-compute"].is_object(), "{az1}");
    let nova_zone = info.iter().find(|z| z["zoneName"] == "nova").unwrap();
    assert!(nova_zone["hosts"].get("fake-1").is_none(), "{nova_zone}");
    let r = n.get("/os-services?binary=nova-compute").await.unwrap();
    for s in r.body["services"].as_array().unwrap() {
        let want = if s["host"] == "fake-1" { "az1" } else { "nova" };
        assert_eq!(s["zone"], want, "{s}");
    }
    let services = r.body["services"].clone();
    // os-hosts is gone from 2.43.
    let r = nova(&c, "2.1").get("/os-hosts?zone=az1").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["hosts"],
        json!([{"host_name": "fake-1", "service": "compute", "zone": "az1"}])
    );

    // The scheduler honours the zone (the name alone would choose fake-0 first).
    for _ in 0..2 {
        let s = boot_until(&n, &image, &flavor, Some("az1"), "ACTIVE").await;
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-1", "{s}");
        assert_eq!(s["OS-EXT-AZ:availability_zone"], "az1", "{s}");
    }
    let s = boot_until(&n, &image, &flavor, Some("nova"), "ACTIVE").await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-0", "{s}");
    assert_eq!(s["OS-EXT-AZ:availability_zone"], "nova", "{s}");
    // No zone asked: the server takes its host's zone.
    let s = boot_until(&n, &image, &flavor, None, "ACTIVE").await;
    let want = if s["OS-EXT-SRV-ATTR:host"] == "fake-1" {
        "az1"
    } else {
        "nova"
    };
    assert_eq!(s["OS-EXT-AZ:availability_zone"], want, "{s}");
    // A zone whose hosts cannot take the server: no valid host. fake-1 forced down still
    // counts as enabled (its zone is available); the scheduler leaves it out.
    let uuid = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["host"] == "fake-1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let force = |down: bool| {
        let n = n.clone();
        let uuid = uuid.clone();
        async move {
            let r = n
                .put(
                    &format!("/os-services/{uuid}"),
                    Some(&json!({"forced_down": down})),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let shown = force(true).await;
    assert_eq!(shown["service"]["zone"], "az1", "{shown}");
    let s = boot_until(&n, &image, &flavor, Some("az1"), "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host"),
        "{s}"
    );
    force(false).await;
    for zone in ["az-empty", "no-such-zone"] {
        let (code, body) = boot(&n, &image, &flavor, Some(zone)).await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(
            message(&body),
            "The requested availability zone is not available"
        );
    }

    // With instances on it, fake-1 may neither change zone nor leave it.
    let (s, body) = update(&n, &a["id"], json!({"availability_zone": "az1-renamed"})).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        message(&body).ends_with("Reason: One or more hosts contain instances in this zone."),
        "{body}"
    );
    let (s, body) = action(&n, &a["id"], json!({"remove_host": {"host": "fake-1"}})).await;
    assert_eq!(s, 409, "{body}");
    assert!(
        message(&body).contains("would change from 'az1' to 'None'"),
        "{body}"
    );
    // fake-0 has instances in the default zone: a zoned aggregate may not take it, one
    // without a zone may.
    let z2 = create_aggregate(&n, "zone-b", Some("az2")).await;
    let (s, body) = add_host(&n, &z2["id"], "fake-0").await;
    assert_eq!(s, 409, "{body}");
    assert!(message(&body).contains("from 'None' to 'az2'"), "{body}");
    let plain = create_aggregate(&n, "plain", None).await;
    let (s, body) = add_host(&n, &plain["id"], "fake-0").await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn flavor_aggregate_extra_specs_choose_the_hosts() {
    let c = cloud(2).await;
    let n = nova(&c, "2.53");
    let (image, plain) = image_and_flavor(&c, 1, 64).await;
    let fast = create_aggregate(&n, "fast", None).await;
    let (s, body) = set_metadata(&n, &fast["id"], json!({"ssd": "true", "cores": "16"})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(add_host(&n, &fast["id"], "fake-1").await.0, 200);
    let zoned = create_aggregate(&n, "zoned", Some("az1")).await;
    assert_eq!(add_host(&n, &zoned["id"], "fake-0").await.0, 200);

    let flavor_with = |name: &str, specs: Value| {
        let n = n.clone();
        let name = name.to_string();
        async move {
            let r = n
                .post(
                    "/flavors",
                    &json!({"flavor": {"name": name, "vcpus": 1, "ram": 64, "disk": 1}}),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            let id = r.body["flavor"]["id"].as_str().unwrap().to_string();
            let r = n
                .post(
                    &format!("/flavors/{id}/os-extra_specs"),
                    &json!({"extra_specs": specs}),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            id
        }
    };
    let scoped = flavor_with(
        "ssd",
        json!({"aggregate_instance_extra_specs:ssd": "true", "hw:cpu_policy": "shared"}),
    )
    .await;
    let unscoped = flavor_with("cores", json!({"cores": ">= 8"})).await;
    let missing = flavor_with("gpu", json!({"aggregate_instance_extra_specs:gpu": "true"})).await;

    for flavor in [&scoped, &unscoped, &scoped] {
        let s = boot_until(&n, &image, flavor, None, "ACTIVE").await;
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-1", "{s}");
        assert_eq!(s["OS-EXT-AZ:availability_zone"], "nova", "{s}");
    }
    // No host's aggregates have a gpu; the ssd host is not in az1.
    let s = boot_until(&n, &image, &missing, None, "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host"),
        "{s}"
    );
    let s = boot_until(&n, &image, &scoped, Some("az1"), "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host"),
        "{s}"
    );
    // Without extra specs any host will do; in az1 that is fake-0.
    let s = boot_until(&n, &image, &plain, Some("az1"), "ACTIVE").await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-0", "{s}");
    assert_eq!(s["OS-EXT-AZ:availability_zone"], "az1", "{s}");

    // The filter follows metadata changes at once: fake-1 loses its ssd.
    let (s, body) = set_metadata(&n, &fast["id"], json!({"ssd": null})).await;
    assert_eq!(s, 200, "{body}");
    let s = boot_until(&n, &image, &scoped, None, "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host"),
        "{s}"
    );
}

/// A server created without a zone moves between zones with its host (a resize may take it
/// to another zone, a revert brings it back); one created in a zone is kept there
/// (2.96's `pinned_availability_zone`).
#[tokio::test]
async fn only_a_server_created_in_a_zone_is_pinned_to_it() {
    let c = cloud(2).await;
    let n = nova(&c, "2.96");
    let (image, small) = image_and_flavor(&c, 1, 64).await;
    let r = n
        .post(
            "/flavors",
            &json!({"flavor": {"name": "big", "vcpus": 1, "ram": 128, "disk": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let big = r.body["flavor"]["id"].as_str().unwrap().to_string();
    let a = create_aggregate(&n, "zone-a", Some("az1")).await;
    assert_eq!(add_host(&n, &a["id"], "fake-1").await.0, 200);
    let act = |id: String, body: Value| {
        let n = n.clone();
        async move {
            let r = n
                .post(&format!("/servers/{id}/action"), &body)
                .await
                .unwrap();
            assert_eq!(r.status, 202, "{}", r.body);
        }
    };
    let place = |s: &Value| {
        (
            s["OS-EXT-SRV-ATTR:host"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            s["OS-EXT-AZ:availability_zone"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };

    let free = boot_until(&n, &image, &small, None, "ACTIVE").await;
    assert_eq!(place(&free), ("fake-0".into(), "nova".into()), "{free}");
    assert!(free["pinned_availability_zone"].is_null(), "{free}");
    let id = free["id"].as_str().unwrap().to_string();
    act(id.clone(), json!({"resize": {"flavorRef": big}})).await;
    let s = wait_status(&n, &id, "VERIFY_RESIZE").await;
    assert_eq!(place(&s), ("fake-1".into(), "az1".into()), "{s}");
    act(id.clone(), json!({"revertResize": null})).await;
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(place(&s), ("fake-0".into(), "nova".into()), "{s}");

    // Pinned to nova: the resize stays on fake-0 though fake-1 has more room.
    let pinned = boot_until(&n, &image, &small, Some("nova"), "ACTIVE").await;
    assert_eq!(pinned["pinned_availability_zone"], "nova", "{pinned}");
    let id = pinned["id"].as_str().unwrap().to_string();
    act(id.clone(), json!({"resize": {"flavorRef": big}})).await;
    let s = wait_status(&n, &id, "VERIFY_RESIZE").await;
    assert_eq!(place(&s), ("fake-0".into(), "nova".into()), "{s}");
}

/// Adds of one host to aggregates of different zones, all at once: the zone checks and
/// writes are serialised, so exactly one wins and the host ends in one zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_adds_leave_a_host_in_one_zone() {
    let c = cloud(1).await;
    let n = nova(&c, "2.53");
    let mut ids = Vec::new();
    for k in 0..6 {
        let a = create_aggregate(&n, &format!("race-{k}"), Some(&format!("zone-{k}"))).await;
        ids.push(a["id"].clone());
    }
    let adds: Vec<_> = ids
        .iter()
        .map(|id| {
            let (n, id) = (n.clone(), id.clone());
            tokio::spawn(async move { add_host(&n, &id, "fake-0").await })
        })
        .collect();
    let mut won = 0;
    for a in adds {
        let (s, body) = a.await.unwrap();
        match s {
            200 => won += 1,
            409 => assert!(
                message(&body).contains("already in availability zone"),
                "{body}"
            ),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(won, 1);
    let r = n.get("/os-services?binary=nova-compute").await.unwrap();
    let zone = r.body["services"][0]["zone"].as_str().unwrap().to_string();
    assert!(zone.starts_with("zone-"), "{}", r.body);
}
