//! The network service's side of the agents' bus contract: a sync returns the part of the
//! model a host needs, DHCP ports are made once per host and network, port status follows
//! the agent's reports, agents show in `GET /v2.0/agents`, and every change is announced.

use std::time::Duration;

use ferro_api_types::compute::CONTRACT_VERSION;
use ferro_api_types::network::{
    AGENT_FANOUT, AgentNotice, HostState, PLUGIN_TOPIC, PluginRequest, PortState,
};
use ferro_bus::Envelope;
use ferro_client::Client;
use ferro_testkit::TestCloud;
use serde_json::{Value, json};

fn neutron(c: &TestCloud) -> Client {
    c.admin.clone_with_base(&c.network_url)
}

/// A request of a network agent to the network service, over the cloud's bus.
pub(crate) async fn call(c: &TestCloud, req: PluginRequest) -> Result<Value, String> {
    let (method, payload) = req.to_parts();
    c.cloud
        .bus
        .call(
            PLUGIN_TOPIC,
            Envelope::new(PLUGIN_TOPIC, method, payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| e.to_string())
}

async fn sync(c: &TestCloud, host: &str, dhcp: bool) -> HostState {
    sync_as(c, host, dhcp, false).await
}

async fn sync_as(c: &TestCloud, host: &str, dhcp: bool, l3: bool) -> HostState {
    let v = call(
        c,
        PluginRequest::SyncHost {
            version: CONTRACT_VERSION.into(),
            host: host.into(),
            dhcp,
            l3,
            report: Default::default(),
            tunnel_ip: Some(format!("192.0.2.{}", host.len())),
        },
    )
    .await
    .unwrap();
    serde_json::from_value(v).unwrap()
}

async fn created(n: &Client, path: &str, body: Value) -> Value {
    let r = n.post(path, &body).await.unwrap();
    assert_eq!(r.status, 201, "{path}: {}", r.body);
    r.body
}

#[tokio::test]
async fn agents_sync_get_dhcp_ports_and_report_port_status() {
    let c = TestCloud::start().await;
    let n = neutron(&c);
    let mut notices = c.cloud.bus.subscribe_fanout(AGENT_FANOUT).await.unwrap();

    let net = created(&n, "/v2.0/networks", json!({"network": {"name": "dp"}})).await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    let d = tokio::time::timeout(Duration::from_secs(5), notices.next())
        .await
        .expect("a change is announced")
        .unwrap();
    let e = d.envelope().clone();
    assert_eq!(
        AgentNotice::parse(&e.method, &e.payload).unwrap(),
        AgentNotice::changed()
    );
    d.ack().await.unwrap();

    // No subnet yet: nothing for DHCP, nothing bound.
    assert!(sync(&c, "h1", true).await.networks.is_empty());
    let subnet = created(
        &n,
        "/v2.0/subnets",
        json!({"subnet": {"network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4,
            "dns_nameservers": ["192.0.2.53"]}}),
    )
    .await;
    let subnet_id = subnet["subnet"]["id"].as_str().unwrap().to_string();
    let port = created(
        &n,
        "/v2.0/ports",
        json!({"port": {"network_id": net, "device_owner": "compute:nova",
            "device_id": "vm1", "binding:host_id": "h2"}}),
    )
    .await;
    let port_id = port["port"]["id"].as_str().unwrap().to_string();
    assert_eq!(port["port"]["status"], "DOWN");

    // The DHCP host gets the network, its subnet and every port of it; h2 gets its port;
    // a host with nothing bound and no DHCP gets nothing.
    let s1 = sync(&c, "h1", true).await;
    assert_eq!(s1.networks.len(), 1);
    assert_eq!(s1.networks[0].subnets[0].id, subnet_id);
    assert_eq!(
        s1.networks[0].subnets[0].dns_nameservers,
        vec!["192.0.2.53"]
    );
    assert!(s1.networks[0].subnets[0].enable_dhcp);
    assert!(s1.ports.iter().any(|p| p.id == port_id));
    let s2 = sync(&c, "h2", false).await;
    assert_eq!(s2.ports.len(), 1);
    assert_eq!(s2.ports[0].host, "h2");
    assert_eq!(
        s2.peers,
        vec!["192.0.2.2"],
        "h2 floods to h1's tunnel address"
    );
    assert!(sync(&c, "h3", false).await.networks.is_empty());

    let ask = |host: &str| PluginRequest::DhcpPort {
        version: CONTRACT_VERSION.into(),
        host: host.into(),
        network_id: net.clone(),
    };
    let dhcp: PortState = serde_json::from_value(call(&c, ask("h1")).await.unwrap()).unwrap();
    assert!(dhcp.is_dhcp());
    assert_eq!(dhcp.host, "h1");
    assert_eq!(dhcp.fixed_ips.len(), 1);
    assert_eq!(dhcp.fixed_ips[0].0, subnet_id);
    let again: PortState = serde_json::from_value(call(&c, ask("h1")).await.unwrap()).unwrap();
    assert_eq!(again.id, dhcp.id, "one DHCP port per host and network");
    let r = n
        .get(&format!(
            "/v2.0/ports?network_id={net}&device_owner=network:dhcp"
        ))
        .await
        .unwrap();
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 1);
    // A second DHCP subnet: the same port gets an address on it too.
    let second = created(
        &n,
        "/v2.0/subnets",
        json!({"subnet": {"network_id": net, "cidr": "10.9.1.0/24", "ip_version": 4}}),
    )
    .await;
    let second = second["subnet"]["id"].as_str().unwrap().to_string();
    let grown: PortState = serde_json::from_value(call(&c, ask("h1")).await.unwrap()).unwrap();
    assert_eq!(grown.id, dhcp.id);
    let subnets: Vec<&str> = grown.fixed_ips.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subnets.len(), 2, "{subnets:?}");
    assert!(subnets.contains(&second.as_str()) && subnets.contains(&subnet_id.as_str()));
    assert_eq!(
        grown.fixed_ips[0], dhcp.fixed_ips[0],
        "the first address is kept"
    );

    let missing = PluginRequest::DhcpPort {
        version: CONTRACT_VERSION.into(),
        host: "h1".into(),
        network_id: "nosuch".into(),
    };
    let err = call(&c, missing).await.unwrap_err();
    assert!(err.contains("nosuch"), "{err}");

    // Status: only the host the port is bound to can bring it up.
    let report = |host: &str, up: Vec<String>, down: Vec<String>| PluginRequest::PortStatus {
        version: CONTRACT_VERSION.into(),
        host: host.into(),
        up,
        down,
    };
    call(&c, report("h1", vec![port_id.clone()], vec![]))
        .await
        .unwrap();
    let status = |n: Client, id: String| async move {
        n.get(&format!("/v2.0/ports/{id}")).await.unwrap().body["port"]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status(n.clone(), port_id.clone()).await, "DOWN");
    call(&c, report("h2", vec![port_id.clone()], vec![]))
        .await
        .unwrap();
    assert_eq!(status(n.clone(), port_id.clone()).await, "ACTIVE");
    call(&c, report("h2", vec![], vec![port_id.clone()]))
        .await
        .unwrap();
    assert_eq!(status(n.clone(), port_id.clone()).await, "DOWN");
    // A port whose binding changes is DOWN until its new host reports it (ML2's
    // _process_port_binding): moved to another host, or unbound.
    let bind = |host: &str| json!({"port": {"binding:host_id": host}});
    let path = format!("/v2.0/ports/{port_id}");
    call(&c, report("h2", vec![port_id.clone()], vec![]))
        .await
        .unwrap();
    assert_eq!(n.put(&path, Some(&bind("h2"))).await.unwrap().status, 200);
    assert_eq!(
        status(n.clone(), port_id.clone()).await,
        "ACTIVE",
        "the same binding again changes nothing"
    );
    let moved = n.put(&path, Some(&bind("h3"))).await.unwrap();
    assert_eq!(moved.body["port"]["status"], "DOWN", "{}", moved.body);
    call(&c, report("h3", vec![port_id.clone()], vec![]))
        .await
        .unwrap();
    assert_eq!(status(n.clone(), port_id.clone()).await, "ACTIVE");
    assert_eq!(n.put(&path, Some(&bind(""))).await.unwrap().status, 200);
    assert_eq!(status(n.clone(), port_id.clone()).await, "DOWN");

    // The agents as Neutron lists them: h1 serves DHCP (and metadata), h2 and h3 bridge.
    let r = n.get("/v2.0/agents").await.unwrap();
    assert_eq!(r.status, 200);
    let agents = r.body["agents"].as_array().unwrap();
    let kinds = |host: &str| -> Vec<String> {
        let mut v: Vec<String> = agents
            .iter()
            .filter(|a| a["host"] == host)
            .map(|a| a["agent_type"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        kinds("h1"),
        ["DHCP agent", "Linux bridge agent", "Metadata agent"]
    );
    assert_eq!(kinds("h2"), ["Linux bridge agent"]);
    assert!(agents.iter().all(|a| a["alive"] == true));
    let id = agents[0]["id"].as_str().unwrap();
    let r = n.get(&format!("/v2.0/agents/{id}")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["agent"]["id"], id);
    let r = n.get("/v2.0/agents?agent_type=DHCP%20agent").await.unwrap();
    assert_eq!(r.body["agents"].as_array().unwrap().len(), 1);
    let r = n.get("/v2.0/agents/nosuch").await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.body["NeutronError"]["type"], "AgentNotFound");
}

