//! Nova waits for Neutron: a build on a driver that plugs ports stays BUILD until the
//! network service, told by its agent that the port is plugged, sends
//! `network-vif-plugged` through `os-server-external-events`; without it the build fails
//! when `vif_plugging_timeout` runs out. The events API answers per event as upstream.

use std::time::Duration;

use ferro_api_types::compute::CONTRACT_VERSION;
use ferro_api_types::network::PluginRequest;
use ferro_testkit::TestCloud;
use serde_json::{Value, json};

use crate::server_networks::{network_with, neutron};
use crate::servers::{image_and_flavor, nova, wait_hosts, wait_status};

async fn cloud(vif_timeout: u64) -> TestCloud {
    let c = TestCloud::start_with(|cfg| {
        cfg.compute.fake_hosts = 1;
        cfg.compute.vif_plugging_timeout = vif_timeout;
    })
    .await
    .expect("cloud starts");
    wait_hosts(&c, 1).await;
    // The fake stands in for a hypervisor whose ports an agent sees plugged.
    c.fake_driver("fake-0").set_plugs_vifs(true);
    c
}

/// A server on a fresh network: `(server id, port id)` once the port is bound.
async fn boot_on_network(c: &TestCloud, cidr: &str) -> (String, String) {
    let (image, flavor) = image_and_flavor(c, 1, 64).await;
    let net = network_with(c, "plugged", cidr, json!({"enable_dhcp": false})).await;
    let r = nova(c, "2.37")
        .post(
            "/servers",
            &json!({"server": {"name": "vm", "imageRef": image, "flavorRef": flavor,
                "networks": [{"uuid": net}]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        let r = neutron(c)
            .get(&format!("/v2.0/ports?device_id={id}"))
            .await
            .unwrap();
        if let Some(p) = r.body["ports"].get(0)
            && p["binding:host_id"] == "fake-0"
        {
            return (id, p["id"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server's port was never bound");
}

async fn status_of(c: &TestCloud, id: &str) -> Value {
    nova(c, "2.1")
        .get(&format!("/servers/{id}"))
        .await
        .unwrap()
        .body["server"]["status"]
        .clone()
}

#[tokio::test]
async fn a_build_waits_until_its_port_is_announced_plugged() {
    let c = cloud(60).await;
    let (id, port) = boot_on_network(&c, "10.31.0.0/24").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        status_of(&c, &id).await,
        "BUILD",
        "no event yet: still building"
    );

    // The host's network agent reports the tap: the port goes ACTIVE, the network service
    // tells Nova, the build finishes.
    let up = PluginRequest::PortStatus {
        version: CONTRACT_VERSION.into(),
        host: "fake-0".into(),
        up: vec![port.clone()],
        down: vec![],
    };
    crate::network_agents::call(&c, up).await.unwrap();
    let s = wait_status(&nova(&c, "2.1"), &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 1, "{s}");
    let p = neutron(&c)
        .get(&format!("/v2.0/ports/{port}"))
        .await
        .unwrap();
    assert_eq!(p.body["port"]["status"], "ACTIVE");
}

#[tokio::test]
async fn a_port_never_announced_fails_the_build_and_leaves_no_guest() {
    let c = cloud(1).await;
    let (id, _) = boot_on_network(&c, "10.32.0.0/24").await;
    wait_status(&nova(&c, "2.1"), &id, "ERROR").await;
    // The host's reason is the build event's details (2.84).
    let n = nova(&c, "2.84");
    let r = n
        .get(&format!("/servers/{id}/os-instance-actions"))
        .await
        .unwrap();
    let req = r.body["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = n
        .get(&format!("/servers/{id}/os-instance-actions/{req}"))
        .await
        .unwrap();
    assert!(
        r.body
            .to_string()
            .contains("Virtual Interface creation failed"),
        "{}",
        r.body
    );
    use ferro_virt::Driver;
    assert!(
        c.fake_driver("fake-0")
            .list_instances()
            .await
            .unwrap()
            .is_empty(),
        "the undo destroyed the guest"
    );
}

#[tokio::test]
async fn external_events_are_answered_per_event() {
    let c = cloud(0).await;
    let n = nova(&c, "2.1");
    let (id, port) = boot_on_network(&c, "10.33.0.0/24").await;
    wait_status(&n, &id, "ACTIVE").await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    let post = |v: &str, body: Value| {
        let n = nova(&c, v);
        async move { n.post("/os-server-external-events", &body).await.unwrap() }
    };

    let r = post(
        "2.1",
        json!({"events": [{"server_uuid": unknown, "name": "network-changed"}]}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        "No instances found for any event"
    );

    let r = post(
        "2.1",
        json!({"events": [
            {"server_uuid": id, "name": "network-vif-plugged", "tag": port},
            {"server_uuid": unknown, "name": "network-changed"}]}),
    )
    .await;
    assert_eq!(r.status, 207, "{}", r.body);
    let e = r.body["events"].as_array().unwrap();
    assert_eq!(e[0]["code"], 200);
    assert_eq!(e[0]["status"], "completed");
    assert_eq!(e[0]["tag"], port.as_str());
    assert_eq!(e[1]["code"], 404);
    assert_eq!(e[1]["status"], "failed");

    let r = post(
        "2.1",
        json!({"events": [{"server_uuid": id, "name": "network-vif-plugged", "status": "in-progress"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"][0]["status"], "in-progress");

    // Names by microversion; volume events need a tag; the body is checked.
    let vol = json!({"events": [{"server_uuid": id, "name": "volume-extended"},
        {"server_uuid": id, "name": "network-changed"}]});
    assert_eq!(post("2.50", vol.clone()).await.status, 400);
    let r = post("2.51", vol).await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["events"][0]["code"], 400);
    assert_eq!(r.body["events"][1]["code"], 200);
    for bad in [
        json!({"events": []}),
        json!({"events": [{"name": "network-changed"}]}),
        json!({"events": [{"server_uuid": id, "name": "network-changed", "x": 1}]}),
        json!({"events": [{"server_uuid": id, "name": "network-changed", "status": "done"}]}),
    ] {
        let r = post("2.1", bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body["badRequest"]["message"].is_string(), "{}", r.body);
    }

    // Only services and admins send events.
    c.project_user("ev", "eve", "pw", "member").await;
    let (eve, _) = c.login("eve", "pw", Some("ev")).await.unwrap();
    let r = eve
        .clone_with_base(&format!("{}/v2.1", c.compute_url))
        .post(
            "/os-server-external-events",
            &json!({"events": [{"server_uuid": id, "name": "network-changed"}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
}
