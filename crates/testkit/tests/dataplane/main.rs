//! The network agent on this host (root): a cloud whose agent makes the bridge, the DHCP
//! namespace and dnsmasq of a network; a "guest" (a namespace behind a veth named as the
//! port's tap, with the port's MAC) gets the port's address by DHCP; the port goes ACTIVE;
//! deleting the network's resources removes every device, namespace and process.
//! Every test uses its own device prefix and purges it when it ends, failed or not.

use std::time::{Duration, Instant};

use ferro_client::Client;
use ferro_host::Names;
use ferro_testkit::TestCloud;
use serde_json::{Value, json};

/// Removes the test's host objects when dropped (also on a failed assertion).
struct Purge {
    names: Names,
    state_dir: std::path::PathBuf,
    extra_ns: Vec<String>,
}

impl Purge {
    /// The purge of `c`'s agent under `names`, with the test's namespaces `extra_ns`.
    fn of(c: &TestCloud, names: &Names, extra_ns: Vec<String>) -> Purge {
        Purge {
            names: names.clone(),
            state_dir: c.config.state_dir.join("network"),
            extra_ns,
        }
    }
}

impl Drop for Purge {
    fn drop(&mut self) {
        let names = self.names.clone();
        let dir = self.state_dir.clone();
        let extra = self.extra_ns.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for ns in extra {
                    let _ = ferro_host::netns::delete(&ns).await;
                }
                if let Err(e) = ferro_network_agent::purge(&names, &dir).await {
                    eprintln!("purge: {e}");
                }
            });
        })
        .join()
        .unwrap();
    }
}

/// A device prefix no other test of this run shares: the tests of this binary run side by
/// side (a counter tells them apart) and other runs have other process ids.
fn random_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let v = std::process::id().wrapping_mul(7919).wrapping_add(n) & 0xfff;
    format!("z{v:03x}")
}

/// A cloud with one fake host whose network agent runs under `prefix`, syncing every 2 s,
/// with `adjust` applied last.
async fn agent_cloud(prefix: &str, adjust: impl FnOnce(&mut ferrostack::Config)) -> TestCloud {
    TestCloud::start_with(|cfg| {
        cfg.compute.fake_hosts = 1;
        cfg.network_agent.enabled = "true".into();
        cfg.network_agent.prefix = prefix.to_string();
        cfg.network_agent.sync_interval = 2;
        adjust(cfg);
    })
    .await
    .expect("cloud starts")
}

/// A cloud whose agent runs under a fresh prefix, its names, the test's guest namespace
/// (`<prefix>-guest`, not made yet) and the purge of both.
async fn guest_cloud() -> (TestCloud, Names, String, Purge) {
    let prefix = random_prefix();
    let names = Names::new(&prefix).unwrap();
    let c = agent_cloud(&prefix, |_| {}).await;
    let guest_ns = format!("{prefix}-guest");
    let purge = Purge::of(&c, &names, vec![guest_ns.clone()]);
    (c, names, guest_ns, purge)
}

