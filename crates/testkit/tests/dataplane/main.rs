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

async fn sh(program: &str, args: &[&str]) -> String {
    ferro_host::cmd::run(program, args)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn created(n: &Client, path: &str, body: Value) -> Value {
    let r = n.post(path, &body).await.unwrap();
    assert_eq!(r.status, 201, "{path}: {}", r.body);
    r.body
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
    let prefix = random_prefix();
    let names = Names::new(&prefix).unwrap();
    let c = TestCloud::start_with(|cfg| {
        cfg.compute.fake_hosts = 1;
        cfg.network_agent.enabled = "true".into();
        cfg.network_agent.prefix = prefix.clone();
        cfg.network_agent.sync_interval = 2;
    })
    .await
    .expect("cloud starts");
    let guest_ns = format!("{prefix}-guest");
    let _purge = Purge {
        names: names.clone(),
        state_dir: c.config.state_dir.join("network"),
        extra_ns: vec![guest_ns.clone()],
    };
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
    let port = created(
        &n,
        "/v2.0/ports",
        json!({"port": {"network_id": net, "device_owner": "compute:nova",
            "device_id": "guest-1", "binding:host_id": "fake-0", "security_groups": [sg]}}),
    )
    .await;
    let port_id = port["port"]["id"].as_str().unwrap().to_string();
    let mac = port["port"]["mac_address"].as_str().unwrap().to_string();
    let ip = port["port"]["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();

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
    sh("ip", &["netns", "add", &guest_ns]).await;
    sh(
        "ip",
        &[
            "link", "add", &tap, "type", "veth", "peer", "name", "eth0", "netns", &guest_ns,
        ],
    )
    .await;
    sh("ip", &["link", "set", &tap, "master", &bridge, "up"]).await;
    sh(
        "ip",
        &[
            "-n", &guest_ns, "link", "set", "eth0", "address", &mac, "up",
        ],
    )
    .await;
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
    let _purge = Purge {
        names: names.clone(),
        state_dir: c.config.state_dir.join("network"),
        extra_ns: vec![],
    };
    let _purge_other = Purge {
        names: other_names.clone(),
        state_dir: c.config.state_dir.join("network-b"),
        extra_ns: vec![],
    };
    // Host B's agent, as `ferrostack network-agent` runs it: no DHCP, its own tunnel address.
    let mut ac = ferro_network_agent::AgentConfig::new(
        "host-b",
        other_names.clone(),
        c.config.state_dir.join("network-b"),
    );
    ac.dhcp = false;
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
