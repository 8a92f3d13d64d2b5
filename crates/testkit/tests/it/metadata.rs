//! The compute metadata API as the metadata proxy reaches it: requests signed with the
//! shared secret get the instance's documents (OpenStack and EC2 trees, network_data.json
//! from its port, the password a guest posts once); unsigned, mis-signed, unknown or
//! foreign requests are refused as Nova refuses them.

use base64::Engine as _;
use ferro_api_types::metadata::instance_signature;
use ferro_testkit::TestCloud;
use serde_json::{Value, json};

use crate::server_networks::{network_with as network, neutron};
use crate::servers::{image_and_flavor, nova, wait_hosts, wait_status};

/// An ed25519 public key line (key bytes all 9s).
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ test@ferrostack";

/// One answer of the metadata API: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A request as the proxy sends it: the given identity headers (a `None` is left out).
async fn ask(
    c: &TestCloud,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, Option<String>)],
    body: &str,
) -> Answer {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", c.metadata_url))
        .body(body.to_string());
    for (name, value) in headers {
        if let Some(v) = value {
            req = req.header(*name, v);
        }
    }
    let r = req.send().await.expect("metadata API answers");
    Answer {
        status: r.status().as_u16(),
        content_type: r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: r.text().await.unwrap_or_default(),
    }
}

/// The headers of a correctly signed request for `instance` of `project`.
fn signed(c: &TestCloud, instance: &str, project: &str) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("X-Instance-ID", Some(instance.to_string())),
        ("X-Tenant-ID", Some(project.to_string())),
        (
            "X-Instance-ID-Signature",
            Some(instance_signature(&c.cloud.metadata_secret, instance)),
        ),
        ("X-Forwarded-For", Some("10.7.0.99".into())),
    ]
}

async fn get(c: &TestCloud, instance: &str, project: &str, path: &str) -> Answer {
    ask(
        c,
        reqwest::Method::GET,
        path,
        &signed(c, instance, project),
        "",
    )
    .await
}

/// A cloud with one fake host, an image and a flavor: `(cloud, image, flavor, project)`,
/// the project being the admin's.
async fn cloud() -> (TestCloud, String, String, String) {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let project = c.admin_token["token"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (c, image, flavor, project)
}

async fn boot(c: &TestCloud, server: Value) -> (String, Value) {
    let n = nova(c, "2.37");
    let r = n
        .post("/servers", &json!({ "server": server }))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&n, &id, "ACTIVE").await;
    (id, s)
}

