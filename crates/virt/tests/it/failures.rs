//! Bad input and failing QEMU: clean errors that say why, and nothing left behind; and
//! the accelerator probe.

use std::time::Duration;

use ferro_virt::Driver;
use ferro_virt::qemu::{Accel, AccelMode, QemuConfig, QemuDriver};

use crate::host::{TestHost, guest_image, guest_spec, source};

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
