//! Bad input and failing QEMU: clean errors that say why, and nothing left behind; ports
//! whose tap cannot be made; and the accelerator probe.

use std::time::Duration;

use ferro_virt::Driver;
use ferro_virt::qemu::{Accel, AccelMode, QemuConfig, QemuDriver};

use crate::host::{Links, TestHost, guest_image, guest_spec, nic, source};

#[tokio::test]
async fn an_image_that_is_not_a_disk_fails_the_spawn_and_leaves_nothing() {
    let host = TestHost::new().await;
    let junk = host.dir.path().join("junk.img");
    std::fs::write(&junk, b"not really a disk").unwrap();
    let uuid = "3d2c9e4a-3333-4c7d-9e5f-0000000000c3";
    let mut spec = guest_spec(uuid, "");
    spec.image = Some(source("junk", &junk, "qcow2"));
    let e = host.driver.spawn(&spec).await.unwrap_err().to_string();
    assert!(e.contains("not a valid qcow2 disk"), "{e}");
    assert!(host.driver.list_instances().await.unwrap().is_empty());
    assert!(!host.dir.path().join("vms").join(uuid).exists());
    assert!(host.qemu_pids().is_empty());

    // Bytes that do not hash to os_hash_value never reach the cache.
    let mut spec = guest_spec(uuid, "");
    if let Some(i) = spec.image.as_mut() {
        i.id = "tampered".into();
        i.os_hash_value = Some("ab".repeat(64));
    }
    let e = host.driver.spawn(&spec).await.unwrap_err().to_string();
    assert!(e.contains("os_hash_value"), "{e}");
    assert!(!host.dir.path().join("images/tampered").exists());
}

#[tokio::test]
async fn qemu_failing_to_start_reports_its_stderr_and_leaves_nothing() {
    let host = TestHost::new().await;
    let uuid = "4e3daf5b-4444-4d8e-8f60-0000000000d4";
    let mut spec = guest_spec(uuid, "");
    // A kernel that is no kernel: QEMU refuses it before the guest exists.
    spec.kernel = Some(source(
        "not-a-kernel",
        &guest_image().join("root.raw"),
        "aki",
    ));
    let e = host.driver.spawn(&spec).await.unwrap_err().to_string();
    assert!(e.contains("failed to start"), "{e}");
    assert!(
        e.to_lowercase().contains("kernel"),
        "QEMU's stderr is in the error: {e}"
    );
    assert!(!host.dir.path().join("vms").join(uuid).exists());
    assert!(host.qemu_pids().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let mut c = QemuConfig::new(dir.path());
    c.qemu_binary = "/nonexistent/qemu-system-x86_64".into();
    let e = QemuDriver::new(c)
        .await
        .err()
        .expect("no driver without qemu");
    assert!(e.to_string().contains("not installed"), "{e}");
}

/// A tmpfs mounted over `path` for the test's length (unmounted when dropped, also when
/// the test fails).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs at {path:?} (root)");
        SmallDisk(path.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_host_out_of_disk_fails_the_spawn_and_leaves_nothing() {
    let host = TestHost::new().await;
    // The guests' directories on a filesystem with no room for a disk overlay.
    let _full = SmallDisk::mount(&host.dir.path().join("vms"), "64k");
    let uuid = "5f4eb06c-5555-4e9f-9071-0000000000e5";
    let e = host
        .driver
        .spawn(&guest_spec(uuid, ""))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.to_lowercase().contains("no space"),
        "the error says why: {e}"
    );
    assert!(host.driver.list_instances().await.unwrap().is_empty());
    assert!(!host.dir.path().join("vms").join(uuid).exists());
    assert!(host.qemu_pids().is_empty());
}

#[tokio::test]
async fn the_accelerator_probe_boots_a_kernel_and_remembers_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = QemuConfig::new(dir.path());
    c.accel = AccelMode::Auto;
    c.probe_kernel = Some(guest_image().join("vmlinuz"));
    c.probe_timeout = Duration::from_secs(10);
    let t = std::time::Instant::now();
    let d = QemuDriver::new(c.clone()).await.unwrap();
    let p = d.probe().clone();
    eprintln!(
        "probe: {:?} in {} ms: {}",
        p.accel,
        t.elapsed().as_millis(),
        p.reason
    );
    assert!(!p.reason.is_empty());
    assert_eq!(d.accelerator(), Some(p.accel.as_str()));
    assert!(dir.path().join("accel.json").is_file());
    // The second start reuses the answer instead of booting again.
    let again = QemuDriver::new(c).await.unwrap();
    assert_eq!(again.probe(), &p);
    // Forcing wins over the probe.
    let mut forced = QemuConfig::new(dir.path());
    forced.accel = AccelMode::Tcg;
    assert_eq!(
        QemuDriver::new(forced).await.unwrap().probe().accel,
        Accel::Tcg
    );
    assert!(crate::host::qemu_pids_under(dir.path()).is_empty());
}

/// The device-name prefixes of the spawn and the attach test: their bridges, taps and the
/// devices they put in the taps' way carry it, and nothing else does.
const SPAWN_PREFIX: &str = "fqp";
const ATTACH_PREFIX: &str = "fqa";

/// A network whose bridge no tap can join (MTU 65535, above a tap's 65521 — as the network
/// agent makes a bridge with its network's MTU): the tap is made and put in the bridge, then
/// its MTU is refused. The network's id.
const JUMBO_NET: &str = "15bf0000-0000-4000-8000-00000000ffff";

/// The port a clashing device is in the way of, and that device: a veth named as the
/// port's tap (someone else's: the driver must neither use nor remove it).
struct Clash {
    port: ferro_virt::Nic,
    tap: String,
}

