//! The scheduler's host view against placement: a view made stale by allocations it did not
//! see (another conductor's) still places servers correctly, because placement's claim
//! decides and placement answers when the view has no room.

use ferro_api_types::compute::{CONTRACT_VERSION, ConductorRequest, HostResources};
use ferro_client::Client;
use serde_json::{Value, json};

use crate::servers::{
    allocations, create, image_and_flavor, nova, placement, wait_hosts, wait_status,
};
use ferro_testkit::TestCloud;

/// A cloud of `hosts` fake hosts whose scheduler trusts its view for ten minutes, so that
/// what placement learns behind its back stays unseen.
pub(crate) async fn cloud(hosts: usize) -> TestCloud {
    let c = TestCloud::start_with(|c| {
        c.compute.fake_hosts = hosts;
        c.compute.scheduler_view_ttl_ms = 600_000;
    })
    .await
    .expect("test cloud starts");
    wait_hosts(&c, hosts).await;
    // The view as it is now, every host in it (the conductor's own refresh may have run
    // before the hosts registered).
    c.cloud.compute.view_refresh_background().await.unwrap();
    c
}

async fn provider(p: &Client, host: &str) -> String {
    let r = p
        .get(&format!("/resource_providers?name={host}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["resource_providers"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Placement's MEMORY_MB capacity of provider `rp` (what the view counts with).
async fn ram_capacity(p: &Client, rp: &str) -> i64 {
    let r = p
        .get(&format!("/resource_providers/{rp}/inventories"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let inv = &r.body["inventories"]["MEMORY_MB"];
    let room = inv["total"].as_i64().unwrap() - inv["reserved"].as_i64().unwrap();
    (room as f64 * inv["allocation_ratio"].as_f64().unwrap()) as i64
}

/// Another conductor's claim of `ram` MB on `rp`, which this scheduler's view never sees.
async fn foreign_claim(c: &TestCloud, rp: &str, ram: i64) -> String {
    let consumer = "0c0ffee0-0000-4000-8000-00000000f111".to_string();
    let r = placement(c)
        .put(
            &format!("/allocations/{consumer}"),
            Some(
                &json!({"allocations": {rp: {"resources": {"MEMORY_MB": ram}}},
                "project_id": "0000000000000000000000000000beef",
                "user_id": "0000000000000000000000000000cafe",
                "consumer_generation": null}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    consumer
}

fn host(s: &Value) -> &str {
    s["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_claim_a_stale_view_chose_is_refused_and_the_next_host_takes_it() {
    let c = cloud(2).await;
    let (image, flavor) = image_and_flavor(&c, 1, 512).await;
    let n = nova(&c, "2.47");
    let p = placement(&c);
    let (rp0, rp1) = (provider(&p, "fake-0").await, provider(&p, "fake-1").await);

    // Equal hosts: the name breaks the tie. The view now counts fake-0's 512 MB.
    let first = create(&n, "first", &image, &flavor).await;
    assert_eq!(host(&wait_status(&n, &first, "ACTIVE").await), "fake-0");

    // Another conductor fills fake-1, which the view still thinks the emptier host.
    let full = ram_capacity(&p, &rp1).await;
    foreign_claim(&c, &rp1, full).await;

    // The view chooses fake-1, placement refuses the claim, fake-0 takes the server; the
    // next decision leaves fake-1 out instead of being refused there again.
    for name in ["second", "third"] {
        let id = create(&n, name, &image, &flavor).await;
        let s = wait_status(&n, &id, "ACTIVE").await;
        assert_eq!(host(&s), "fake-0", "{s}");
        let a = allocations(&c, &id).await;
        assert_eq!(a.as_object().unwrap().len(), 1, "{a}");
        assert_eq!(
            a[&rp0]["resources"],
            json!({"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1})
        );
    }
    let u = p
        .get(&format!("/resource_providers/{rp1}/usages"))
        .await
        .unwrap();
    assert_eq!(u.body["usages"]["MEMORY_MB"], full, "{}", u.body);
    assert_eq!(u.body["usages"]["VCPU"], 0, "{}", u.body);
}

#[tokio::test]
async fn a_view_without_room_asks_placement_before_answering_no_valid_host() {
    let c = cloud(1).await;
    let p = placement(&c);
    let rp = provider(&p, "fake-0").await;
    let half = ram_capacity(&p, &rp).await / 2 + 1;
    let (image, flavor) = image_and_flavor(&c, 1, half).await;
    let n = nova(&c, "2.47");

    let first = create(&n, "first", &image, &flavor).await;
    wait_status(&n, &first, "ACTIVE").await;
    // Placement has no room for a second: no valid host.
    let second = create(&n, "second", &image, &flavor).await;
    let s = wait_status(&n, &second, "ERROR").await;
    assert_eq!(s["fault"]["code"], 500, "{s}");
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host was found"),
        "{s}"
    );

    // The first server's allocation goes behind the view's back (as another conductor
    // would remove it): the view still counts it, placement has the room.
    let r = p.delete(&format!("/allocations/{first}")).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    let third = create(&n, "third", &image, &flavor).await;
    let s = wait_status(&n, &third, "ACTIVE").await;
    assert_eq!(host(&s), "fake-0", "{s}");
}

fn heartbeat(host: &str, provider: Option<&str>) -> ConductorRequest {
    ConductorRequest::ServiceHeartbeat {
        version: CONTRACT_VERSION.into(),
        host: host.into(),
        resources: HostResources {
            vcpus: 4,
            memory_mb: 2048,
            local_gb: 20,
            hypervisor_type: "fake".into(),
            hypervisor_version: 1,
            provider_uuid: provider.map(str::to_string),
            running_instances: 0,
            cpu_info: json!({}),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_reports_register_one_node_and_later_heartbeats_are_batched() {
    let c = TestCloud::start().await;
    let compute = c.cloud.compute.clone();
    let provider = "0c0ffee0-0000-4000-8000-0000000000aa";
    // Before its resource provider exists the host has a service, no node.
    compute
        .conduct(heartbeat("racer", None), "req-1")
        .await
        .unwrap();
    // Its agent's report after registering and its periodic heartbeat, at once: each
    // finds no node yet, one inserts it, the others update it (no unique-host failure).
    let reports: Vec<_> = (0..16)
        .map(|n| {
            let compute = compute.clone();
            tokio::spawn(async move {
                compute
                    .conduct(heartbeat("racer", Some(provider)), &format!("req-r{n}"))
                    .await
            })
        })
        .collect();
    for r in reports {
        r.await.unwrap().unwrap();
    }
    let n = nova(&c, "2.53");
    let h = n
        .get("/os-hypervisors?hypervisor_hostname_pattern=racer")
        .await
        .unwrap();
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(
        h.body["hypervisors"].as_array().unwrap().len(),
        1,
        "{}",
        h.body
    );

    // The first heartbeat was written at once; the later ones wait in memory and
    // become one write.
    let updated = || async {
        let r = n.get("/os-services?host=racer").await.unwrap();
        r.body["services"][0]["updated_at"].clone()
    };
    let first = updated().await;
    assert!(first.is_string(), "{first}");
    compute.flush_heartbeats().await.unwrap();
    assert_ne!(updated().await, first);
    assert_eq!(compute.flush_heartbeats().await.unwrap(), 0);
}

/// `availability_zone` `zone:host` (and `zone::node`) puts the server on that host for an
/// admin, whatever the weighers prefer; other users get 403; a forced host that cannot
/// take it leaves the server in ERROR rather than on another host.
#[tokio::test]
async fn an_admin_forces_a_host_through_the_availability_zone() {
    let c = cloud(3).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.74");
    let boot = |zone: &str| {
        json!({"server": {"name": "forced", "imageRef": image, "flavorRef": flavor,
            "networks": "none", "availability_zone": zone}})
    };
    for (zone, host) in [("nova:fake-2", "fake-2"), ("nova::fake-0", "fake-0")] {
        let r = n.post("/servers", &boot(zone)).await.unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["server"]["id"].as_str().unwrap().to_string();
        let s = wait_status(&n, &id, "ACTIVE").await;
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], host, "{zone}");
        assert_eq!(s["OS-EXT-AZ:availability_zone"], "nova");
    }
    let r = n
        .post("/servers", &boot("nova:no-such-host"))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&n, &id, "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("No valid host"),
        "{s}"
    );
    let r = n.post("/servers", &boot("nova:a:b:c")).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);

    // 2.74's requested destination: the host named, or 400 for a host that does not exist.
    let dest = |host: &str| {
        json!({"server": {"name": "dest", "imageRef": image, "flavorRef": flavor,
            "networks": "none", "host": host}})
    };
    let r = n.post("/servers", &dest("fake-1")).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        wait_status(&n, &id, "ACTIVE").await["OS-EXT-SRV-ATTR:host"],
        "fake-1"
    );
    let r = n.post("/servers", &dest("no-such-host")).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Compute host no-such-host could not be found."
    );
    let r = nova(&c, "2.73")
        .post("/servers", &dest("fake-1"))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "no `host` before 2.74: {}", r.body);

    c.project_user("proj-f", "member-f", "pw-member-f", "member")
        .await;
    let (member, _) = c
        .login("member-f", "pw-member-f", Some("proj-f"))
        .await
        .unwrap();
    let member = member
        .clone_with_base(&format!("{}/v2.1", c.compute_url))
        .with_header("OpenStack-API-Version", "compute 2.74");
    let r = member.post("/servers", &boot("nova:fake-1")).await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    let r = member.post("/servers", &dest("fake-1")).await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
}