#[tokio::test]
async fn a_router_goes_to_one_l3_host_with_its_ports_routes_and_floating_ips() {
    let c = TestCloud::start().await;
    let n = neutron(&c);
    let t = ferro_testkit::routed_network(&n, "172.24.9.0/24", "10.19.0.0/24").await;
    let (ext, net, sn, rid, gw_ip) = (t.external, t.network, t.subnet, t.router, t.gateway_ip);
    let vm = created(
        &n,
        "/v2.0/ports",
        json!({"port": {"network_id": net, "device_owner": "compute:nova",
            "device_id": "vm1", "binding:host_id": "c1"}}),
    )
    .await;
    let vm_id = vm["port"]["id"].as_str().unwrap().to_string();
    let vm_ip = vm["port"]["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let fip = created(
        &n,
        "/v2.0/floatingips",
        json!({"floatingip": {"floating_network_id": ext, "port_id": vm_id}}),
    )
    .await;
    let fip_ip = fip["floatingip"]["floating_ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let r = n
        .put(
            &format!("/v2.0/routers/{rid}"),
            Some(&json!({"router": {"routes": [{"destination": "192.0.2.0/24", "nexthop": "10.19.0.50"}]}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // Before any L3 agent: nobody holds it. Then the only L3 host gets it, with the
    // networks of its ports; a host without L3 never does.
    assert!(sync(&c, "c1", false).await.routers.is_empty());
    let s = sync_as(&c, "l3a", false, true).await;
    assert_eq!(s.routers.len(), 1);
    let held = &s.routers[0];
    assert_eq!(held.id, rid);
    assert!(held.admin_state_up && held.enable_snat);
    let gw = held.gateway.as_ref().expect("the gateway port");
    assert_eq!(gw.network_id, ext);
    assert_eq!(gw.fixed_ips[0].1, gw_ip);
    assert_eq!(held.interfaces.len(), 1);
    assert_eq!(
        held.interfaces[0].fixed_ips[0],
        (sn.clone(), "10.19.0.1".into())
    );
    assert_eq!(
        held.routes,
        vec![("192.0.2.0/24".into(), "10.19.0.50".into())]
    );
    assert_eq!(held.floating_ips, vec![(fip_ip, vm_ip)]);
    let fip_id = fip["floatingip"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        held.floating_ip_status,
        vec![(fip_id.clone(), "DOWN".to_string())],
        "associated, not yet translated by an agent"
    );
    let nets: Vec<&str> = s.networks.iter().map(|x| x.id.as_str()).collect();
    assert!(
        nets.contains(&ext.as_str()) && nets.contains(&net.as_str()),
        "{nets:?}"
    );
    assert!(sync(&c, "c1", false).await.routers.is_empty());
    assert_eq!(c.cloud.network.router_host(&rid).as_deref(), Some("l3a"));
    // Only the holder's agent sets the floating IP's status.
    let fip_status = |host: &str, status: &str| PluginRequest::FloatingIpStatus {
        version: CONTRACT_VERSION.into(),
        host: host.into(),
        statuses: vec![(fip_id.clone(), status.into())],
    };
    let show_status = || async {
        n.get(&format!("/v2.0/floatingips/{fip_id}"))
            .await
            .unwrap()
            .body["floatingip"]["status"]
            .clone()
    };
    call(&c, fip_status("c1", "ACTIVE")).await.unwrap();
    assert_eq!(show_status().await, "DOWN");
    call(&c, fip_status("l3a", "BOGUS")).await.unwrap();
    assert_eq!(show_status().await, "DOWN");
    call(&c, fip_status("l3a", "ACTIVE")).await.unwrap();
    assert_eq!(show_status().await, "ACTIVE");
    let s = sync_as(&c, "l3a", false, true).await;
    assert_eq!(
        s.routers[0].floating_ip_status,
        vec![(fip_id.clone(), "ACTIVE".to_string())]
    );

    // Two L3 hosts: the router is on exactly one of them.
    let s = sync_as(&c, "l3b", false, true).await;
    let on_b = !s.routers.is_empty();
    let on_a = !sync_as(&c, "l3a", false, true).await.routers.is_empty();
    assert!(
        on_a ^ on_b,
        "one host holds the router (a: {on_a}, b: {on_b})"
    );

    // The L3 agents are listed.
    let r = n.get("/v2.0/agents?agent_type=L3%20agent").await.unwrap();
    let hosts: Vec<&str> = r.body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts.len(), 2, "{}", r.body);
}
