//! Neutron's v2.0 API as the openstack CLI, openstacksdk and Tempest see it: discovery,
//! networks, subnets and IPAM, ports, security groups, list handling, faults and policy.

use ferro_testkit::TestCloud;
use serde_json::{Value, json};

/// A network API client holding one token.
#[derive(Clone)]
struct Net {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

struct Resp {
    status: u16,
    body: Value,
}

impl Resp {
    fn kind(&self) -> &str {
        self.body["NeutronError"]["type"].as_str().unwrap_or("")
    }
}

impl Net {
    fn admin(c: &TestCloud) -> Net {
        Net {
            base: c.network_url.clone(),
            token: c.admin.token.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// A member (or `role`) of a fresh project.
    async fn user(c: &TestCloud, project: &str, user: &str, role: &str) -> (Net, String) {
        let (pid, _) = c.project_user(project, user, "pw", role).await;
        let (client, _) = c.login(user, "pw", Some(project)).await.unwrap();
        (
            Net {
                token: client.token.clone(),
                ..Net::admin(c)
            },
            pid,
        )
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(m) = if_match {
            req = req.header("If-Match", m);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.expect("network API answers");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        Resp {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(&body), None)
            .await
    }
    async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::PUT, path, Some(&body), None)
            .await
    }
    async fn delete(&self, path: &str) -> Resp {
        self.send(reqwest::Method::DELETE, path, None, None).await
    }

    async fn network(&self, body: Value) -> Value {
        let r = self.post("/v2.0/networks", json!({"network": body})).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["network"].clone()
    }

    async fn subnet(&self, net: &str, cidr: &str, extra: Value) -> Value {
        let mut body = json!({"network_id": net, "cidr": cidr,
                              "ip_version": if cidr.contains(':') { 6 } else { 4 }});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let r = self.post("/v2.0/subnets", json!({"subnet": body})).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["subnet"].clone()
    }

    async fn port(&self, body: Value) -> Resp {
        self.post("/v2.0/ports", json!({"port": body})).await
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

#[tokio::test]
async fn discovery_lists_versions_resources_and_extensions() {
    let c = TestCloud::start().await;
    let n = Net::admin(&c);
    let anon = Net {
        token: None,
        ..n.clone()
    };
    let r = anon.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["versions"][0]["id"], "v2.0");
    assert_eq!(r.body["versions"][0]["status"], "CURRENT");
    let r = n.get("/v2.0/").await;
    let names: Vec<&str> = r.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["collection"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"networks") && names.contains(&"ports"),
        "{names:?}"
    );
    let r = n.get("/v2.0/extensions").await;
    let aliases: Vec<&str> = r.body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["alias"].as_str().unwrap())
        .collect();
    for a in [
        "router",
        "extraroute",
        "agent",
        "provider",
        "external-net",
        "security-group",
        "binding",
        "revision-if-match",
    ] {
        assert!(aliases.contains(&a), "{a} missing from {aliases:?}");
    }
    assert_eq!(n.get("/v2.0/extensions/provider").await.status, 200);
    let r = n.get("/v2.0/extensions/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(anon.get("/v2.0/networks").await.status, 401);
    // Neutron is in the catalog under its own type, unversioned.
    let cat = c.admin.get("/v3/auth/catalog").await.unwrap();
    let entry = cat.body["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "network")
        .expect("network in catalog")
        .clone();
    assert_eq!(entry["name"], "neutron");
    assert_eq!(entry["endpoints"][0]["url"], c.network_url.as_str());
}

#[tokio::test]
async fn network_crud_with_provider_segments_and_revisions() {
    let c = TestCloud::start().await;
    let n = Net::admin(&c);
    let net = n.network(json!({"name": "n1"})).await;
    assert_eq!(net["status"], "ACTIVE");
    assert_eq!(net["provider:network_type"], "vxlan");
    assert_eq!(net["provider:segmentation_id"], 1);
    assert_eq!(net["mtu"], 1450);
    assert_eq!(net["revision_number"], 0);
    assert_eq!(net["shared"], false);
    assert_eq!(net["router:external"], false);
    assert_eq!(net["port_security_enabled"], true);
    assert_eq!(net["tenant_id"], net["project_id"]);
    let second = n.network(json!({"name": "n2"})).await;
    assert_eq!(second["provider:segmentation_id"], 2);
    let vlan = n
        .network(json!({"provider:network_type": "vlan", "provider:physical_network": "physnet1"}))
        .await;
    assert_eq!(vlan["provider:segmentation_id"], 1000);
    assert_eq!(vlan["mtu"], 1500);
    let r = n
        .post(
            "/v2.0/networks",
            json!({"network": {"provider:network_type": "vlan",
              "provider:physical_network": "physnet1", "provider:segmentation_id": 1000}}),
        )
        .await;
    assert_eq!((r.status, r.kind()), (409, "VlanIdInUse"));
    let flat = n
        .network(json!({"provider:network_type": "flat", "provider:physical_network": "ext", "router:external": true}))
        .await;
    assert_eq!(flat["provider:segmentation_id"], Value::Null);
    let r = n
        .post("/v2.0/networks", json!({"network": {"provider:network_type": "flat", "provider:physical_network": "ext"}}))
        .await;
    assert_eq!((r.status, r.kind()), (409, "FlatNetworkInUse"));
    let r = n
        .post(
            "/v2.0/networks",
            json!({"network": {"provider:network_type": "gre"}}),
        )
        .await;
    assert_eq!((r.status, r.kind()), (400, "InvalidInput"));
    let r = n
        .post("/v2.0/networks", json!({"network": {"bogus": 1}}))
        .await;
    assert_eq!(r.status, 400);

    let nid = id(&net);
    let r = n
        .put(
            &format!("/v2.0/networks/{nid}"),
            json!({"network": {"name": "renamed", "mtu": 1400}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["network"]["name"], "renamed");
    assert_eq!(r.body["network"]["revision_number"], 1);
    // If-Match: revision_number compare-and-swap.
    let r = n
        .send(
            reqwest::Method::PUT,
            &format!("/v2.0/networks/{nid}"),
            Some(&json!({"network": {"name": "stale"}})),
            Some("revision_number=0"),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (412, "RevisionNumberConstraintFailed")
    );
    let r = n
        .send(
            reqwest::Method::PUT,
            &format!("/v2.0/networks/{nid}"),
            Some(&json!({"network": {"name": "fresh"}})),
            Some("revision_number=1"),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = n
        .put(
            &format!("/v2.0/networks/{nid}"),
            json!({"network": {"provider:segmentation_id": 9}}),
        )
        .await;
    assert_eq!(r.status, 400);

    let r = n
        .send(
            reqwest::Method::DELETE,
            &format!("/v2.0/networks/{nid}"),
            None,
            Some("revision_number=1"),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (412, "RevisionNumberConstraintFailed")
    );
    let r = n
        .get(&format!("/v2.0/networks/{nid}?fields=name&fields=id"))
        .await;
    assert_eq!(
        r.body["network"].as_object().unwrap().len(),
        2,
        "{:?}",
        r.body
    );
    assert_eq!(n.delete(&format!("/v2.0/networks/{nid}")).await.status, 204);
    let r = n.get(&format!("/v2.0/networks/{nid}")).await;
    assert_eq!((r.status, r.kind()), (404, "NetworkNotFound"));
    assert!(
        r.body["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .contains(&nid)
    );
    // Its VNI went back to the pool.
    let again = n.network(json!({})).await;
    assert_eq!(again["provider:segmentation_id"], 1);
}

#[tokio::test]
async fn lists_filter_sort_page_and_select_fields() {
    let c = TestCloud::start().await;
    let n = Net::admin(&c);
    for name in ["a", "b", "c", "d", "e"] {
        n.network(json!({"name": name, "shared": name == "c"}))
            .await;
    }
    let r = n.get("/v2.0/networks?name=a&name=c").await;
    assert_eq!(r.body["networks"].as_array().unwrap().len(), 2);
    let r = n.get("/v2.0/networks?shared=True").await;
    assert_eq!(r.body["networks"][0]["name"], "c");
    let r = n
        .get("/v2.0/networks?sort_key=name&sort_dir=desc&fields=name")
        .await;
    let names: Vec<&str> = r.body["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e", "d", "c", "b", "a"]);
    assert!(r.body["networks"][0].get("id").is_none());
    // Page through two at a time by the next links.
    let mut seen = Vec::new();
    let mut path = "/v2.0/networks?limit=2&sort_key=name&sort_dir=asc".to_string();
    loop {
        let r = n.get(&path).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for x in r.body["networks"].as_array().unwrap() {
            seen.push(x["name"].as_str().unwrap().to_string());
        }
        let next = r.body["networks_links"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["rel"] == "next"))
            .map(|x| x["href"].as_str().unwrap().to_string());
        match next {
            Some(href) => path = href.strip_prefix(&c.network_url).unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(n.get("/v2.0/networks?sort_key=nope").await.status, 400);
    assert_eq!(n.get("/v2.0/networks?limit=x").await.status, 400);
    assert_eq!(
        n.get("/v2.0/networks?marker=nope&limit=1").await.status,
        400
    );
}

#[tokio::test]
async fn subnets_validate_cidrs_pools_gateways_and_overlaps() {
    let c = TestCloud::start().await;
    let n = Net::admin(&c);
    let net = id(&n.network(json!({})).await);
    let s4 = n
        .subnet(
            &net,
            "10.0.0.0/24",
            json!({"dns_nameservers": ["8.8.8.8"],
        "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]}),
        )
        .await;
    assert_eq!(s4["gateway_ip"], "10.0.0.1");
    assert_eq!(
        s4["allocation_pools"],
        json!([{"start": "10.0.0.2", "end": "10.0.0.254"}])
    );
    assert_eq!(s4["enable_dhcp"], true);
    assert_eq!(s4["dns_nameservers"], json!(["8.8.8.8"]));
    let r = n.get(&format!("/v2.0/networks/{net}")).await;
    assert_eq!(r.body["network"]["subnets"], json!([s4["id"]]));
    assert_eq!(
        r.body["network"]["revision_number"], 1,
        "a new subnet bumps its network"
    );

    let bad = |cidr: &str, extra: Value| {
        let mut body = json!({"network_id": net, "cidr": cidr, "ip_version": 4});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        json!({"subnet": body})
    };
    // Overlap within the network.
    let r = n
        .post("/v2.0/subnets", bad("10.0.0.128/25", json!({})))
        .await;
    assert_eq!((r.status, r.kind()), (400, "InvalidInput"), "{:?}", r.body);
    let r = n.post("/v2.0/subnets", bad("10.0.1.5/24", json!({}))).await;
    assert_eq!(r.status, 400);
    let r = n.post("/v2.0/subnets", bad("nonsense", json!({}))).await;
    assert_eq!(r.status, 400);
    let r = n
        .post(
            "/v2.0/subnets",
            bad("10.0.1.0/24", json!({"ip_version": 6})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = n
        .post(
            "/v2.0/subnets",
            bad(
                "10.0.1.0/24",
                json!({"allocation_pools": [{"start": "10.0.2.1", "end": "10.0.2.9"}]}),
            ),
        )
        .await;
    assert_eq!((r.status, r.kind()), (400, "OutOfBoundsAllocationPool"));
    let r = n
        .post("/v2.0/subnets", bad("10.0.1.0/24", json!({"allocation_pools": [
            {"start": "10.0.1.10", "end": "10.0.1.20"}, {"start": "10.0.1.15", "end": "10.0.1.30"}]})))
        .await;
    assert_eq!((r.status, r.kind()), (409, "OverlappingAllocationPools"));
    let r = n
        .post(
            "/v2.0/subnets",
            bad(
                "10.0.1.0/24",
                json!({"gateway_ip": "10.0.1.5",
            "allocation_pools": [{"start": "10.0.1.2", "end": "10.0.1.9"}]}),
            ),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (409, "GatewayConflictWithAllocationPools")
    );
    let r = n
        .post(
            "/v2.0/subnets",
            bad("10.0.1.0/24", json!({"gateway_ip": "10.9.9.9"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = n
        .post(
            "/v2.0/subnets",
            bad("10.0.1.0/24", json!({"dns_nameservers": ["x"]})),
        )
        .await;
    assert_eq!(r.status, 400);
    // No gateway: the pool spans every usable address.
    let nogw = n
        .subnet(&net, "10.0.1.0/29", json!({"gateway_ip": null}))
        .await;
    assert_eq!(nogw["gateway_ip"], Value::Null);
    assert_eq!(
        nogw["allocation_pools"],
        json!([{"start": "10.0.1.1", "end": "10.0.1.6"}])
    );
    // The same CIDR on another network is fine.
    let other = id(&n.network(json!({})).await);
    n.subnet(&other, "10.0.0.0/24", json!({})).await;

    let s6 = n
        .subnet(
            &net,
            "2001:db8::/64",
            json!({"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
        )
        .await;
    assert_eq!(s6["gateway_ip"], "2001:db8::1");
    assert_eq!(s6["ipv6_address_mode"], "slaac");
    let r = n
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "2001:db9::/80",
              "ip_version": 6, "ipv6_address_mode": "slaac"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = n
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "2001:dba::/64",
              "ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"}}),
        )
        .await;
    assert_eq!(r.status, 400);

    let sid = id(&s4);
    let r = n
        .put(
            &format!("/v2.0/subnets/{sid}"),
            json!({"subnet": {"name": "x", "dns_nameservers": []}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["subnet"]["revision_number"], 1);
    let r = n
        .put(
            &format!("/v2.0/subnets/{sid}"),
            json!({"subnet": {"cidr": "10.0.0.0/16"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = n
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": "nope", "cidr": "10.5.0.0/24", "ip_version": 4}}),
        )
        .await;
    assert_eq!((r.status, r.kind()), (404, "NetworkNotFound"));
}

#[tokio::test]
async fn ports_get_addresses_macs_and_groups() {
    let c = TestCloud::start().await;
    let n = Net::admin(&c);
    let net = id(&n.network(json!({})).await);
    let s4 = id(&n.subnet(&net, "10.1.0.0/24", json!({})).await);
    let s6 = id(&n
        .subnet(
            &net,
            "2001:db8:1::/64",
            json!({"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
        )
        .await);
    let r = n
        .port(
            json!({"network_id": net, "name": "p1", "device_owner": "compute:nova",
                          "device_id": "vm1", "binding:host_id": "host1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let p = r.body["port"].clone();
    let mac = p["mac_address"].as_str().unwrap();
    assert!(mac.starts_with("fa:16:3e:"), "{mac}");
    let ips = p["fixed_ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(ips.iter().any(|f| f["subnet_id"] == s4.as_str()));
    let v6 = ips.iter().find(|f| f["subnet_id"] == s6.as_str()).unwrap();
    assert!(v6["ip_address"].as_str().unwrap().contains("ff:fe"), "{v6}");
    assert_eq!(p["binding:vif_type"], "bridge");
    assert_eq!(p["status"], "DOWN");
    assert_eq!(p["security_groups"].as_array().unwrap().len(), 1);

    let r = n
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": "10.1.0.50"}]}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["port"]["fixed_ips"],
        json!([{"subnet_id": s4, "ip_address": "10.1.0.50"}])
    );
    let held = id(&r.body["port"]);
    let r = n
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": "10.1.0.50"}]}))
        .await;
    assert_eq!((r.status, r.kind()), (409, "IpAddressAlreadyAllocated"));
    let r = n
        .port(
            json!({"network_id": net, "fixed_ips": [{"subnet_id": s4, "ip_address": "10.9.0.5"}]}),
        )
        .await;
    assert_eq!((r.status, r.kind()), (400, "InvalidIpForSubnet"));
    let r = n
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": "172.16.0.5"}]}))
        .await;
    assert_eq!((r.status, r.kind()), (400, "InvalidIpForNetwork"));
    let r = n.port(json!({"network_id": net, "mac_address": mac})).await;
    assert_eq!((r.status, r.kind()), (409, "MacAddressInUse"));
    let r = n.port(json!({"network_id": net, "allowed_address_pairs": [{"ip_address": "10.1.0.0/28"}],
                          "extra_dhcp_opts": [{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"}]})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["port"]["allowed_address_pairs"][0]["mac_address"],
        r.body["port"]["mac_address"]
    );
    assert_eq!(r.body["port"]["extra_dhcp_opts"][0]["ip_version"], 4);
    let r = n
        .port(json!({"network_id": net, "port_security_enabled": false, "fixed_ips": []}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["port"]["security_groups"], json!([]));
    assert_eq!(r.body["port"]["fixed_ips"], json!([]));

    // Releasing an address returns it: the held address is free once its port is updated.
    let r = n
        .put(
            &format!("/v2.0/ports/{held}"),
            json!({"port": {"fixed_ips": [{"ip_address": "10.1.0.51"}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["port"]["revision_number"], 1);
    let r = n
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": "10.1.0.50"}]}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let again = id(&r.body["port"]);
    assert_eq!(n.delete(&format!("/v2.0/ports/{again}")).await.status, 204);
    let r = n
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": "10.1.0.50"}]}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let r = n.get("/v2.0/ports?fixed_ips=ip_address%3D10.1.0.51").await;
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["ports"][0]["id"], held.as_str());
    let r = n.get("/v2.0/ports?device_id=vm1").await;
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 1);

    // Ports in use keep the network; a DHCP port does not.
    let r = n.delete(&format!("/v2.0/networks/{net}")).await;
    assert_eq!((r.status, r.kind()), (409, "NetworkInUse"));
    let r = n.delete(&format!("/v2.0/subnets/{s4}")).await;
    assert_eq!((r.status, r.kind()), (409, "SubnetInUse"));
    let r = n.get(&format!("/v2.0/ports?network_id={net}")).await;
    for p in r.body["ports"].as_array().unwrap() {
        assert_eq!(
            n.delete(&format!("/v2.0/ports/{}", id(p))).await.status,
            204
        );
    }
    let r = n
        .port(json!({"network_id": net, "device_owner": "network:dhcp"}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["port"]["security_groups"], json!([]));
    assert_eq!(n.delete(&format!("/v2.0/networks/{net}")).await.status, 204);
    let r = n.get(&format!("/v2.0/ports/{}", id(&r.body["port"]))).await;
    assert_eq!((r.status, r.kind()), (404, "PortNotFound"));
}

#[tokio::test]
async fn concurrent_ports_never_share_an_address_and_exhaustion_is_409() {
    let c = TestCloud::start().await;
    let n = Net::admin(&c);
    let net = id(&n.network(json!({})).await);
    // A /26: 61 addresses in the pool (62 usable less the gateway).
    n.subnet(&net, "10.2.0.0/26", json!({})).await;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let n = n.clone();
            let net = net.clone();
            tokio::spawn(async move { n.port(json!({"network_id": net})).await })
        })
        .collect();
    let mut ips = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{:?}", r.body);
        ips.push(
            r.body["port"]["fixed_ips"][0]["ip_address"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 40, "duplicate addresses handed out: {ips:?}");
    assert!(!ips.contains(&"10.2.0.1".to_string()), "gateway handed out");
    for _ in 40..61 {
        let r = n.port(json!({"network_id": net})).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = n.port(json!({"network_id": net})).await;
    assert_eq!(
        (r.status, r.kind()),
        (409, "IpAddressGenerationFailure"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn security_groups_default_rules_and_validation() {
    let c = TestCloud::start().await;
    let (m, pid) = Net::user(&c, "sgp", "sgu", "member").await;
    let r = m.get("/v2.0/security-groups").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let groups = r.body["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let def = groups[0].clone();
    assert_eq!(def["name"], "default");
    assert_eq!(def["project_id"], pid.as_str());
    let rules = def["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    let ingress: Vec<&Value> = rules
        .iter()
        .filter(|r| r["direction"] == "ingress")
        .collect();
    assert_eq!(ingress.len(), 2);
    assert!(ingress.iter().all(|r| r["remote_group_id"] == def["id"]));
    // Listing again makes no second default group.
    let r = m.get("/v2.0/security-groups?name=default").await;
    assert_eq!(r.body["security_groups"].as_array().unwrap().len(), 1);

    let r = m
        .post(
            "/v2.0/security-groups",
            json!({"security_group": {"name": "web"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let web = id(&r.body["security_group"]);
    assert_eq!(
        r.body["security_group"]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let rule = |body: Value| {
        let mut b = json!({"security_group_id": web, "direction": "ingress"});
        if let Value::Object(m) = body {
            for (k, v) in m {
                b[k] = v;
            }
        }
        json!({"security_group_rule": b})
    };
    let r = m
        .post(
            "/v2.0/security-group-rules",
            rule(json!({"protocol": "tcp", "port_range_min": 22,
              "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let ssh = id(&r.body["security_group_rule"]);
    let r = m
        .post(
            "/v2.0/security-group-rules",
            rule(json!({"protocol": "6", "port_range_min": 22,
              "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"})),
        )
        .await;
    assert_eq!((r.status, r.kind()), (409, "SecurityGroupRuleExists"));
    assert!(
        r.body["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .contains(&ssh)
    );
    let r = m
        .post(
            "/v2.0/security-group-rules",
            rule(json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 20})),
        )
        .await;
    assert_eq!((r.status, r.kind()), (400, "SecurityGroupInvalidPortRange"));
    let r = m
        .post(
            "/v2.0/security-group-rules",
            rule(json!({"protocol": "nope"})),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (400, "SecurityGroupRuleInvalidProtocol")
    );
    let r = m
        .post(
            "/v2.0/security-group-rules",
            rule(json!({"port_range_min": 1, "port_range_max": 2})),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (400, "SecurityGroupProtocolRequiredWithPorts")
    );
    let r = m
        .post(
            "/v2.0/security-group-rules",
            rule(json!({"remote_ip_prefix": "::/0"})),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (400, "SecurityGroupRuleParameterConflict")
    );
    let r = m
        .post(
            "/v2.0/security-group-rules",
            rule(json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": web})),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (400, "SecurityGroupRemoteGroupAndRemoteIpPrefix")
    );
    let r = m
        .post("/v2.0/security-group-rules", rule(json!({"protocol": "icmp", "port_range_min": 8, "port_range_max": 0, "remote_group_id": web})))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = m
        .post(
            "/v2.0/security-group-rules",
            rule(json!({"direction": "sideways"})),
        )
        .await;
    assert_eq!(r.status, 400);

    let r = m
        .delete(&format!("/v2.0/security-groups/{}", id(&def)))
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (409, "SecurityGroupCannotRemoveDefault")
    );
    assert_eq!(
        m.delete(&format!("/v2.0/security-group-rules/{ssh}"))
            .await
            .status,
        204
    );
    let r = m.get(&format!("/v2.0/security-group-rules/{ssh}")).await;
    assert_eq!((r.status, r.kind()), (404, "SecurityGroupRuleNotFound"));

    // A group in use by a port stays.
    let net = id(&m.network(json!({})).await);
    let r = m
        .port(json!({"network_id": net, "security_groups": [web]}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let port = id(&r.body["port"]);
    let r = m.delete(&format!("/v2.0/security-groups/{web}")).await;
    assert_eq!((r.status, r.kind()), (409, "SecurityGroupInUse"));
    assert_eq!(m.delete(&format!("/v2.0/ports/{port}")).await.status, 204);
    assert_eq!(
        m.delete(&format!("/v2.0/security-groups/{web}"))
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn non_admins_see_their_own_shared_and_external_networks_only() {
    let c = TestCloud::start().await;
    let admin = Net::admin(&c);
    let (alice, apid) = Net::user(&c, "pa", "alice", "member").await;
    let (bob, _) = Net::user(&c, "pb", "bob", "member").await;
    let (reader, _) = Net::user(&c, "pr", "rita", "reader").await;

    let mine = alice.network(json!({"name": "mine"})).await;
    assert_eq!(mine["project_id"], apid.as_str());
    // Provider attributes are the admin's.
    assert!(mine.get("provider:network_type").is_none(), "{mine}");
    let r = alice
        .post(
            "/v2.0/networks",
            json!({"network": {"provider:network_type": "vlan"}}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = alice
        .post("/v2.0/networks", json!({"network": {"shared": true}}))
        .await;
    assert_eq!(r.status, 403);
    let shared = admin
        .network(json!({"name": "shared", "shared": true}))
        .await;
    let ext = admin
        .network(json!({"name": "ext", "router:external": true}))
        .await;
    admin.network(json!({"name": "hidden"})).await;

    let r = bob.get("/v2.0/networks").await;
    let names: Vec<&str> = r.body["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"shared") && names.contains(&"ext"));
    let r = bob.get(&format!("/v2.0/networks/{}", id(&mine))).await;
    assert_eq!((r.status, r.kind()), (404, "NetworkNotFound"));
    let r = bob.delete(&format!("/v2.0/networks/{}", id(&shared))).await;
    assert_eq!(r.status, 403);
    let r = bob
        .put(
            &format!("/v2.0/networks/{}", id(&mine)),
            json!({"network": {"name": "x"}}),
        )
        .await;
    assert_eq!(r.status, 404);
    // A subnet of a shared network is visible; ports on it may be made by others.
    let sub = admin.subnet(&id(&shared), "10.3.0.0/24", json!({})).await;
    assert_eq!(
        bob.get(&format!("/v2.0/subnets/{}", id(&sub))).await.status,
        200
    );
    let r = bob.port(json!({"network_id": id(&shared)})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.body["port"].get("binding:host_id").is_none());
    let r = admin
        .put(
            &format!("/v2.0/networks/{}", id(&shared)),
            json!({"network": {"shared": false}}),
        )
        .await;
    assert_eq!((r.status, r.kind()), (409, "InvalidSharedSetting"));
    let r = bob
        .port(json!({"network_id": id(&shared), "fixed_ips": [{"ip_address": "10.3.0.9"}]}))
        .await;
    assert_eq!(r.status, 403);
    let r = bob
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": id(&shared), "cidr": "10.4.0.0/24", "ip_version": 4}}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = bob
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": id(&ext), "cidr": "10.4.0.0/24", "ip_version": 4}}),
        )
        .await;
    assert_eq!(r.status, 404, "an unshared network is hidden: {:?}", r.body);
    let r = bob.port(json!({"network_id": id(&ext)})).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    // Readers read, never write.
    assert_eq!(reader.get("/v2.0/networks").await.status, 200);
    assert_eq!(
        reader
            .post("/v2.0/networks", json!({"network": {}}))
            .await
            .status,
        403
    );
    // Admin sees everything, provider attributes included.
    let r = admin.get("/v2.0/networks").await;
    assert_eq!(r.body["networks"].as_array().unwrap().len(), 4);
    assert!(r.body["networks"][0].get("provider:network_type").is_some());
}

#[tokio::test]
async fn bulk_create_and_bad_bodies_answer_neutron_faults() {
    let c = TestCloud::start().await;
    let n = Net::admin(&c);
    let r = n
        .post(
            "/v2.0/networks",
            json!({"networks": [{"name": "b1"}, {"name": "b2"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["networks"].as_array().unwrap().len(), 2);
    // A failing member undoes the bulk.
    let r = n
        .post(
            "/v2.0/networks",
            json!({"networks": [{"name": "b3"}, {"name": "b4", "mtu": 99999}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = n.get("/v2.0/networks?name=b3").await;
    assert_eq!(r.body["networks"].as_array().unwrap().len(), 0);
    let r = n
        .send(reqwest::Method::POST, "/v2.0/networks", None, None)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["NeutronError"]["type"].is_string(), "{:?}", r.body);
    let r = n.post("/v2.0/networks", json!({"nope": {}})).await;
    assert_eq!(r.status, 400);
    let r = n
        .post("/v2.0/ports", json!({"port": {"network_id": 5}}))
        .await;
    assert_eq!(r.status, 400);
    let r = n.get("/v2.0/nothing").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn routers_interfaces_routes_and_floating_ips() {
    let c = TestCloud::start().await;
    let admin = Net::admin(&c);
    let (m, _) = Net::user(&c, "l3p", "l3u", "member").await;
    let ext = id(&admin
        .network(json!({"name": "public", "router:external": true,
                        "provider:network_type": "flat", "provider:physical_network": "public"}))
        .await);
    admin.subnet(&ext, "172.24.4.0/24", json!({})).await;
    let net = id(&m.network(json!({"name": "private"})).await);
    let sub = id(&m.subnet(&net, "10.10.0.0/24", json!({})).await);

    let r = m
        .post(
            "/v2.0/routers",
            json!({"router": {"name": "r1",
              "external_gateway_info": {"network_id": ext, "enable_snat": false}}}),
        )
        .await;
    assert_eq!(r.status, 403, "choosing SNAT is the admin's: {:?}", r.body);
    let r = m
        .post(
            "/v2.0/routers",
            json!({"router": {"name": "r1", "external_gateway_info": {"network_id": ext}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let router = r.body["router"].clone();
    let rid = id(&router);
    let gw = &router["external_gateway_info"];
    assert_eq!(gw["enable_snat"], true);
    assert!(
        gw["external_fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .starts_with("172.24.4.")
    );
    let r = m
        .post(
            "/v2.0/routers",
            json!({"router": {"external_gateway_info": {"network_id": net}}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);

    let r = m
        .put(
            &format!("/v2.0/routers/{rid}/add_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["subnet_id"], sub.as_str());
    let iface = r.body["port_id"].as_str().unwrap().to_string();
    let r = m.get(&format!("/v2.0/ports/{iface}")).await;
    assert_eq!(r.body["port"]["device_owner"], "network:router_interface");
    assert_eq!(r.body["port"]["fixed_ips"][0]["ip_address"], "10.10.0.1");
    let r = m
        .put(
            &format!("/v2.0/routers/{rid}/add_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = m.delete(&format!("/v2.0/ports/{iface}")).await;
    assert_eq!((r.status, r.kind()), (409, "L3PortInUse"));
    let r = m.delete(&format!("/v2.0/routers/{rid}")).await;
    assert_eq!((r.status, r.kind()), (409, "RouterInUse"));

    let r = m
        .put(
            &format!("/v2.0/routers/{rid}"),
            json!({"router": {"routes": [
            {"destination": "192.168.100.0/24", "nexthop": "10.10.0.50"}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["router"]["routes"][0]["nexthop"], "10.10.0.50");
    let r = m
        .put(
            &format!("/v2.0/routers/{rid}"),
            json!({"router": {"routes": [
            {"destination": "192.168.100.0/24", "nexthop": "192.0.2.1"}]}}),
        )
        .await;
    assert_eq!((r.status, r.kind()), (400, "InvalidRoutes"));

    let vm = m.port(json!({"network_id": net})).await;
    let vm_port = id(&vm.body["port"]);
    let vm_ip = vm.body["port"]["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let r = m
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": ext, "port_id": vm_port}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let fip = r.body["floatingip"].clone();
    assert_eq!(fip["fixed_ip_address"], vm_ip.as_str());
    assert_eq!(fip["router_id"], rid.as_str());
    assert!(
        fip["floating_ip_address"]
            .as_str()
            .unwrap()
            .starts_with("172.24.4.")
    );
    let r = m
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": ext, "port_id": vm_port}}),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (409, "FloatingIPPortAlreadyAssociated")
    );
    let r = m
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": net}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = m
        .post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": ext, "floating_ip_address": "172.24.4.99"}}))
        .await;
    assert_eq!(r.status, 403, "choosing the address is the admin's");
    // Deleting the port clears its floating IP's association.
    assert_eq!(
        m.delete(&format!("/v2.0/ports/{vm_port}")).await.status,
        204
    );
    let r = m.get(&format!("/v2.0/floatingips/{}", id(&fip))).await;
    assert_eq!(r.body["floatingip"]["port_id"], Value::Null);
    assert_eq!(r.body["floatingip"]["status"], "DOWN");

    let r = admin
        .get(&format!("/v2.0/network-ip-availabilities/{ext}"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["network_ip_availability"]["used_ips"], 2);
    assert_eq!(r.body["network_ip_availability"]["total_ips"], 253);
    assert_eq!(m.get("/v2.0/network-ip-availabilities").await.status, 403);
    let r = admin.get("/v2.0/agents").await;
    assert_eq!((r.status, r.body["agents"].clone()), (200, json!([])));
    // A non-admin's list is filtered to nothing, and one agent is not found, as upstream.
    let r = m.get("/v2.0/agents").await;
    assert_eq!((r.status, r.body["agents"].clone()), (200, json!([])));

    let r = m
        .put(
            &format!("/v2.0/routers/{rid}/remove_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["port_id"], iface.as_str());
    let r = m
        .put(
            &format!("/v2.0/routers/{rid}/remove_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (404, "RouterInterfaceNotFoundForSubnet")
    );
    assert_eq!(
        m.delete(&format!("/v2.0/floatingips/{}", id(&fip)))
            .await
            .status,
        204
    );
    assert_eq!(m.delete(&format!("/v2.0/routers/{rid}")).await.status, 204);
    // With the gateway gone the external network can go too.
    let r = admin.get(&format!("/v2.0/ports?network_id={ext}")).await;
    assert_eq!(r.body["ports"], json!([]));
    assert_eq!(
        admin.delete(&format!("/v2.0/networks/{ext}")).await.status,
        204
    );
}

#[tokio::test]
async fn quotas_show_update_and_refuse_over_limit() {
    let c = TestCloud::start().await;
    let admin = Net::admin(&c);
    let (m, pid) = Net::user(&c, "qp", "qu", "member").await;
    let r = m.get(&format!("/v2.0/quotas/{pid}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["quota"]["network"], 100);
    assert_eq!(r.body["quota"]["port"], 500);
    let r = m
        .put(
            &format!("/v2.0/quotas/{pid}"),
            json!({"quota": {"network": 1}}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = admin
        .put(
            &format!("/v2.0/quotas/{pid}"),
            json!({"quota": {"network": 1, "port": 2}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["quota"]["network"], 1);
    let r = admin.get("/v2.0/quotas").await;
    assert_eq!(r.body["quotas"][0]["project_id"], pid.as_str());
    let net = id(&m.network(json!({})).await);
    let r = m.post("/v2.0/networks", json!({"network": {}})).await;
    assert_eq!((r.status, r.kind()), (409, "OverQuota"));
    assert!(
        r.body["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .contains("network")
    );
    for _ in 0..2 {
        assert_eq!(m.port(json!({"network_id": net})).await.status, 201);
    }
    let r = m.port(json!({"network_id": net})).await;
    assert_eq!((r.status, r.kind()), (409, "OverQuota"));
    let r = m.get(&format!("/v2.0/quotas/{pid}/details")).await;
    assert_eq!(
        r.body["quota"]["port"],
        json!({"limit": 2, "used": 2, "reserved": 0})
    );
    let r = m.get(&format!("/v2.0/quotas/{pid}/default")).await;
    assert_eq!(r.body["quota"]["network"], 100);
    assert_eq!(
        admin.delete(&format!("/v2.0/quotas/{pid}")).await.status,
        204
    );
    assert_eq!(
        m.post("/v2.0/networks", json!({"network": {}}))
            .await
            .status,
        201
    );
    let r = admin
        .put(
            &format!("/v2.0/quotas/{pid}"),
            json!({"quota": {"bogus": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn tags_are_set_filtered_and_removed() {
    let c = TestCloud::start().await;
    let n = Net::admin(&c);
    let (other, _) = Net::user(&c, "tp", "tu", "member").await;
    let net = id(&n.network(json!({"name": "tagged"})).await);
    n.network(json!({"name": "plain"})).await;
    let r = n
        .put(&format!("/v2.0/networks/{net}/tags/red"), json!(null))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = n
        .put(
            &format!("/v2.0/networks/{net}/tags"),
            json!({"tags": ["red", "blue", "blue"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["tags"], json!(["red", "blue"]));
    assert_eq!(
        n.get(&format!("/v2.0/networks/{net}/tags/blue"))
            .await
            .status,
        204
    );
    let r = n.get(&format!("/v2.0/networks/{net}/tags/green")).await;
    assert_eq!((r.status, r.kind()), (404, "TagNotFound"));
    let r = n.get("/v2.0/networks?tags=red,blue").await;
    assert_eq!(r.body["networks"].as_array().unwrap().len(), 1);
    let r = n.get("/v2.0/networks?not-tags-any=red").await;
    assert_eq!(r.body["networks"][0]["name"], "plain");
    let r = n.get(&format!("/v2.0/networks/{net}")).await;
    assert_eq!(r.body["network"]["tags"], json!(["red", "blue"]));
    assert_eq!(r.body["network"]["revision_number"], 2);
    let r = other
        .put(&format!("/v2.0/networks/{net}/tags/x"), json!(null))
        .await;
    assert_eq!((r.status, r.kind()), (404, "NetworkNotFound"));
    assert_eq!(
        n.delete(&format!("/v2.0/networks/{net}/tags/red"))
            .await
            .status,
        204
    );
    let r = n.delete(&format!("/v2.0/networks/{net}/tags/red")).await;
    assert_eq!((r.status, r.kind()), (404, "TagNotFound"));
    assert_eq!(
        n.delete(&format!("/v2.0/networks/{net}/tags")).await.status,
        204
    );
    let r = n.get(&format!("/v2.0/networks/{net}/tags")).await;
    assert_eq!(r.body["tags"], json!([]));
    let sg = n.get("/v2.0/security-groups").await.body["security_groups"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        n.put(&format!("/v2.0/security-groups/{sg}/tags/web"), json!(null))
            .await
            .status,
        201
    );
    // Subnet pools carry tags too (tempest TagsExtTest's fourth resource).
    let r = n
        .post(
            "/v2.0/subnetpools",
            json!({"subnetpool": {"name": "tp", "prefixes": ["10.77.0.0/16"]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let pool = id(&r.body["subnetpool"]);
    let r = n
        .put(&format!("/v2.0/subnetpools/{pool}/tags/gold"), json!(null))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = n.get("/v2.0/subnetpools?tags=gold").await;
    assert_eq!(
        r.body["subnetpools"][0]["id"],
        pool.as_str(),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["subnetpools"][0]["tags"], json!(["gold"]));
}

#[tokio::test]
async fn every_route_refuses_strangers_without_a_500() {
    let c = TestCloud::start().await;
    let admin = Net::admin(&c);
    let (owner, pid) = Net::user(&c, "sw1", "swu1", "member").await;
    let (stranger, _) = Net::user(&c, "sw2", "swu2", "member").await;
    let (reader, _) = Net::user(&c, "sw3", "swu3", "reader").await;
    let anon = Net {
        token: None,
        ..admin.clone()
    };
    let net = id(&owner.network(json!({})).await);
    let sub = id(&owner.subnet(&net, "10.20.0.0/24", json!({})).await);
    let port = id(&owner.port(json!({"network_id": net})).await.body["port"]);
    let sg = id(&owner
        .post(
            "/v2.0/security-groups",
            json!({"security_group": {"name": "s"}}),
        )
        .await
        .body["security_group"]);
    let rule = owner.get("/v2.0/security-group-rules").await.body["security_group_rules"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let router = id(&owner
        .post("/v2.0/routers", json!({"router": {}}))
        .await
        .body["router"]);
    use reqwest::Method as M;
    let routes: Vec<(M, String, Option<Value>)> = vec![
        (M::GET, format!("/v2.0/networks/{net}"), None),
        (
            M::PUT,
            format!("/v2.0/networks/{net}"),
            Some(json!({"network": {"name": "x"}})),
        ),
        (M::DELETE, format!("/v2.0/networks/{net}"), None),
        (M::GET, format!("/v2.0/subnets/{sub}"), None),
        (
            M::PUT,
            format!("/v2.0/subnets/{sub}"),
            Some(json!({"subnet": {"name": "x"}})),
        ),
        (M::DELETE, format!("/v2.0/subnets/{sub}"), None),
        (M::GET, format!("/v2.0/ports/{port}"), None),
        (
            M::PUT,
            format!("/v2.0/ports/{port}"),
            Some(json!({"port": {"name": "x"}})),
        ),
        (M::DELETE, format!("/v2.0/ports/{port}"), None),
        (M::GET, format!("/v2.0/security-groups/{sg}"), None),
        (
            M::PUT,
            format!("/v2.0/security-groups/{sg}"),
            Some(json!({"security_group": {"name": "x"}})),
        ),
        (M::DELETE, format!("/v2.0/security-groups/{sg}"), None),
        (M::GET, format!("/v2.0/security-group-rules/{rule}"), None),
        (
            M::DELETE,
            format!("/v2.0/security-group-rules/{rule}"),
            None,
        ),
        (M::GET, format!("/v2.0/routers/{router}"), None),
        (
            M::PUT,
            format!("/v2.0/routers/{router}"),
            Some(json!({"router": {"name": "x"}})),
        ),
        (
            M::PUT,
            format!("/v2.0/routers/{router}/add_router_interface"),
            Some(json!({"subnet_id": sub})),
        ),
        (
            M::PUT,
            format!("/v2.0/routers/{router}/remove_router_interface"),
            Some(json!({"subnet_id": sub})),
        ),
        (M::DELETE, format!("/v2.0/routers/{router}"), None),
        (M::GET, format!("/v2.0/networks/{net}/tags"), None),
        (M::PUT, format!("/v2.0/networks/{net}/tags/t"), None),
        (
            M::PUT,
            format!("/v2.0/quotas/{pid}"),
            Some(json!({"quota": {"network": 1}})),
        ),
        (M::DELETE, format!("/v2.0/quotas/{pid}"), None),
        (M::GET, format!("/v2.0/quotas/{pid}"), None),
        (M::GET, "/v2.0/network-ip-availabilities".into(), None),
    ];
    for (method, path, body) in &routes {
        let r = anon.send(method.clone(), path, body.as_ref(), None).await;
        assert_eq!(r.status, 401, "anonymous {method} {path}: {:?}", r.body);
        for (who, client) in [("stranger", &stranger), ("reader", &reader)] {
            let r = client.send(method.clone(), path, body.as_ref(), None).await;
            assert!(
                r.status == 403 || r.status == 404,
                "{who} {method} {path}: {} {:?}",
                r.status,
                r.body
            );
            assert!(r.body["NeutronError"]["type"].is_string(), "{:?}", r.body);
        }
    }
    // Lists answer, but only with what each may see.
    for path in [
        "/v2.0/networks",
        "/v2.0/subnets",
        "/v2.0/ports",
        "/v2.0/routers",
        "/v2.0/floatingips",
        "/v2.0/agents",
    ] {
        let r = stranger.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        let (_, items) = r.body.as_object().unwrap().iter().next().unwrap();
        assert_eq!(items, &json!([]), "{path}");
    }
    // The owner's resources survived every attempt.
    assert_eq!(owner.get(&format!("/v2.0/ports/{port}")).await.status, 200);
    assert_eq!(
        owner.get(&format!("/v2.0/routers/{router}")).await.status,
        200
    );
}

#[tokio::test]
async fn a_service_user_binds_ports_on_any_project_network() {
    let c = TestCloud::start().await;
    let (m, pid) = Net::user(&c, "svp", "svu", "member").await;
    let (svc, _) = Net::user(&c, "svc-proj", "nova-svc", "service").await;
    let net = id(&m.network(json!({})).await);
    m.subnet(&net, "10.30.0.0/24", json!({})).await;
    // Nova creates the port for the user's project and binds it to its host.
    let r = svc
        .port(
            json!({"network_id": net, "project_id": pid, "device_owner": "compute:nova",
                     "device_id": "vm-1", "binding:host_id": "compute-1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["port"]["binding:host_id"], "compute-1");
    assert_eq!(r.body["port"]["binding:vif_type"], "bridge");
    let port = id(&r.body["port"]);
    let r = svc
        .put(
            &format!("/v2.0/ports/{port}"),
            json!({"port": {"binding:host_id": "compute-2"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The owner sees the port, not its binding details.
    let r = m.get(&format!("/v2.0/ports/{port}")).await;
    assert_eq!(r.status, 200);
    assert!(r.body["port"].get("binding:host_id").is_none());
    // A plain member may not bind.
    let r = m
        .port(json!({"network_id": net, "binding:host_id": "compute-1"}))
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn subnet_pools_carve_distinct_cidrs_even_concurrently() {
    let c = TestCloud::start().await;
    let admin = Net::admin(&c);
    let (m, _) = Net::user(&c, "spp", "spu", "member").await;
    let r = admin
        .post(
            "/v2.0/subnetpools",
            json!({"subnetpool": {"name": "p", "prefixes": ["10.100.0.0/22"],
              "default_prefixlen": 24, "shared": true}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let pool = r.body["subnetpool"].clone();
    let pid = id(&pool);
    assert_eq!(pool["min_prefixlen"], 8);
    assert_eq!(pool["max_prefixlen"], 32);
    assert_eq!(pool["ip_version"], 4);
    let r = admin
        .post(
            "/v2.0/subnetpools",
            json!({"subnetpool": {"name": "x", "prefixes": ["10.0.0.0/8", "fd00::/8"]}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = admin
        .post("/v2.0/subnetpools", json!({"subnetpool": {"name": "x", "prefixes": ["10.0.0.0/8"], "min_prefixlen": 24, "default_prefixlen": 16}}))
        .await;
    assert_eq!((r.status, r.kind()), (400, "IllegalSubnetPoolPrefixBounds"));
    let r = m
        .post(
            "/v2.0/subnetpools",
            json!({"subnetpool": {"name": "x", "prefixes": ["10.0.0.0/8"], "shared": true}}),
        )
        .await;
    assert_eq!(r.status, 403);

    let from_pool = |net: &str, extra: Value| {
        let mut body = json!({"network_id": net, "ip_version": 4, "subnetpool_id": pid});
        if let Value::Object(x) = extra {
            for (k, v) in x {
                body[k] = v;
            }
        }
        json!({"subnet": body})
    };
    let nets: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(id(&m.network(json!({})).await));
        }
        v
    };
    // Four /24s fit a /22: made at once, they never overlap.
    let tasks: Vec<_> = nets
        .iter()
        .map(|net| {
            let m = m.clone();
            let body = from_pool(net, json!({}));
            tokio::spawn(async move { m.post("/v2.0/subnets", body).await })
        })
        .collect();
    let mut cidrs = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(r.body["subnet"]["subnetpool_id"], pid.as_str());
        cidrs.push(r.body["subnet"]["cidr"].as_str().unwrap().to_string());
    }
    cidrs.sort();
    assert_eq!(
        cidrs,
        [
            "10.100.0.0/24",
            "10.100.1.0/24",
            "10.100.2.0/24",
            "10.100.3.0/24"
        ]
    );
    let r = m
        .post(
            "/v2.0/subnets",
            from_pool(&nets[0], json!({"prefixlen": 28})),
        )
        .await;
    assert_eq!(
        (r.status, r.kind()),
        (409, "SubnetAllocationError"),
        "{:?}",
        r.body
    );
    let r = m
        .post(
            "/v2.0/subnets",
            from_pool(&nets[0], json!({"cidr": "10.100.1.0/25"})),
        )
        .await;
    assert_eq!((r.status, r.kind()), (400, "SubnetAllocationError"));
    // Grow the pool, never shrink it.
    let r = admin
        .put(
            &format!("/v2.0/subnetpools/{pid}"),
            json!({"subnetpool": {"prefixes": ["10.100.0.0/21"]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = admin
        .put(
            &format!("/v2.0/subnetpools/{pid}"),
            json!({"subnetpool": {"prefixes": ["10.100.0.0/23"]}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = m
        .post(
            "/v2.0/subnets",
            from_pool(&nets[0], json!({"prefixlen": 28})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["subnet"]["cidr"], "10.100.4.0/28");
    let r = m
        .post(
            "/v2.0/subnets",
            from_pool(&nets[0], json!({"prefixlen": 4})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = admin.delete(&format!("/v2.0/subnetpools/{pid}")).await;
    assert_eq!((r.status, r.kind()), (409, "SubnetPoolInUse"));
    let r = m.get("/v2.0/subnetpools").await;
    assert_eq!(r.body["subnetpools"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn deleting_an_external_network_takes_its_free_floating_ips() {
    let c = TestCloud::start().await;
    let admin = Net::admin(&c);
    let ext = id(&admin
        .network(json!({"name": "gone", "router:external": true}))
        .await);
    let sub = id(&admin
        .subnet(&ext, "198.51.100.0/24", json!({"enable_dhcp": false}))
        .await);
    let r = admin
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": ext}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let fip = id(&r.body["floatingip"]);
    // A port in use still keeps the network.
    let r = admin
        .port(json!({"network_id": ext, "device_owner": "compute:nova", "device_id": "x"}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let port = id(&r.body["port"]);
    assert_eq!(
        admin.delete(&format!("/v2.0/networks/{ext}")).await.status,
        409
    );
    assert_eq!(
        admin.get(&format!("/v2.0/floatingips/{fip}")).await.status,
        200,
        "a refused delete keeps the floating IP"
    );
    assert_eq!(
        admin.delete(&format!("/v2.0/ports/{port}")).await.status,
        204
    );
    let r = admin.delete(&format!("/v2.0/networks/{ext}")).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(
        admin.get(&format!("/v2.0/floatingips/{fip}")).await.status,
        404
    );
    assert_eq!(admin.get(&format!("/v2.0/subnets/{sub}")).await.status, 404);
    let r = admin.get(&format!("/v2.0/ports?network_id={ext}")).await;
    assert_eq!(r.body["ports"], json!([]));
}
