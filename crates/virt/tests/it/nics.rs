//! NIC hot-plug (`os-interface`) on a real guest: a port attached to a running guest shows
//! in QEMU (`qom-list`, `query-pci`), its tap sits in the network's bridge and the guest
//! prints the new NIC; it survives power off/on, suspend/resume and an agent restart;
//! detached, it is gone from QEMU, the bridge and the guest, and does not come back on the
//! next start. A guest that does not release a NIC fails the detach; a failed attach
//! leaves nothing behind.

use std::time::Duration;

use ferro_virt::qemu::qmp::Qmp;
use ferro_virt::{Driver, PowerState, VirtError};
use serde_json::json;

use crate::host::{Links, MARKER, TestHost, guest_spec, nic};

/// This test's device-name prefix: its bridge and taps, and nothing else, carry it.
const PREFIX: &str = "fqn";

/// The ids of the guest's user-created devices and the bus-0 PCI slots, over QMP.
async fn qemu_devices(host: &TestHost, uuid: &str) -> (Vec<String>, Vec<u64>) {
    let sock = host.dir.path().join("vms").join(uuid).join("qmp.sock");
    let mut q = Qmp::connect(&sock, Duration::from_secs(10)).await.unwrap();
    let devices = q
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .await
        .unwrap();
    let ids = devices
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"].as_str().is_some_and(|t| t.starts_with("child<")))
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    let pci = q.execute("query-pci", None).await.unwrap();
    let slots = pci[0]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["slot"].as_u64())
        .collect();
    (ids, slots)
}

fn count(out: &str, needle: &str) -> usize {
    out.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_plugged_nic_lives_through_power_cycles_and_unplugs() {
    let links = Links(PREFIX);
    let host = TestHost::with(|c| {
        c.names = ferro_host::Names::new(PREFIX).unwrap();
        c.detach_timeout = Duration::from_secs(3);
    })
    .await;
    let names = ferro_host::Names::new(PREFIX).unwrap();
    let d = &host.driver;
    let uuid = "1b0a7c2e-2222-4a5b-9c3d-0000000000c1";
    let net = "5e1d0000-0000-4000-8000-0000000000aa";
    let cold = nic(
        "c01d0000-0000-4000-8000-000000000001",
        net,
        "fa:16:3e:00:0c:01",
    );
    let hot = nic(
        "407a0000-0000-4000-8000-000000000002",
        net,
        "fa:16:3e:00:0c:02",
    );
    let (bridge, hot_tap) = (names.bridge(net), names.tap(&hot.port_id));
    let mut spec = guest_spec(uuid, "nics");
    spec.nics = vec![cold.clone()];
    d.spawn(&spec).await.unwrap();
    host.wait_console(uuid, "guest: nic eth0 fa:16:3e:00:0c:01 present", 1)
        .await;

    // Attach to the running guest: QEMU has the device at a hot-plug slot, the tap is in
    // the bridge, the guest sees the NIC. Attaching again changes nothing.
    d.attach_interface(uuid, &hot).await.unwrap();
    d.attach_interface(uuid, &hot).await.unwrap();
    let hot_dev = format!("net-{}", hot.port_id);
    let (ids, slots) = qemu_devices(&host, uuid).await;
    assert!(ids.contains(&hot_dev), "{ids:?}");
    assert_eq!(slots.iter().filter(|s| **s == 0x10).count(), 1, "{slots:?}");
    assert!(Links::ports_of(&bridge).contains(&hot_tap));
    let present = "guest: nic eth1 fa:16:3e:00:0c:02 present";
    host.wait_console(uuid, present, 1).await;

    // Power off and on: the guest boots with both NICs.
    d.power_off(uuid).await.unwrap();
    assert!(Links::ports_of(&bridge).contains(&hot_tap));
    d.power_on(uuid).await.unwrap();
    host.wait_console(uuid, MARKER, 2).await;
    host.wait_console(uuid, "fa:16:3e:00:0c:02 present", 2)
        .await;

    // Suspend and resume: the saved state loads into the same devices.
    d.suspend(uuid).await.unwrap();
    assert!(matches!(
        d.attach_interface(uuid, &nic("0ther", net, "fa:16:3e:00:0c:03"))
            .await,
        Err(VirtError::InvalidState { .. })
    ));
    d.resume(uuid).await.unwrap();
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Running);
    assert!(qemu_devices(&host, uuid).await.0.contains(&hot_dev));

    // A guest that cannot answer (paused) keeps the NIC: the detach fails, as upstream's
    // DeviceDetachFailed; once it runs again it lets go, and a second detach completes.
    d.pause(uuid).await.unwrap();
    let err = d.detach_interface(uuid, &hot.port_id).await.unwrap_err();
    assert!(err.to_string().contains("did not release"), "{err}");
    d.unpause(uuid).await.unwrap();

    // After an agent restart the same driver state detaches it.
    let mut host = host;
    host.restart().await;
    let d = &host.driver;
    let mut detached = Err(VirtError::Failed("not tried".into()));
    for _ in 0..5 {
        detached = d.detach_interface(uuid, &hot.port_id).await;
        if detached.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    detached.unwrap();
    d.detach_interface(uuid, &hot.port_id).await.unwrap();
    let (ids, _) = qemu_devices(&host, uuid).await;
    assert!(!ids.contains(&hot_dev), "{ids:?}");
    assert!(!links.list().contains(&hot_tap));
    host.wait_console(uuid, "guest: nic eth1 gone", 1).await;

    // A failed attach leaves no tap: QEMU refuses the id of a port named with `+`.
    let bad = nic("bad+port", net, "fa:16:3e:00:0c:04");
    assert!(d.attach_interface(uuid, &bad).await.is_err());
    assert!(!links.list().contains(&names.tap(&bad.port_id)));
    let bad_mac = nic(
        "4bad0000-0000-4000-8000-000000000005",
        net,
        "fa:16:3e:00:0c",
    );
    assert!(d.attach_interface(uuid, &bad_mac).await.is_err());
    let (ids, _) = qemu_devices(&host, uuid).await;
    assert_eq!(
        ids.iter().filter(|i| i.starts_with("net-")).count(),
        1,
        "{ids:?}"
    );

    // The detached NIC does not come back on the next start; the cold one detaches
    // while the guest is off.
    d.power_off(uuid).await.unwrap();
    d.detach_interface(uuid, &cold.port_id).await.unwrap();
    d.power_on(uuid).await.unwrap();
    let out = host.wait_console(uuid, MARKER, 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = d.console_output(uuid).await.unwrap_or(out);
    assert_eq!(count(&out, "fa:16:3e:00:0c:02 present"), 2, "{out}");
    assert_eq!(count(&out, "fa:16:3e:00:0c:01 present"), 2, "{out}");
    let (ids, _) = qemu_devices(&host, uuid).await;
    assert!(!ids.iter().any(|i| i.starts_with("net-")), "{ids:?}");

    // Deletion removes every tap of the guest.
    d.attach_interface(uuid, &hot).await.unwrap();
    d.destroy(uuid).await.unwrap();
    assert!(
        !links.list().iter().any(|l| l != &bridge),
        "{:?}",
        links.list()
    );
}