#[tokio::test]
async fn signed_requests_get_the_instance_s_documents() {
    let (c, image, flavor, project) = cloud().await;
    let n = nova(&c, "2.37");
    let r = n
        .post(
            "/os-keypairs",
            &json!({"keypair": {"name": "k1", "public_key": KEY}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    // A subnet without DHCP: the guest learns its address from network_data.json.
    let net = network(
        &c,
        "static",
        "10.7.0.0/24",
        json!({"enable_dhcp": false, "dns_nameservers": ["10.7.0.3"],
            "host_routes": [{"destination": "192.168.7.0/24", "nexthop": "10.7.0.254"}]}),
    )
    .await;
    let r = neutron(&c)
        .post("/v2.0/ports", &json!({"port": {"network_id": net}}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let port = r.body["port"].clone();
    let port_id = port["id"].as_str().unwrap().to_string();
    let ip = port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let user_data = "#!/bin/sh\necho hello from user data\n";
    let (id, server) = boot(
        &c,
        json!({"name": "meta-vm", "imageRef": image, "flavorRef": flavor, "key_name": "k1",
            "metadata": {"role": "web"},
            "user_data": base64::engine::general_purpose::STANDARD.encode(user_data),
            "networks": [{"port": port_id}]}),
    )
    .await;

    // The root listing needs no identity.
    let a = ask(&c, reqwest::Method::GET, "/", &[], "").await;
    assert_eq!(a.status, 200);
    assert!(a.body.ends_with("2009-04-04\nlatest"), "{}", a.body);
    assert!(
        a.content_type.starts_with("text/plain"),
        "{}",
        a.content_type
    );

    let a = get(&c, &id, &project, "/openstack").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.starts_with("2012-08-10\n"), "{}", a.body);
    assert!(a.body.ends_with("\nlatest"), "{}", a.body);
    let a = get(&c, &id, &project, "/openstack/latest/").await;
    assert_eq!(
        a.body,
        "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json"
    );

    let a = get(&c, &id, &project, "/openstack/latest/meta_data.json").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.content_type, "application/json");
    let md = a.json();
    assert_eq!(md["uuid"], id.as_str());
    assert_eq!(md["name"], "meta-vm");
    assert_eq!(md["hostname"], "meta-vm.novalocal");
    assert_eq!(md["project_id"], project.as_str());
    assert_eq!(md["availability_zone"], "nova");
    assert_eq!(md["meta"], json!({"role": "web"}));
    assert_eq!(md["public_keys"], json!({ "k1": KEY }));
    assert_eq!(
        md["keys"],
        json!([{"name": "k1", "type": "ssh", "data": KEY}])
    );
    assert_eq!(md["launch_index"], 0);
    assert!(md["random_seed"].is_string());
    // An older version has less.
    let old = get(&c, &id, &project, "/openstack/2012-08-10/meta_data.json")
        .await
        .json();
    assert!(old.get("random_seed").is_none() && old.get("project_id").is_none());

    let a = get(&c, &id, &project, "/openstack/latest/user_data").await;
    assert_eq!((a.status, a.body.as_str()), (200, user_data));
    let a = get(&c, &id, &project, "/latest/user-data").await;
    assert_eq!((a.status, a.body.as_str()), (200, user_data));
    let a = get(&c, &id, &project, "/openstack/latest/vendor_data.json").await;
    assert_eq!(a.json(), json!({}));
    let a = get(&c, &id, &project, "/openstack/latest/vendor_data2.json").await;
    assert_eq!(a.json(), json!({"static": {}}));

    // network_data.json describes the port it booted with.
    let a = get(&c, &id, &project, "/openstack/latest/network_data.json").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let nd = a.json();
    let r = neutron(&c)
        .get(&format!("/v2.0/networks/{net}"))
        .await
        .unwrap();
    let mtu = r.body["network"]["mtu"].clone();
    let tap: String = format!("tap{port_id}").chars().take(14).collect();
    assert_eq!(
        nd["links"],
        json!([{"id": tap, "vif_id": port_id, "type": "bridge", "mtu": mtu,
            "ethernet_mac_address": port["mac_address"]}])
    );
    assert_eq!(
        nd["networks"],
        json!([{"id": "network0", "type": "ipv4", "link": tap, "ip_address": ip,
            "netmask": "255.255.255.0",
            "routes": [
                {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.7.0.1"},
                {"network": "192.168.7.0", "netmask": "255.255.255.0", "gateway": "10.7.0.254"}
            ],
            "network_id": net,
            "services": [{"type": "dns", "address": "10.7.0.3"}]}])
    );
    assert_eq!(
        nd["services"],
        json!([{"type": "dns", "address": "10.7.0.3"}])
    );

    // The EC2 tree.
    let a = get(&c, &id, &project, "/latest").await;
    assert_eq!(a.body, "meta-data/\nuser-data");
    let a = get(&c, &id, &project, "/latest/meta-data/").await;
    assert_eq!(a.status, 200);
    for entry in [
        "ami-id",
        "hostname",
        "instance-id",
        "local-ipv4",
        "placement/",
        "public-keys/",
        "security-groups",
    ] {
        assert!(a.body.lines().any(|l| l == entry), "{entry} in {}", a.body);
    }
    let leaf = |path: &'static str| {
        let c = &c;
        let id = id.clone();
        let project = project.clone();
        async move { get(c, &id, &project, path).await.body }
    };
    let internal = nova(&c, "2.3")
        .get(&format!("/servers/{id}"))
        .await
        .unwrap()
        .body["server"]["OS-EXT-SRV-ATTR:instance_name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        leaf("/latest/meta-data/instance-id").await,
        internal.replace("instance-", "i-")
    );
    assert_eq!(leaf("/latest/meta-data/local-ipv4").await, ip);
    assert_eq!(
        leaf("/latest/meta-data/hostname").await,
        "meta-vm.novalocal"
    );
    assert_eq!(leaf("/2009-04-04/meta-data/public-keys").await, "0=k1");
    assert_eq!(
        leaf("/latest/meta-data/public-keys/0/").await,
        "openssh-key"
    );
    assert_eq!(
        leaf("/latest/meta-data/public-keys/0/openssh-key").await,
        KEY
    );
    assert_eq!(
        leaf("/latest/meta-data/placement/availability-zone").await,
        "nova"
    );
    assert_eq!(leaf("/latest/meta-data/security-groups").await, "default");
    assert_eq!(
        leaf("/latest/meta-data/ami-id").await,
        format!("ami-{}", &image[..8])
    );
    assert_eq!(leaf("/latest/meta-data/public-ipv4").await, "");
    let reservation = leaf("/latest/meta-data/reservation-id").await;
    assert!(reservation.starts_with("r-"), "{reservation}");
    assert!(server["id"] == id.as_str());

    for missing in [
        "/latest/meta-data/nope",
        "/openstack/latest/nope.json",
        "/2001-01-01/meta-data/",
        "/openstack/2001-01-01/meta_data.json",
    ] {
        let a = get(&c, &id, &project, missing).await;
        assert_eq!(a.status, 404, "{missing}: {}", a.body);
        assert!(a.body.contains("<h1>404 Not Found</h1>"), "{}", a.body);
    }
}

#[tokio::test]
async fn the_guest_posts_its_password_once() {
    let (c, image, flavor, project) = cloud().await;
    let (id, _) = boot(
        &c,
        json!({"name": "pw", "imageRef": image, "flavorRef": flavor, "networks": "none"}),
    )
    .await;
    let path = "/openstack/latest/password";
    let post = |body: String| {
        let c = &c;
        let headers = signed(c, &id, &project);
        async move { ask(c, reqwest::Method::POST, path, &headers, &body).await }
    };
    let a = get(&c, &id, &project, path).await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    assert_eq!(post("x".repeat(1021)).await.status, 400);
    assert_eq!(post("encrypted-pw".into()).await.status, 200);
    let a = get(&c, &id, &project, path).await;
    assert_eq!((a.status, a.body.as_str()), (200, "encrypted-pw"));
    assert_eq!(post("another".into()).await.status, 409);
    let a = ask(
        &c,
        reqwest::Method::PUT,
        path,
        &signed(&c, &id, &project),
        "x",
    )
    .await;
    assert_eq!(a.status, 400);
    // The owner reads it through the compute API and clears it; then the guest may post
    // again.
    let n = nova(&c, "2.1");
    let r = n
        .get(&format!("/servers/{id}/os-server-password"))
        .await
        .unwrap();
    assert_eq!(r.body, json!({"password": "encrypted-pw"}));
    let r = n
        .delete(&format!("/servers/{id}/os-server-password"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let r = n
        .get(&format!("/servers/{id}/os-server-password"))
        .await
        .unwrap();
    assert_eq!(r.body, json!({"password": ""}));
    assert_eq!(post("again".into()).await.status, 200);

    // A server without user data, key or ports: no user_data, an empty network.
    let a = get(&c, &id, &project, "/openstack/latest/user_data").await;
    assert_eq!(a.status, 404);
    let a = get(&c, &id, &project, "/openstack/latest").await;
    assert!(!a.body.contains("user_data"), "{}", a.body);
    let a = get(&c, &id, &project, "/latest/meta-data/").await;
    assert!(!a.body.contains("public-keys"), "{}", a.body);
    let a = get(&c, &id, &project, "/openstack/latest/network_data.json").await;
    assert_eq!(
        a.json(),
        json!({"links": [], "networks": [], "services": []})
    );
    // Without a fixed address, local-ipv4 is the address the proxy saw.
    let a = get(&c, &id, &project, "/latest/meta-data/local-ipv4").await;
    assert_eq!(a.body, "10.7.0.99");
}

#[tokio::test]
async fn dhcp_subnets_are_announced_as_ipv4_dhcp() {
    let (c, image, flavor, project) = cloud().await;
    let net = network(&c, "dhcp", "10.8.0.0/24", json!({})).await;
    let (id, _) = boot(
        &c,
        json!({"name": "d", "imageRef": image, "flavorRef": flavor,
            "networks": [{"uuid": net}]}),
    )
    .await;
    let nd = get(&c, &id, &project, "/openstack/latest/network_data.json")
        .await
        .json();
    let link = nd["links"][0]["id"].clone();
    assert_eq!(
        nd["networks"],
        json!([{"id": "network0", "type": "ipv4_dhcp", "link": link, "network_id": net}])
    );
}

#[tokio::test]
async fn unsigned_foreign_and_unknown_requests_are_refused_as_nova_refuses_them() {
    let (c, image, flavor, project) = cloud().await;
    let (id, _) = boot(
        &c,
        json!({"name": "x", "imageRef": image, "flavorRef": flavor, "networks": "none"}),
    )
    .await;
    let path = "/openstack/latest/meta_data.json";
    let good = signed(&c, &id, &project);
    let without = |name: &str| -> Vec<(&'static str, Option<String>)> {
        good.iter()
            .map(|(n, v)| (*n, if *n == name { None } else { v.clone() }))
            .collect()
    };
    for (missing, message) in [
        (
            "X-Instance-ID",
            "X-Instance-ID header is missing from request.",
        ),
        (
            "X-Instance-ID-Signature",
            "X-Instance-ID-Signature header is missing from request.",
        ),
        ("X-Tenant-ID", "X-Tenant-ID header is missing from request."),
    ] {
        let a = ask(&c, reqwest::Method::GET, path, &without(missing), "").await;
        assert_eq!(a.status, 400, "{missing}");
        assert!(a.body.contains(message), "{}", a.body);
    }

    // A signature made with another secret, or for another instance.
    let mut forged = good.clone();
    forged[2].1 = Some(instance_signature("not-the-secret", &id));
    let a = ask(&c, reqwest::Method::GET, path, &forged, "").await;
    assert_eq!(a.status, 403);
    assert!(
        a.body.contains("Invalid proxy request signature."),
        "{}",
        a.body
    );
    forged[2].1 = Some(instance_signature(&c.cloud.metadata_secret, "other"));
    assert_eq!(
        ask(&c, reqwest::Method::GET, path, &forged, "")
            .await
            .status,
        403
    );

    // A well-signed id that names no instance, and another project's claim.
    let ghost = "00000000-0000-4000-8000-000000000000";
    assert_eq!(get(&c, ghost, &project, path).await.status, 404);
    assert_eq!(get(&c, &id, "someone-else", path).await.status, 404);
    // The instance deleted: gone from the metadata API too.
    let n = nova(&c, "2.1");
    assert_eq!(
        n.delete(&format!("/servers/{id}")).await.unwrap().status,
        204
    );
    crate::servers::wait_gone(&n, &id).await;
    assert_eq!(get(&c, &id, &project, path).await.status, 404);
    assert_eq!(
        get(&c, &id, &project, path).await.content_type,
        "text/html; charset=UTF-8"
    );
}

#[tokio::test]
async fn floating_ips_and_security_groups_are_read_fresh_from_the_network_api() {
    let (c, image, flavor, project) = cloud().await;
    let n = neutron(&c);
    let r = n
        .post(
            "/v2.0/networks",
            &json!({"network": {"name": "public", "router:external": true,
                "provider:network_type": "flat", "provider:physical_network": "public"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let ext = r.body["network"]["id"].as_str().unwrap().to_string();
    let r = n
        .post(
            "/v2.0/subnets",
            &json!({"subnet": {"network_id": ext, "cidr": "172.24.4.0/24", "ip_version": 4}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let net = network(&c, "private", "10.9.0.0/24", json!({})).await;
    let r = n
        .get(&format!("/v2.0/subnets?network_id={net}"))
        .await
        .unwrap();
    let subnet = r.body["subnets"][0]["id"].as_str().unwrap().to_string();
    let r = n
        .post(
            "/v2.0/routers",
            &json!({"router": {"name": "r", "external_gateway_info": {"network_id": ext}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let router = r.body["router"]["id"].as_str().unwrap().to_string();
    let r = n
        .put(
            &format!("/v2.0/routers/{router}/add_router_interface"),
            Some(&json!({ "subnet_id": subnet })),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let (id, _) = boot(
        &c,
        json!({"name": "fip", "imageRef": image, "flavorRef": flavor,
            "networks": [{"uuid": net}]}),
    )
    .await;
    let path = "/latest/meta-data/public-ipv4";
    assert_eq!(get(&c, &id, &project, path).await.body, "");
    let r = n.get(&format!("/v2.0/ports?device_id={id}")).await.unwrap();
    let port = r.body["ports"][0]["id"].as_str().unwrap().to_string();
    let r = n
        .post(
            "/v2.0/floatingips",
            &json!({"floatingip": {"floating_network_id": ext, "port_id": port}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let fip = r.body["floatingip"]["floating_ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&c, &id, &project, path).await.body, fip);

    // A group added to the server shows at once.
    let r = n
        .post(
            "/v2.0/security-groups",
            &json!({"security_group": {"name": "web"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let r = nova(&c, "2.1")
        .post(
            &format!("/servers/{id}/action"),
            &json!({"addSecurityGroup": {"name": "web"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let groups = get(&c, &id, &project, "/latest/meta-data/security-groups").await;
    assert_eq!(groups.body, "default\nweb");
}