async fn sh(program: &str, args: &[&str]) -> String {
    ferro_host::cmd::run(program, args)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A namespace `ns` whose `eth0` (MAC `mac` when given, address `cidr` when given) is the
/// far end of a veth `host_end` in `bridge`: a guest plugged as the hypervisor's tap would
/// be, or a host on the network.
async fn plug_ns(ns: &str, host_end: &str, bridge: &str, mac: Option<&str>, cidr: Option<&str>) {
    sh("ip", &["netns", "add", ns]).await;
    sh(
        "ip",
        &[
            "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    )
    .await;
    sh("ip", &["link", "set", host_end, "master", bridge, "up"]).await;
    if let Some(mac) = mac {
        sh("ip", &["-n", ns, "link", "set", "eth0", "address", mac]).await;
    }
    if let Some(cidr) = cidr {
        sh("ip", &["-n", ns, "addr", "add", cidr, "dev", "eth0"]).await;
    }
    sh("ip", &["-n", ns, "link", "set", "eth0", "up"]).await;
}

async fn created(n: &Client, path: &str, body: Value) -> Value {
    let r = n.post(path, &body).await.unwrap();
    assert_eq!(r.status, 201, "{path}: {}", r.body);
    r.body
}

/// A guest's port on `net` bound to the test's host in group `sg`: `(id, mac, ip)`.
async fn guest_port(n: &Client, net: &str, sg: &str, device: &str) -> (String, String, String) {
    let port = created(
        n,
        "/v2.0/ports",
        json!({"port": {"network_id": net, "device_owner": "compute:nova",
            "device_id": device, "binding:host_id": "fake-0", "security_groups": [sg]}}),
    )
    .await;
    let f = |v: &Value| v.as_str().unwrap().to_string();
    let p = &port["port"];
    (
        f(&p["id"]),
        f(&p["mac_address"]),
        f(&p["fixed_ips"][0]["ip_address"]),
    )
}

async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_gets_its_port_address_by_dhcp_and_everything_goes_with_the_network() {
    let (c, names, guest_ns, _purge) = guest_cloud().await;
    let prefix = names.prefix().to_string();
    let n = c.admin.clone_with_base(&c.network_url);
    let net = created(&n, "/v2.0/networks", json!({"network": {"name": "dp"}})).await;
    let mtu = net["network"]["mtu"].as_i64().unwrap();
    let net = net["network"]["id"].as_str().unwrap().to_string();
    created(
        &n,
        "/v2.0/subnets",
        json!({"subnet": {"network_id": net, "cidr": "10.77.0.0/24", "ip_version": 4}}),
    )
    .await;
    // A group of its own: egress open (a new group's default rules), no ingress.
    let sg = created(
        &n,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "locked"}}),
    )
    .await;
    let sg = sg["security_group"]["id"].as_str().unwrap().to_string();
    let (port_id, mac, ip) = guest_port(&n, &net, &sg, "guest-1").await;

    // The agent makes the bridge, the DHCP namespace and dnsmasq.
    let bridge = names.bridge(&net);
    let dhcp_ns = names.dhcp_ns(&net);
    wait_for("the bridge and the DHCP namespace", 20, || async {
        ferro_host::link::get(&bridge).await.unwrap().is_some()
            && ferro_host::netns::list(&prefix)
                .await
                .unwrap()
                .contains(&dhcp_ns)
    })
    .await;
    let t = Instant::now();
    let dhcp_port = loop {
        let r = n
            .get(&format!(
                "/v2.0/ports?network_id={net}&device_owner=network:dhcp"
            ))
            .await
            .unwrap();
        if let Some(p) = r.body["ports"].get(0)
            && p["status"] == "ACTIVE"
        {
            break p.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the DHCP port is not ACTIVE: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dhcp_ip = dhcp_port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let dnsmasq = ferro_host::dnsmasq::Dnsmasq::new(
        c.config.state_dir.join("network").join("dhcp").join(&net),
    );
    assert!(dnsmasq.pid().is_some(), "dnsmasq runs");

    // The hypervisor's part (os-vif): a "tap" in the bridge, here a veth whose other end is
    // the guest's NIC with the port's MAC, in a namespace of its own.
    let tap = names.tap(&port_id);
    plug_ns(&guest_ns, &tap, &bridge, Some(&mac), None).await;
    wait_for("the port to go ACTIVE", 20, || {
        let n = n.clone();
        let id = port_id.clone();
        async move {
            n.get(&format!("/v2.0/ports/{id}")).await.unwrap().body["port"]["status"] == "ACTIVE"
        }
    })
    .await;

    // DHCP from the guest: the port's address, the DHCP server's DNS, the gateway.
    let script = c.config.state_dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"lease ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu\"\nexit 0\n",
    )
    .unwrap();
    sh("chmod", &["+x", &script.to_string_lossy()]).await;
    let out = sh(
        "ip",
        &[
            "netns",
            "exec",
            &guest_ns,
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-f",
            "-t",
            "10",
            "-T",
            "1",
            "-O",
            "mtu",
            "-s",
            &script.to_string_lossy(),
        ],
    )
    .await;
    assert!(
        out.contains(&format!(
            "lease ip={ip} mask=24 router=10.77.0.1 dns={dhcp_ip} mtu={mtu}"
        )),
        "{out}"
    );

    // Security groups: the guest reaches the DHCP port (egress open, replies pass), not the
    // other way round until an ingress rule allows ICMP; not from an address not its own.
    sh(
        "ip",
        &[
            "-n",
            &guest_ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ],
    )
    .await;
    let ping = |ns: String, to: String, from: Option<String>| async move {
        let mut a = vec![
            "netns", "exec", &ns, "busybox", "ping", "-c", "1", "-W", "1",
        ];
        if let Some(f) = &from {
            a.extend(["-I", f.as_str()]);
        }
        a.push(&to);
        ferro_host::cmd::run("ip", &a).await.is_ok()
    };
    wait_for("the guest to ping the DHCP port", 10, || {
        ping(guest_ns.clone(), dhcp_ip.clone(), None)
    })
    .await;
    assert!(
        !ping(dhcp_ns.clone(), ip.clone(), None).await,
        "no ingress rule: no ping in"
    );
    sh(
        "ip",
        &[
            "-n",
            &guest_ns,
            "addr",
            "add",
            "10.77.0.200/24",
            "dev",
            "eth0",
        ],
    )
    .await;
    assert!(
        !ping(
            guest_ns.clone(),
            dhcp_ip.clone(),
            Some("10.77.0.200".into())
        )
        .await,
        "a spoofed source address is dropped"
    );
    let rule = created(
        &n,
        "/v2.0/security-group-rules",
        json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress",
            "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"}}),
    )
    .await;
    let rule = rule["security_group_rule"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Instant::now();
    wait_for("the ICMP rule to let pings in", 10, || {
        ping(dhcp_ns.clone(), ip.clone(), None)
    })
    .await;
    eprintln!("a rule added took effect in {:?}", t.elapsed());
    let r = n
        .delete(&format!("/v2.0/security-group-rules/{rule}"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let t = Instant::now();
    wait_for("the rule's removal to stop pings", 10, || async {
        !ping(dhcp_ns.clone(), ip.clone(), None).await
    })
    .await;
    eprintln!("a rule removed took effect in {:?}", t.elapsed());

    // dnsmasq dying is repaired on the next sync.
    let pid = dnsmasq.pid().unwrap();
    sh("kill", &["-9", &pid.to_string()]).await;
    wait_for("dnsmasq to be restarted", 20, || async {
        dnsmasq.pid().is_some_and(|p| p != pid)
    })
    .await;
    // ... and the restart is in the DHCP agent's status.
    wait_for("the restart in the DHCP agent's configurations", 10, || {
        let (n, net) = (n.clone(), net.clone());
        async move {
            let r = n.get("/v2.0/agents?agent_type=DHCP%20agent").await.unwrap();
            let conf = &r.body["agents"][0]["configurations"];
            conf["dnsmasq_restarts"] == 1
                && conf["networks"] == 1
                && conf["dnsmasq_restarted"][0]
                    .as_str()
                    .is_some_and(|s| s.ends_with(&format!("network {net}")))
        }
    })
    .await;

    // Everything goes with the network.
    sh("ip", &["link", "del", &tap]).await;
    let r = n.delete(&format!("/v2.0/ports/{port_id}")).await.unwrap();
    assert_eq!(r.status, 204);
    let r = n.delete(&format!("/v2.0/networks/{net}")).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    wait_for(
        "no bridge, namespace, dnsmasq or nftables table left",
        20,
        || async {
            ferro_host::link::list(&prefix).await.unwrap().is_empty()
                && ferro_host::netns::list(&format!("{prefix}-q"))
                    .await
                    .unwrap()
                    .is_empty()
                && dnsmasq.pid().is_none()
                && ferro_host::cmd::run("nft", &["list", "table", "inet", &format!("{prefix}_sg")])
                    .await
                    .is_err()
        },
    )
    .await;
    drop(c);
    ferro_network_agent::purge(&names, std::path::Path::new("/nonexistent"))
        .await
        .unwrap();
    assert!(
        ferro_host::cmd::run("nft", &["list", "table", "inet", &format!("{prefix}_sg")])
            .await
            .is_err(),
        "purge removes the security group table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_s_agent_registers_and_bridges_its_ports() {
    let prefix = random_prefix();
    let other = format!("y{}", &prefix[1..]);
    let (names, other_names) = (Names::new(&prefix).unwrap(), Names::new(&other).unwrap());
    let c = TestCloud::start_with(|cfg| {
        cfg.compute.fake_hosts = 1;
        cfg.network_agent.enabled = "true".into();
        cfg.network_agent.prefix = prefix.clone();
        cfg.network_agent.tunnel_ip = "192.0.2.1".into();
    })
    .await
    .expect("cloud starts");
    let _purge = Purge::of(&c, &names, vec![]);
    let _purge_other = Purge {
        names: other_names.clone(),
        state_dir: c.config.state_dir.join("network-b"),
        extra_ns: vec![],
    };
    // Host B's agent, as `ferrostack network-agent` runs it on a compute host: no DHCP, no
    // routers, its own tunnel address.
    let mut ac = ferro_network_agent::AgentConfig::new(
        "host-b",
        other_names.clone(),
        c.config.state_dir.join("network-b"),
    );
    ac.dhcp = false;
    ac.l3 = false;
    ac.tunnel_ip = Some("192.0.2.2".into());
    let agent = ferro_network_agent::NetworkAgent::new(ac, c.cloud.bus.clone());
    let tasks = ferro_network_agent::start(agent).await.unwrap();

    let n = c.admin.clone_with_base(&c.network_url);
    wait_for("host B's agent to be listed", 10, || {
        let n = n.clone();
        async move {
            let r = n.get("/v2.0/agents?host=host-b").await.unwrap();
            r.body["agents"].as_array().is_some_and(|a| a.len() == 1)
        }
    })
    .await;
    // A flat network: both "hosts" share this machine, where one VNI can have one device.
    let net = created(
        &n,
        "/v2.0/networks",
        json!({"network": {"name": "b", "provider:network_type": "flat",
            "provider:physical_network": "physnet1"}}),
    )
    .await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    created(
        &n,
        "/v2.0/ports",
        json!({"port": {"network_id": net, "device_owner": "compute:nova",
            "device_id": "vm-b", "binding:host_id": "host-b"}}),
    )
    .await;
    let bridge = other_names.bridge(&net);
    wait_for("host B's bridge for its port's network", 10, || async {
        ferro_host::link::get(&bridge).await.unwrap().is_some()
    })
    .await;
    assert!(
        ferro_host::link::get(&names.bridge(&net))
            .await
            .unwrap()
            .is_none(),
        "host A has no port there and no DHCP subnet: no bridge"
    );
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_holding_a_port_s_tap_name_is_left_alone_and_the_other_ports_are_served() {
    let (c, names, guest_ns, _purge) = guest_cloud().await;
    let n = c.admin.clone_with_base(&c.network_url);
    let net = created(&n, "/v2.0/networks", json!({"network": {"name": "clash"}})).await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    let port = |device: &str| {
        json!({"port": {"network_id": net, "device_owner": "compute:nova",
            "device_id": device, "binding:host_id": "fake-0"}})
    };
    let stray = created(&n, "/v2.0/ports", port("vm-stray")).await;
    let stray = stray["port"]["id"].as_str().unwrap().to_string();
    let plugged = created(&n, "/v2.0/ports", port("vm-plugged")).await;
    let plugged = plugged["port"]["id"].as_str().unwrap().to_string();
    let bridge = names.bridge(&net);
    wait_for("the network's bridge", 20, || async {
        ferro_host::link::get(&bridge).await.unwrap().is_some()
    })
    .await;

    // A bridge holds one port's tap name (a bridge cannot join a bridge); the other port
    // is plugged. The other port goes ACTIVE: the stray device does not stop the sync.
    let stray_tap = names.tap(&stray);
    sh("ip", &["link", "add", &stray_tap, "type", "bridge"]).await;
    plug_ns(&guest_ns, &names.tap(&plugged), &bridge, None, None).await;
    let status = |id: String| {
        let n = n.clone();
        async move {
            n.get(&format!("/v2.0/ports/{id}")).await.unwrap().body["port"]["status"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    wait_for("the plugged port to go ACTIVE", 20, || async {
        status(plugged.clone()).await == "ACTIVE"
    })
    .await;
    // Two more passes: the port behind the stray device stays DOWN, the device as it was.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(status(stray.clone()).await, "DOWN");
    let l = ferro_host::link::get(&stray_tap).await.unwrap().unwrap();
    assert_eq!(l.kind(), "bridge");
    assert_eq!(l.master, None, "the stray device was put in the bridge");

    // Without its ports and network the agent takes the network's bridge away (else it
    // would make it again after the purge).
    for id in [&stray, &plugged] {
        let r = n.delete(&format!("/v2.0/ports/{id}")).await.unwrap();
        assert_eq!(r.status, 204);
    }
    let r = n.delete(&format!("/v2.0/networks/{net}")).await.unwrap();
    assert_eq!(r.status, 204);
    wait_for("the network's bridge to go", 20, || async {
        ferro_host::link::get(&bridge).await.unwrap().is_none()
    })
    .await;
}

/// Accepts connections on `port` inside namespace `ns` and sends each peer's address.
fn peers_at(ns: &str, port: u16) -> tokio::sync::mpsc::UnboundedReceiver<std::net::IpAddr> {
    let l = ferro_host::netns::listen_tcp(ns, ([0, 0, 0, 0], port).into()).unwrap();
    let l = tokio::net::TcpListener::from_std(l).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((_, peer)) = l.accept().await {
            if tx.send(peer.ip()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Connects from namespace `ns` to `ip:port` (busybox nc) and answers the address the
/// listener behind `peers` saw, or None when nothing arrived.
async fn seen_from(
    ns: &str,
    ip: &str,
    port: u16,
    peers: &mut tokio::sync::mpsc::UnboundedReceiver<std::net::IpAddr>,
) -> Option<String> {
    let p = port.to_string();
    let _ = ferro_host::cmd::run(
        "ip",
        &["netns", "exec", ns, "busybox", "nc", "-w", "2", ip, &p],
    )
    .await;
    tokio::time::timeout(Duration::from_millis(500), peers.recv())
        .await
        .ok()
        .flatten()
        .map(|a| a.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_snats_guests_and_floating_ips_reach_them() {
    let prefix = random_prefix();
    let names = Names::new(&prefix).unwrap();
    let c = agent_cloud(&prefix, |_| {}).await;
    let (guest_ns, out_ns) = (format!("{prefix}-guest"), format!("{prefix}-out"));
    let _purge = Purge::of(&c, &names, vec![guest_ns.clone(), out_ns.clone()]);
    let n = c.admin.clone_with_base(&c.network_url);
    let t = ferro_testkit::routed_network(&n, "172.24.5.0/24", "10.78.0.0/24").await;
    let (ext, net, sn, rid) = (t.external, t.network, t.subnet, t.router);
    let (gw_ip, iface) = (t.gateway_ip, t.interface);
    let web = created(
        &n,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "web"}}),
    )
    .await;
    let web = web["security_group"]["id"].as_str().unwrap().to_string();
    created(
        &n,
        "/v2.0/security-group-rules",
        json!({"security_group_rule": {"security_group_id": web, "direction": "ingress",
            "protocol": "tcp", "port_range_min": 7000, "port_range_max": 7000}}),
    )
    .await;
    let (port_id, mac, ip) = guest_port(&n, &net, &web, "guest-r").await;

    // The agent holds the router: its namespace, and its ports go ACTIVE.
    let qrouter = names.router_ns(&rid);
    wait_for("the router's namespace and its ports ACTIVE", 20, || {
        let (n, q, iface, prefix) = (n.clone(), qrouter.clone(), iface.clone(), prefix.clone());
        async move {
            ferro_host::netns::list(&prefix).await.unwrap().contains(&q)
                && n.get(&format!("/v2.0/ports/{iface}")).await.unwrap().body["port"]["status"]
                    == "ACTIVE"
        }
    })
    .await;

    // Outside: a namespace on the external network holding its gateway address.
    let uplink = format!("{prefix}wout");
    plug_ns(
        &out_ns,
        &uplink,
        &names.bridge(&ext),
        None,
        Some("172.24.5.1/24"),
    )
    .await;
    // The guest, plugged as the hypervisor would, routed through the router.
    let tap = names.tap(&port_id);
    let cidr = format!("{ip}/24");
    plug_ns(
        &guest_ns,
        &tap,
        &names.bridge(&net),
        Some(&mac),
        Some(&cidr),
    )
    .await;
    sh(
        "ip",
        &[
            "-n",
            &guest_ns,
            "route",
            "add",
            "default",
            "via",
            "10.78.0.1",
        ],
    )
    .await;

    // SNAT: the outside sees the router's gateway address.
    let mut outside = peers_at(&out_ns, 7000);
    let mut seen = None;
    let t = Instant::now();
    while seen.is_none() && t.elapsed() < Duration::from_secs(15) {
        seen = seen_from(&guest_ns, "172.24.5.1", 7000, &mut outside).await;
    }
    assert_eq!(seen.as_deref(), Some(gw_ip.as_str()), "SNAT to the gateway");

    // A floating IP: the outside reaches the guest at it, and the guest goes out as it.
    let fip = created(
        &n,
        "/v2.0/floatingips",
        json!({"floatingip": {"floating_network_id": ext, "port_id": port_id}}),
    )
    .await;
    let fip_id = fip["floatingip"]["id"].as_str().unwrap().to_string();
    let fip = fip["floatingip"]["floating_ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let mut inside = peers_at(&guest_ns, 7000);
    let mut seen = None;
    let t = Instant::now();
    while seen.is_none() && t.elapsed() < Duration::from_secs(15) {
        seen = seen_from(&out_ns, &fip, 7000, &mut inside).await;
    }
    eprintln!("the floating IP answered after {:?}", t.elapsed());
    assert_eq!(seen.as_deref(), Some("172.24.5.1"), "DNAT to the guest");
    assert_eq!(
        seen_from(&guest_ns, "172.24.5.1", 7000, &mut outside)
            .await
            .as_deref(),
        Some(fip.as_str()),
        "the guest goes out as its floating IP"
    );

    // A static route lands in the namespace.
    let r = n
        .put(
            &format!("/v2.0/routers/{rid}"),
            Some(&json!({"router": {"routes": [{"destination": "192.0.2.0/24", "nexthop": "10.78.0.50"}]}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("the static route", 10, || async {
        ferro_host::netns::gateway_routes(&qrouter)
            .await
            .unwrap()
            .contains(&("192.0.2.0/24".into(), "10.78.0.50".into()))
    })
    .await;

    // An administratively down router keeps its ports ACTIVE but passes nothing.
    let admin = |up: bool| {
        let (n, rid) = (n.clone(), rid.clone());
        async move {
            let r = n
                .put(
                    &format!("/v2.0/routers/{rid}"),
                    Some(&json!({"router": {"admin_state_up": up}})),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    admin(false).await;
    wait_for("the router's ports to go down in its namespace", 10, || {
        let q = qrouter.clone();
        async move {
            let out = ferro_host::cmd::run("ip", &["-n", &q, "-o", "link", "show", "up"])
                .await
                .unwrap();
            !out.contains("qr-") && !out.contains("qg-")
        }
    })
    .await;
    let r = n.get(&format!("/v2.0/ports/{iface}")).await.unwrap();
    assert_eq!(r.body["port"]["status"], "ACTIVE", "{}", r.body);
    assert_eq!(seen_from(&out_ns, &fip, 7000, &mut inside).await, None);
    admin(true).await;
    let mut seen = None;
    let t = Instant::now();
    while seen.is_none() && t.elapsed() < Duration::from_secs(15) {
        seen = seen_from(&out_ns, &fip, 7000, &mut inside).await;
    }
    assert_eq!(
        seen.as_deref(),
        Some("172.24.5.1"),
        "up again: DNAT to the guest"
    );

    // Without the floating IP the outside no longer reaches the guest.
    let r = n
        .delete(&format!("/v2.0/floatingips/{fip_id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    wait_for("the floating IP to go", 10, || {
        let (q, fip32) = (qrouter.clone(), format!("{fip}/32"));
        async move {
            !ferro_host::cmd::run("ip", &["-n", &q, "-4", "addr", "show"])
                .await
                .unwrap()
                .contains(&fip32)
        }
    })
    .await;
    assert_eq!(seen_from(&out_ns, &fip, 7000, &mut inside).await, None);

    // Everything goes with the router.
    let r = n
        .put(
            &format!("/v2.0/routers/{rid}"),
            Some(&json!({"router": {"routes": []}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = n
        .put(
            &format!("/v2.0/routers/{rid}/remove_router_interface"),
            Some(&json!({"subnet_id": sn})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = n.delete(&format!("/v2.0/routers/{rid}")).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    wait_for("the router's namespace and ports to go", 20, || async {
        !ferro_host::netns::list(&prefix)
            .await
            .unwrap()
            .contains(&qrouter)
            && !ferro_host::link::list(&prefix)
                .await
                .unwrap()
                .iter()
                .any(|l| names.kind_of(&l.name) == Some('v'))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_networks_leave_the_host_on_its_mapped_interface() {
    let prefix = random_prefix();
    let names = Names::new(&prefix).unwrap();
    // The "physical" interface: a veth whose far end is a LAN namespace.
    let (phy, lan_ns) = (format!("{prefix}wphy"), format!("{prefix}-lan"));
    let (g1, g2) = (format!("{prefix}-g1"), format!("{prefix}-g2"));
    sh("ip", &["netns", "add", &lan_ns]).await;
    sh(
        "ip",
        &[
            "link", "add", &phy, "type", "veth", "peer", "name", "eth0", "netns", &lan_ns,
        ],
    )
    .await;
    let c = agent_cloud(&prefix, |cfg| {
        cfg.network.vlan_ranges.push("dp:100:200".into());
        cfg.network_agent.physical_interface_mappings = format!("dp:{phy}");
    })
    .await;
    let _purge = Purge::of(&c, &names, vec![lan_ns.clone(), g1.clone(), g2.clone()]);
    let n = c.admin.clone_with_base(&c.network_url);
    // Kernels without 802.1Q (no `8021q`, as on some CI hosts) have no VLAN devices.
    let vlans = ferro_host::cmd::run(
        "ip",
        &[
            "-n", &lan_ns, "link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id",
            "100",
        ],
    )
    .await
    .is_ok();
    if !vlans {
        eprintln!("this kernel has no VLAN devices: the VLAN network is not tried");
    }
    let mut guests = Vec::new();
    let mut nets = vec![("flat", "flat", None, "10.81.0.0/24", &g1)];
    if vlans {
        nets.push(("vlan", "vlan", Some(100), "10.82.0.0/24", &g2));
    }
    for (name, kind, vid, cidr, ns) in nets {
        let mut body = json!({"network": {"name": name, "provider:network_type": kind,
            "provider:physical_network": "dp"}});
        if let Some(v) = vid {
            body["network"]["provider:segmentation_id"] = json!(v);
        }
        let net = created(&n, "/v2.0/networks", body).await;
        let net = net["network"]["id"].as_str().unwrap().to_string();
        created(
            &n,
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4,
                "enable_dhcp": false}}),
        )
        .await;
        let port = created(
            &n,
            "/v2.0/ports",
            json!({"port": {"network_id": net, "device_owner": "compute:nova",
                "device_id": name, "binding:host_id": "fake-0", "port_security_enabled": false}}),
        )
        .await;
        let f = |k: &Value| k.as_str().unwrap().to_string();
        let p = &port["port"];
        let (id, mac, ip) = (
            f(&p["id"]),
            f(&p["mac_address"]),
            f(&p["fixed_ips"][0]["ip_address"]),
        );
        let bridge = names.bridge(&net);
        wait_for("the provider network's bridge", 20, || async {
            ferro_host::link::get(&bridge).await.unwrap().is_some()
        })
        .await;
        let cidr = format!("{ip}/24");
        plug_ns(ns, &names.tap(&id), &bridge, Some(&mac), Some(&cidr)).await;
        guests.push((net, ns.clone()));
    }
    // The LAN: untagged 10.81.0.250, VLAN 100 10.82.0.250.
    let lan = |dev: &'static str, cidr: &'static str| {
        let ns = lan_ns.clone();
        async move {
            sh("ip", &["-n", &ns, "addr", "add", cidr, "dev", dev]).await;
            sh("ip", &["-n", &ns, "link", "set", dev, "up"]).await;
        }
    };
    lan("eth0", "10.81.0.250/24").await;
    let ping = |ns: String, to: &'static str| async move {
        ferro_host::cmd::run(
            "ip",
            &[
                "netns", "exec", &ns, "busybox", "ping", "-c", "1", "-W", "1", to,
            ],
        )
        .await
        .is_ok()
    };
    wait_for("the flat network's guest to reach the LAN", 15, || {
        ping(g1.clone(), "10.81.0.250")
    })
    .await;
    if vlans {
        lan("eth0.100", "10.82.0.250/24").await;
        wait_for("the VLAN network's guest to reach VLAN 100", 15, || {
            ping(g2.clone(), "10.82.0.250")
        })
        .await;
        assert!(
            !ping(g2.clone(), "10.81.0.250").await,
            "the VLAN network does not see the untagged LAN"
        );
    }
    let r = n
        .get("/v2.0/agents?agent_type=Linux%20bridge%20agent")
        .await
        .unwrap();
    assert_eq!(
        r.body["agents"][0]["configurations"]["interface_mappings"]["dp"],
        phy.as_str(),
        "{}",
        r.body
    );

    // Deleting the networks takes their bridges and VLAN device; the interface stays.
    for (net, ns) in &guests {
        sh("ip", &["netns", "del", ns]).await;
        let ports = n
            .get(&format!("/v2.0/ports?network_id={net}"))
            .await
            .unwrap();
        for p in ports.body["ports"].as_array().unwrap() {
            let id = p["id"].as_str().unwrap();
            assert_eq!(
                n.delete(&format!("/v2.0/ports/{id}")).await.unwrap().status,
                204
            );
        }
        assert_eq!(
            n.delete(&format!("/v2.0/networks/{net}"))
                .await
                .unwrap()
                .status,
            204
        );
    }
    wait_for("no bridge or VLAN device of the prefix", 20, || async {
        ferro_host::link::list(&prefix)
            .await
            .unwrap()
            .iter()
            .all(|l| names.kind_of(&l.name).is_none())
    })
    .await;
    let l = ferro_host::link::get(&phy)
        .await
        .unwrap()
        .expect("the interface stays");
    assert_eq!(l.master, None, "and is out of every bridge");
    sh("ip", &["link", "del", &phy]).await;
}