fn clash(names: &ferro_host::Names, net: &str) -> Clash {
    let port = nic(
        "c1a50000-0000-4000-8000-000000000002",
        net,
        "fa:16:3e:00:0d:02",
    );
    let tap = names.tap(&port.port_id);
    Links::ip(&[
        "link",
        "add",
        &tap,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{}wpeer", names.prefix()),
    ]);
    Clash { port, tap }
}

/// The bridge of [`JUMBO_NET`], made as its network agent would.
fn jumbo_bridge(names: &ferro_host::Names) -> String {
    let bridge = names.bridge(JUMBO_NET);
    Links::ip(&["link", "add", "name", &bridge, "type", "bridge"]);
    Links::ip(&["link", "set", &bridge, "mtu", "65535", "up"]);
    bridge
}

/// The stray device is there as it was: still a veth, in no bridge.
async fn untouched(clash: &Clash) {
    let l = ferro_host::link::get(&clash.tap)
        .await
        .unwrap()
        .expect("the stray device is left");
    assert_eq!(l.kind(), "veth");
    assert_eq!(l.master, None, "the stray device was put in a bridge");
}

#[tokio::test]
async fn a_port_whose_tap_cannot_be_made_fails_the_spawn_and_leaves_no_tap() {
    let links = Links(SPAWN_PREFIX);
    let names = ferro_host::Names::new(SPAWN_PREFIX).unwrap();
    let host = TestHost::with(|c| c.names = names.clone()).await;
    let net = "9b1d0000-0000-4000-8000-000000000001";
    let uuid = "6a5fc17d-6666-4fa0-a182-0000000000f6";

    // Two ports: the first plugs, the second's tap name is taken by a veth. The error names
    // the port and why; the first port's tap goes again, the veth stays as it was.
    let plugged = nic(
        "600d0000-0000-4000-8000-000000000001",
        net,
        "fa:16:3e:00:0d:01",
    );
    let clash = clash(&names, net);
    let mut spec = guest_spec(uuid, "");
    spec.nics = vec![plugged.clone(), clash.port.clone()];
    let e = host.driver.spawn(&spec).await.unwrap_err().to_string();
    assert!(e.contains(&clash.port.port_id), "the port is named: {e}");
    assert!(e.contains("is not a tap (veth)"), "the error says why: {e}");
    assert!(!links.list().contains(&names.tap(&plugged.port_id)));
    assert!(Links::ports_of(&names.bridge(net)).is_empty());
    untouched(&clash).await;
    assert!(host.driver.list_instances().await.unwrap().is_empty());
    assert!(!host.dir.path().join("vms").join(uuid).exists());
    assert!(host.qemu_pids().is_empty());

    // A tap that is made and in its bridge when the next step fails is removed too.
    let bridge = jumbo_bridge(&names);
    let jumbo = nic(
        "b16b0000-0000-4000-8000-000000000003",
        JUMBO_NET,
        "fa:16:3e:00:0d:03",
    );
    let mut spec = guest_spec(uuid, "");
    spec.nics = vec![jumbo.clone()];
    let e = host.driver.spawn(&spec).await.unwrap_err().to_string();
    assert!(e.contains(&jumbo.port_id) && e.contains("mtu"), "{e}");
    assert!(!links.list().contains(&names.tap(&jumbo.port_id)));
    assert!(Links::ports_of(&bridge).is_empty());
    assert!(!host.dir.path().join("vms").join(uuid).exists());
    assert!(host.qemu_pids().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_whose_tap_cannot_be_made_fails_its_attach_and_leaves_no_tap() {
    let links = Links(ATTACH_PREFIX);
    let names = ferro_host::Names::new(ATTACH_PREFIX).unwrap();
    let host = TestHost::with(|c| c.names = names.clone()).await;
    let d = &host.driver;
    let net = "9b1d0000-0000-4000-8000-000000000002";
    let uuid = "7b60d28e-7777-40b1-9293-0000000000f7";
    d.spawn(&guest_spec(uuid, "")).await.unwrap();
    let spec_file = host.dir.path().join("vms").join(uuid).join("spec.json");
    let spec_before = std::fs::read(&spec_file).unwrap();

    let clash = clash(&names, net);
    let e = d
        .attach_interface(uuid, &clash.port)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&clash.port.port_id), "{e}");
    assert!(e.contains("is not a tap (veth)"), "{e}");
    untouched(&clash).await;

    let bridge = jumbo_bridge(&names);
    let jumbo = nic(
        "b16b0000-0000-4000-8000-000000000004",
        JUMBO_NET,
        "fa:16:3e:00:0d:04",
    );
    let e = d
        .attach_interface(uuid, &jumbo)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&jumbo.port_id), "{e}");
    assert!(!links.list().contains(&names.tap(&jumbo.port_id)));
    assert!(Links::ports_of(&bridge).is_empty());
    assert_eq!(
        std::fs::read(&spec_file).unwrap(),
        spec_before,
        "the guest has no NIC more"
    );

    // With the stray device gone the same port attaches: nothing of the failure is in
    // the way. Deleting the guest removes its tap.
    Links::ip(&["link", "delete", &clash.tap]);
    d.attach_interface(uuid, &clash.port).await.unwrap();
    let tap = ferro_host::link::get(&clash.tap).await.unwrap().unwrap();
    assert_eq!(tap.kind(), "tun");
    d.destroy(uuid).await.unwrap();
    assert!(!links.list().contains(&clash.tap));
    assert!(host.qemu_pids().is_empty());
}
