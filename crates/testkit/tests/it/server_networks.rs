//! Servers on networks: a create's `networks` checked against the network API, ports made
//! or bound on the chosen host, `addresses` in the server body, and ports deleted or
//! released with the server.

use ferro_client::Client;
use ferro_testkit::TestCloud;
use serde_json::{Value, json};

use crate::servers::{image_and_flavor, nova, wait_gone, wait_hosts, wait_status};

pub(crate) fn neutron(c: &TestCloud) -> Client {
    c.admin.clone_with_base(&c.network_url)
}

/// A network with one IPv4 subnet: its id.
async fn network(c: &TestCloud, name: &str, cidr: &str) -> String {
    network_with(c, name, cidr, json!({})).await
}

/// A network with one IPv4 subnet, `extra` merged into the subnet's body: its id.
pub(crate) async fn network_with(c: &TestCloud, name: &str, cidr: &str, extra: Value) -> String {
    let n = neutron(c);
    let r = n
        .post("/v2.0/networks", &json!({"network": {"name": name}}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["network"]["id"].as_str().unwrap().to_string();
    let mut subnet = json!({"network_id": id, "cidr": cidr, "ip_version": 4});
    for (k, v) in extra.as_object().into_iter().flatten() {
        subnet[k] = v.clone();
    }
    let r = n
        .post("/v2.0/subnets", &json!({ "subnet": subnet }))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    id
}

async fn boot(n: &Client, name: &str, image: &str, flavor: &str, networks: Value) -> (u16, Value) {
    let r = n
        .post(
            "/servers",
            &json!({"server": {"name": name, "imageRef": image, "flavorRef": flavor,
                "networks": networks}}),
        )
        .await
        .unwrap();
    (r.status, r.body)
}

async fn ports_of(c: &TestCloud, server: &str) -> Vec<Value> {
    let r = neutron(c)
        .get(&format!("/v2.0/ports?device_id={server}"))
        .await
        .unwrap();
    r.body["ports"].as_array().unwrap().clone()
}

#[tokio::test]
async fn servers_get_ports_addresses_and_release_them() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let net = network(&c, "blue", "10.1.0.0/24").await;
    let n = nova(&c, "2.37");

    let (status, body) = boot(&n, "on-net", &image, &flavor, json!([{"uuid": net}])).await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&n, &id, "ACTIVE").await;
    let addr = &s["addresses"]["blue"][0];
    assert!(addr["addr"].as_str().unwrap().starts_with("10.1.0."), "{s}");
    assert_eq!(addr["version"], 4);
    assert_eq!(addr["OS-EXT-IPS:type"], "fixed");
    let ports = ports_of(&c, &id).await;
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["device_owner"], "compute:nova");
    assert_eq!(ports[0]["binding:host_id"], "fake-0");
    assert_eq!(addr["OS-EXT-IPS-MAC:mac_addr"], ports[0]["mac_address"]);

    let (status, body) = boot(
        &n,
        "fixed",
        &image,
        &flavor,
        json!([{"uuid": net, "fixed_ip": "10.1.0.50"}]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let fixed = body["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&n, &fixed, "ACTIVE").await;
    assert_eq!(s["addresses"]["blue"][0]["addr"], "10.1.0.50");

    // A port the user made is bound, then released (not deleted) with the server.
    let r = neutron(&c)
        .post(
            "/v2.0/ports",
            &json!({"port": {"network_id": net, "name": "mine"}}),
        )
        .await
        .unwrap();
    let port = r.body["port"]["id"].as_str().unwrap().to_string();
    let (status, body) = boot(&n, "ported", &image, &flavor, json!([{"port": port}])).await;
    assert_eq!(status, 202, "{body}");
    let ported = body["server"]["id"].as_str().unwrap().to_string();
    wait_status(&n, &ported, "ACTIVE").await;
    let (status, body) = boot(&n, "again", &image, &flavor, json!([{"port": port}])).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Port {port} is still in use.")
    );

    for s in [&id, &fixed, &ported] {
        assert_eq!(
            n.delete(&format!("/servers/{s}")).await.unwrap().status,
            204
        );
        wait_gone(&n, s).await;
    }
    assert!(ports_of(&c, &id).await.is_empty());
    assert!(ports_of(&c, &fixed).await.is_empty());
    let mine = neutron(&c)
        .get(&format!("/v2.0/ports/{port}"))
        .await
        .unwrap();
    assert_eq!(mine.status, 200, "the user's port was deleted");
    assert_eq!(mine.body["port"]["device_id"], "");
}

#[tokio::test]
async fn networks_are_checked_and_auto_picks_the_only_one() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.37");

    let (status, body) = boot(&n, "x", &image, &flavor, json!("auto")).await;
    assert_eq!(status, 400, "{body}");
    let net = network(&c, "only", "10.2.0.0/24").await;
    let (status, body) = boot(&n, "auto", &image, &flavor, json!("auto")).await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert!(s["addresses"]["only"][0]["addr"].is_string(), "{s}");
    // Before 2.37 no `networks` means the same.
    let r = nova(&c, "2.1")
        .post(
            "/servers",
            &json!({"server": {"name": "old", "imageRef": image, "flavorRef": flavor}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);

    network(&c, "second", "10.3.0.0/24").await;
    let (status, body) = boot(&n, "x", &image, &flavor, json!("auto")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        "Multiple possible networks found, use a Network ID to be more specific."
    );
    let missing = "0b1d1b8e-7d8e-4a59-9a67-0c6a8b1f0d11";
    let (status, body) = boot(&n, "x", &image, &flavor, json!([{"uuid": missing}])).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["badRequest"]["message"],
        format!("Network {missing} could not be found.")
    );
    let (status, _) = boot(&n, "x", &image, &flavor, json!([{"port": missing}])).await;
    assert_eq!(status, 400);
    let (status, _) = boot(
        &n,
        "x",
        &image,
        &flavor,
        json!([{"uuid": net, "fixed_ip": "not-an-ip"}]),
    )
    .await;
    assert_eq!(status, 400);
    // An address outside the subnet fails the build, and no port is left.
    let (status, body) = boot(
        &n,
        "outside",
        &image,
        &flavor,
        json!([{"uuid": net, "fixed_ip": "192.168.9.9"}]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let outside = body["server"]["id"].as_str().unwrap().to_string();
    wait_status(&n, &outside, "ERROR").await;
    assert!(ports_of(&c, &outside).await.is_empty());
    let a = nova(&c, "2.84")
        .get(&format!("/servers/{outside}/os-instance-actions"))
        .await
        .unwrap();
    let request = a.body["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = nova(&c, "2.84")
        .get(&format!("/servers/{outside}/os-instance-actions/{request}"))
        .await
        .unwrap();
    let why = a.body["instanceAction"]["events"][0]["details"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("Binding a port"), "{}", a.body);
}

#[tokio::test]
async fn security_groups_follow_the_server_onto_its_ports() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let net = network(&c, "green", "10.4.0.0/24").await;
    let n = nova(&c, "2.37");
    let r = neutron(&c)
        .post(
            "/v2.0/security-groups",
            &json!({"security_group": {"name": "web"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let web = r.body["security_group"]["id"].as_str().unwrap().to_string();

    let r = n
        .post(
            "/servers",
            &json!({"server": {"name": "sg", "imageRef": image, "flavorRef": flavor,
                "networks": [{"uuid": net}], "security_groups": [{"name": "nosuch"}]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let r = n
        .post(
            "/servers",
            &json!({"server": {"name": "sg", "imageRef": image, "flavorRef": flavor,
                "networks": [{"uuid": net}], "security_groups": [{"name": "web"}]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    wait_status(&n, &id, "ACTIVE").await;
    let groups = |p: &Value| -> Vec<String> {
        let mut g: Vec<String> = p["security_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect();
        g.sort();
        g
    };
    assert_eq!(groups(&ports_of(&c, &id).await[0]), vec![web.clone()]);

    let action = format!("/servers/{id}/action");
    let r = n
        .post(&action, &json!({"addSecurityGroup": {"name": "default"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(groups(&ports_of(&c, &id).await[0]).len(), 2);
    let r = n
        .post(&action, &json!({"removeSecurityGroup": {"name": "web"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let left = groups(&ports_of(&c, &id).await[0]);
    assert_eq!(left.len(), 1);
    assert_ne!(left[0], web);
    let r = n
        .post(&action, &json!({"removeSecurityGroup": {"name": "web"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let r = n
        .post(&action, &json!({"addSecurityGroup": {"name": "nosuch"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
}
