//! Get-me-a-network: `auto-allocated-topology` makes a project's network, subnet (from the
//! default subnet pool) and router (to the default external network) once; Nova uses it for
//! `networks: "auto"` when the project has no network; it fails as upstream without defaults.

use ferro_testkit::TestCloud;
use serde_json::{Value, json};

use crate::server_networks::neutron;
use crate::servers::{image_and_flavor, wait_hosts, wait_status};

async fn member(c: &TestCloud, project: &str) -> (ferro_client::Client, String) {
    let (pid, _) = c.project_user(project, project, "pw", "member").await;
    let (client, _) = c.login(project, "pw", Some(project)).await.unwrap();
    (client, pid)
}

#[tokio::test]
async fn a_project_gets_one_topology_from_the_defaults() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let n = neutron(&c);
    let (alice, pid) = member(&c, "alice").await;
    let a = alice.clone_with_base(&c.network_url);
    let path = |p: &str| format!("/v2.0/auto-allocated-topology/{p}");

    let r = a
        .get(&format!("{}?fields=dry-run", path(&pid)))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["NeutronError"]["type"], "AutoAllocationFailure");
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Deployment error: No default router:external network."
    );

    // The default external network: one only; other networks have no is_default.
    let ext = n
        .post(
            "/v2.0/networks",
            &json!({"network": {"name": "public", "router:external": true, "is_default": true}}),
        )
        .await
        .unwrap();
    assert_eq!(ext.status, 201, "{}", ext.body);
    assert_eq!(ext.body["network"]["is_default"], true);
    let ext_id = ext.body["network"]["id"].as_str().unwrap().to_string();
    let r = n
        .post(
            "/v2.0/subnets",
            &json!({"subnet": {"network_id": ext_id, "cidr": "172.24.8.0/24", "ip_version": 4}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let r = n
        .post(
            "/v2.0/networks",
            &json!({"network": {"name": "public2", "router:external": true, "is_default": true}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.body["NeutronError"]["type"],
        "DefaultExternalNetworkExists"
    );
    let r = n
        .post("/v2.0/networks", &json!({"network": {"name": "plain"}}))
        .await
        .unwrap();
    assert!(r.body["network"].get("is_default").is_none(), "{}", r.body);
    let r = a
        .post(
            "/v2.0/networks",
            &json!({"network": {"name": "x", "is_default": true}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "only admins set is_default: {}", r.body);

    let r = a
        .get(&format!("{}?fields=dry-run", path(&pid)))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Deployment error: No default subnetpools defined."
    );
    let r = n
        .post(
            "/v2.0/subnetpools",
            &json!({"subnetpool": {"name": "default-v4", "prefixes": ["10.100.0.0/16"],
                "default_prefixlen": 26, "is_default": true, "shared": true}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let r = a
        .get(&format!("{}?fields=dry-run", path(&pid)))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["auto_allocated_topology"]["id"], "dry-run=pass");
    let r = a.get(&format!("{}?fields=name", path(&pid))).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);

    // Made once, answered again; another project's is not the caller's business.
    let r = a.get(&path("None")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["auto_allocated_topology"]["project_id"],
        pid.as_str()
    );
    let net = r.body["auto_allocated_topology"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = a.get(&path(&pid)).await.unwrap();
    assert_eq!(again.body["auto_allocated_topology"]["id"], net.as_str());
    let (_, other) = member(&c, "bob").await;
    assert_eq!(a.get(&path(&other)).await.unwrap().status, 403);

    let shown = a.get(&format!("/v2.0/networks/{net}")).await.unwrap();
    assert_eq!(shown.body["network"]["name"], "auto_allocated_network");
    assert_eq!(shown.body["network"]["admin_state_up"], true);
    assert_eq!(shown.body["network"]["project_id"], pid.as_str());
    let subnets = a
        .get(&format!("/v2.0/subnets?network_id={net}"))
        .await
        .unwrap();
    let sn = &subnets.body["subnets"][0];
    assert!(sn["cidr"].as_str().unwrap().starts_with("10.100."), "{sn}");
    assert!(sn["cidr"].as_str().unwrap().ends_with("/26"), "{sn}");
    let routers = a.get("/v2.0/routers").await.unwrap();
    let routers: Vec<&Value> = routers.body["routers"].as_array().unwrap().iter().collect();
    assert_eq!(routers.len(), 1);
    assert_eq!(routers[0]["name"], "auto_allocated_router");
    assert_eq!(
        routers[0]["external_gateway_info"]["network_id"],
        ext_id.as_str()
    );

    // Nova boots a project without networks onto it.
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let (carol, _) = member(&c, "carol").await;
    let nova = carol
        .clone_with_base(&format!("{}/v2.1", c.compute_url))
        .with_header("OpenStack-API-Version", "compute 2.37");
    let r = nova
        .post(
            "/servers",
            &json!({"server": {"name": "auto", "imageRef": image, "flavorRef": flavor,
                "networks": "auto"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&nova, &id, "ACTIVE").await;
    let addr = s["addresses"]["auto_allocated_network"][0]["addr"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(addr.starts_with("10.100."), "{s}");
    assert_eq!(
        nova.delete(&format!("/servers/{id}")).await.unwrap().status,
        204
    );
    crate::servers::wait_gone(&nova, &id).await;

    // Deleting the topology removes the router and the network.
    let r = a.delete(&path(&pid)).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        a.get(&format!("/v2.0/networks/{net}"))
            .await
            .unwrap()
            .status,
        404
    );
    let routers = a.get("/v2.0/routers").await.unwrap();
    assert!(
        routers.body["routers"].as_array().unwrap().is_empty(),
        "{}",
        routers.body
    );
}
