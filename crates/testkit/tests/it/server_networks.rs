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

/// A port the user makes on `net` (named "mine"): its id.
async fn user_port(c: &TestCloud, net: &str) -> String {
    let r = neutron(c)
        .post(
            "/v2.0/ports",
            &json!({"port": {"network_id": net, "name": "mine"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["port"]["id"].as_str().unwrap().to_string()
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
    let port = user_port(&c, &net).await;
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
    // Also without ports (tempest test_create_with_nonexistent_security_group).
    let r = n
        .post(
            "/servers",
            &json!({"server": {"name": "sg", "imageRef": image, "flavorRef": flavor,
                "networks": "none", "security_groups": [{"name": "nosuch"}]}}),
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
    // The server body names its ports' groups (show and detail), as does os-security-groups.
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["security_groups"], json!([{"name": "web"}]), "{s}");
    let r = n.get("/servers/detail").await.unwrap();
    let listed = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["security_groups"], json!([{"name": "web"}]));
    let r = neutron(&c)
        .post(
            "/v2.0/security-group-rules",
            &json!({"security_group_rule": {"security_group_id": web, "direction": "ingress",
                "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
                "remote_ip_prefix": "10.0.0.0/8"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let r = n
        .get(&format!("/servers/{id}/os-security-groups"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let sg = &r.body["security_groups"];
    assert_eq!(sg.as_array().unwrap().len(), 1, "{sg}");
    assert_eq!(sg[0]["id"], web.as_str());
    assert_eq!(sg[0]["name"], "web");
    assert!(sg[0]["tenant_id"].is_string(), "{sg}");
    // Only ingress rules show (the egress defaults do not), in Nova's shape.
    let rules = sg[0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{sg}");
    assert_eq!(rules[0]["ip_protocol"], "tcp");
    assert_eq!(rules[0]["from_port"], 80);
    assert_eq!(rules[0]["to_port"], 80);
    assert_eq!(rules[0]["ip_range"], json!({"cidr": "10.0.0.0/8"}));
    assert_eq!(rules[0]["group"], json!({}));
    assert_eq!(rules[0]["parent_group_id"], web.as_str());
    assert_eq!(
        n.get("/servers/6d4c5c1e-8e0b-4c8e-9a55-3f1b7b7f0000/os-security-groups")
            .await
            .unwrap()
            .status,
        404
    );

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
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["security_groups"], json!([{"name": "default"}]), "{s}");
    let r = n
        .get(&format!("/servers/{id}/os-security-groups"))
        .await
        .unwrap();
    let sg = &r.body["security_groups"];
    assert_eq!(sg[0]["name"], "default", "{sg}");
    // The default group's ingress rules admit its own members: the remote is the group.
    let rules = sg[0]["rules"].as_array().unwrap();
    assert!(!rules.is_empty(), "{sg}");
    assert!(
        rules
            .iter()
            .all(|r| r["group"]["name"] == "default" && r["ip_range"] == json!({})),
        "{sg}"
    );
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

/// `GET /servers/{id}/os-interface` at `v`: the attachments.
async fn interfaces(c: &TestCloud, id: &str, v: &str) -> Vec<Value> {
    let r = nova(c, v)
        .get(&format!("/servers/{id}/os-interface"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["interfaceAttachments"].as_array().unwrap().clone()
}

#[tokio::test]
async fn interfaces_attach_and_detach_through_the_agent() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let red = network(&c, "red", "10.5.0.0/24").await;
    let amber = network(&c, "amber", "10.6.0.0/24").await;
    let n = nova(&c, "2.70");
    let (status, body) = boot(&n, "nics", &image, &flavor, json!([{"uuid": red}])).await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_string();
    wait_status(&n, &id, "ACTIVE").await;
    let fake = c.fake_driver("fake-0");

    let first = interfaces(&c, &id, "2.70").await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["net_id"], red.as_str());
    assert_eq!(first[0]["port_state"], ports_of(&c, &id).await[0]["status"]);
    assert!(first[0]["tag"].is_null(), "{}", first[0]);
    assert!(
        first[0]["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .starts_with("10.5.0."),
        "{}",
        first[0]
    );
    assert!(first[0]["fixed_ips"][0]["subnet_id"].is_string());
    assert_eq!(
        interfaces(&c, &id, "2.69").await[0].get("tag"),
        None,
        "tag shows from 2.70"
    );

    // On a network, with an address and a tag: Nova makes the port, binds and plugs it.
    let path = format!("/servers/{id}/os-interface");
    let r = n
        .post(
            &path,
            &json!({"interfaceAttachment": {"net_id": amber,
                "fixed_ips": [{"ip_address": "10.6.0.20"}], "tag": "data"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let made = r.body["interfaceAttachment"].clone();
    assert_eq!(made["net_id"], amber.as_str());
    assert_eq!(made["fixed_ips"][0]["ip_address"], "10.6.0.20");
    assert_eq!(made["tag"], "data");
    let made_id = made["port_id"].as_str().unwrap().to_string();
    let p = neutron(&c)
        .get(&format!("/v2.0/ports/{made_id}"))
        .await
        .unwrap();
    assert_eq!(p.body["port"]["device_id"], id.as_str());
    assert_eq!(p.body["port"]["device_owner"], "compute:nova");
    assert_eq!(p.body["port"]["binding:host_id"], "fake-0");
    assert_eq!(made["mac_addr"], p.body["port"]["mac_address"]);
    assert!(fake.interfaces(&id).unwrap().contains(&made_id));
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert_eq!(s["addresses"]["amber"][0]["addr"], "10.6.0.20", "{s}");

    // A port the user made.
    let mine = user_port(&c, &amber).await;
    let r = n
        .post(&path, &json!({"interfaceAttachment": {"port_id": mine}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["interfaceAttachment"]["port_id"], mine.as_str());
    assert!(r.body["interfaceAttachment"]["tag"].is_null());
    assert_eq!(interfaces(&c, &id, "2.70").await.len(), 3);
    assert_eq!(fake.interfaces(&id).unwrap().len(), 3);
    let tags: Vec<Value> = interfaces(&c, &id, "2.70")
        .await
        .iter()
        .map(|a| a["tag"].clone())
        .collect();
    assert!(tags.contains(&json!("data")), "{tags:?}");

    // Bad requests, as upstream answers them.
    let nowhere = "6d4c5c1e-8e0b-4c8e-9a55-3f1b7b7f0000";
    let attach = |body: Value| {
        let n = n.clone();
        let path = path.clone();
        async move {
            let r = n.post(&path, &body).await.unwrap();
            (r.status, r.body)
        }
    };
    for (body, want) in [
        (json!({"interfaceAttachment": {"port_id": mine}}), 409),
        (json!({"interfaceAttachment": {"port_id": nowhere}}), 404),
        (json!({"interfaceAttachment": {"net_id": nowhere}}), 404),
        (
            json!({"interfaceAttachment": {"net_id": amber, "port_id": mine}}),
            400,
        ),
        (
            json!({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.6.0.30"}]}}),
            400,
        ),
        (
            json!({"interfaceAttachment": {"net_id": amber,
                "fixed_ips": [{"ip_address": "10.6.0.20"}]}}),
            409,
        ),
        (
            json!({"interfaceAttachment": {"net_id": amber,
                "fixed_ips": [{"ip_address": "192.168.1.1"}]}}),
            400,
        ),
        (
            json!({"interfaceAttachment": {"port_id": "not-a-uuid"}}),
            400,
        ),
        (json!({"interfaceAttachment": {"bogus": 1}}), 400),
        (json!({"interfaceAttachment": {}}), 400),
    ] {
        let (status, answer) = attach(body.clone()).await;
        assert_eq!(status, want, "{body} -> {answer}");
    }
    let r = nova(&c, "2.48")
        .post(
            &path,
            &json!({"interfaceAttachment": {"net_id": amber, "tag": "t"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "tag needs 2.49: {}", r.body);
    let r = n
        .post(
            &format!("/servers/{nowhere}/os-interface"),
            &json!({"interfaceAttachment": {"net_id": amber}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(interfaces(&c, &id, "2.70").await.len(), 3, "nothing leaked");

    // A hypervisor that fails the plug: the port Nova made is gone again.
    fake.fail(ferro_virt::Op::AttachInterface, true);
    let (status, answer) = attach(json!({"interfaceAttachment": {"net_id": amber}})).await;
    assert_eq!(status, 500, "{answer}");
    fake.fail(ferro_virt::Op::AttachInterface, false);
    assert_eq!(ports_of(&c, &id).await.len(), 3, "the failed port was left");
    let r = neutron(&c)
        .get(&format!("/v2.0/ports?network_id={amber}"))
        .await
        .unwrap();
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 2, "{}", r.body);

    // Show: only the server's own ports.
    let r = n.get(&format!("{path}/{mine}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["interfaceAttachment"]["net_id"], amber.as_str());
    let r = neutron(&c)
        .post("/v2.0/ports", &json!({"port": {"network_id": amber}}))
        .await
        .unwrap();
    let stranger = r.body["port"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        n.get(&format!("{path}/{stranger}")).await.unwrap().status,
        404
    );
    assert_eq!(
        n.get(&format!("{path}/{nowhere}")).await.unwrap().status,
        404
    );

    // Detach: the port Nova made is deleted, the user's is released; both are unplugged.
    let r = n.delete(&format!("{path}/{made_id}")).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let gone = neutron(&c)
        .get(&format!("/v2.0/ports/{made_id}"))
        .await
        .unwrap();
    assert_eq!(gone.status, 404);
    let r = n.delete(&format!("{path}/{mine}")).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let kept = neutron(&c)
        .get(&format!("/v2.0/ports/{mine}"))
        .await
        .unwrap();
    assert_eq!(kept.status, 200);
    assert_eq!(kept.body["port"]["device_id"], "");
    assert_eq!(kept.body["port"]["binding:host_id"], "");
    assert_eq!(fake.interfaces(&id).unwrap().len(), 1);
    assert_eq!(
        n.delete(&format!("{path}/{mine}")).await.unwrap().status,
        404
    );
    let s = wait_status(&n, &id, "ACTIVE").await;
    assert!(s["addresses"].get("amber").is_none(), "{s}");
    assert_eq!(interfaces(&c, &id, "2.70").await.len(), 1);

    // Both were recorded as instance actions.
    let a = nova(&c, "2.84")
        .get(&format!("/servers/{id}/os-instance-actions"))
        .await
        .unwrap();
    let actions: Vec<&str> = a.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert!(actions.contains(&"attach_interface"), "{actions:?}");
    assert!(actions.contains(&"detach_interface"), "{actions:?}");

    // Not while a task is under way or the server is locked for its non-admin users.
    let r = n
        .post(
            &format!("/servers/{id}/action"),
            &json!({"lock": {"locked_reason": "maintenance"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let r = n
        .post(&path, &json!({"interfaceAttachment": {"net_id": amber}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "an admin passes the lock: {}", r.body);
}

#[tokio::test]
async fn interfaces_belong_to_the_server_s_project_and_respect_its_lock() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let login = |project: &'static str, user: &'static str| {
        let c = &c;
        async move {
            c.project_user(project, user, "pw", "member").await;
            let (client, _) = c.login(user, "pw", Some(project)).await.unwrap();
            client
        }
    };
    let owner = login("ifp", "ifu").await;
    let stranger = login("ifq", "ifv").await;
    let own_nova = owner
        .clone_with_base(&format!("{}/v2.1", c.compute_url))
        .with_header("OpenStack-API-Version", "compute 2.70");
    let own_net = owner.clone_with_base(&c.network_url);
    let r = own_net
        .post("/v2.0/networks", &json!({"network": {"name": "mine"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let net = r.body["network"]["id"].as_str().unwrap().to_string();
    let r = own_net
        .post(
            "/v2.0/subnets",
            &json!({"subnet": {"network_id": net, "cidr": "10.7.0.0/24", "ip_version": 4}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let (status, body) = boot(&own_nova, "own", &image, &flavor, json!([{"uuid": net}])).await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_string();
    wait_status(&own_nova, &id, "ACTIVE").await;
    let path = format!("/servers/{id}/os-interface");

    // The owner attaches on its own network; another project sees no such server.
    let r = own_nova
        .post(&path, &json!({"interfaceAttachment": {"net_id": net}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let other_nova = stranger
        .clone_with_base(&format!("{}/v2.1", c.compute_url))
        .with_header("OpenStack-API-Version", "compute 2.70");
    assert_eq!(other_nova.get(&path).await.unwrap().status, 404);
    let r = other_nova
        .post(&path, &json!({"interfaceAttachment": {"net_id": net}}))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    // Without a network, the server's project's only network is picked, also when an
    // admin (who sees every project's networks) asks.
    let r = neutron(&c)
        .post("/v2.0/networks", &json!({"network": {"name": "admins"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let r = nova(&c, "2.70")
        .post(&path, &json!({"interfaceAttachment": {}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["interfaceAttachment"]["net_id"], net.as_str());

    // Locked by the admin: the owner may neither attach nor detach (409).
    let r = nova(&c, "2.73")
        .post(&format!("/servers/{id}/action"), &json!({"lock": null}))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let r = own_nova
        .post(&path, &json!({"interfaceAttachment": {"net_id": net}}))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    let port = interfaces(&c, &id, "2.70").await[0]["port_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = own_nova.delete(&format!("{path}/{port}")).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(interfaces(&c, &id, "2.70").await.len(), 3);
}

#[tokio::test]
async fn a_build_that_fails_on_every_host_releases_its_ports() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let net = network(&c, "doomed", "10.3.0.0/24").await;
    let n = nova(&c, "2.37");
    let mine = user_port(&c, &net).await;
    c.fake_driver("fake-0").fail(ferro_virt::Op::Spawn, true);

    // The only host fails the build; the reschedule finds no other: ERROR, and the ports
    // are released as upstream's _cleanup_allocated_networks does — the user's unbound,
    // DOWN and free for another server, the one Nova made deleted.
    let (status, body) = boot(
        &n,
        "doomed",
        &image,
        &flavor,
        json!([{"port": mine}, {"uuid": net}]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&n, &id, "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Exceeded maximum number of retries. Exhausted all hosts"),
        "{s}"
    );
    assert!(
        ports_of(&c, &id).await.is_empty(),
        "no port is the server's"
    );
    let p = neutron(&c)
        .get(&format!("/v2.0/ports/{mine}"))
        .await
        .unwrap();
    assert_eq!(p.status, 200, "the user's port was deleted");
    let p = &p.body["port"];
    assert_eq!(p["device_id"], "", "{p}");
    assert_eq!(p["binding:host_id"], "", "{p}");
    assert_eq!(p["status"], "DOWN", "{p}");
    let r = neutron(&c)
        .get(&format!(
            "/v2.0/ports?network_id={net}&device_owner=compute:nova"
        ))
        .await
        .unwrap();
    assert_eq!(r.body["ports"], json!([]), "the port Nova made is deleted");
    assert_eq!(
        n.delete(&format!("/servers/{id}")).await.unwrap().status,
        204
    );
}
