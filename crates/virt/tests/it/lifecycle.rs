//! A real guest through its whole life: boot with a config drive, console, pause, soft
//! reboot, power off and on, suspend to a file and resume, and deletion; and an agent
//! restart that finds its running guests again.

use std::time::Instant;

use ferro_virt::{Driver, InstanceSpec, PowerState, VirtError};

use crate::host::{MARKER, TestHost, guest_image, guest_spec, source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_boots_reads_its_config_drive_and_follows_every_power_action() {
    let host = TestHost::new().await;
    let d = &host.driver;
    let uuid = "1b0a7c2e-1111-4a5b-9c3d-0000000000a1";
    let spec = guest_spec(uuid, "hello from the config drive");
    let t0 = Instant::now();
    d.spawn(&spec).await.unwrap();
    let started = t0.elapsed();
    // Spawning again leaves the guest as it is.
    d.spawn(&spec).await.unwrap();
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Running);
    host.wait_console(uuid, MARKER, 1).await;
    // The marker comes first; the rest follows it.
    let out = host.wait_console(uuid, "user-data-end", 1).await;
    eprintln!(
        "timing: spawn returned after {} ms, marker after {} ms",
        started.as_millis(),
        t0.elapsed().as_millis()
    );
    assert!(out.contains(&format!("instance-uuid: {uuid}")), "{out}");
    assert!(out.contains("hello from the config drive"), "{out}");
    assert_eq!(d.list_instances().await.unwrap(), vec![uuid.to_string()]);
    assert_eq!(d.hypervisor_type(), "QEMU");
    assert_eq!(d.accelerator(), Some("tcg"));
    let cpu = d.cpu_info();
    assert_eq!(
        (&cpu["accelerator"], &cpu["model"]),
        (&"tcg".into(), &"qemu64".into())
    );
    assert!(d.hypervisor_version() > 1_000_000);

    // createImage: a flattened qcow2 copy while the guest keeps running.
    let snap = host.dir.path().join("snapshot.qcow2");
    d.snapshot(uuid, &snap).await.unwrap();
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&snap)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"].as_u64(), Some(1 << 30));
    assert!(info.get("backing-filename").is_none(), "{info}");
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Running);
    assert!(d.snapshot("no-such-guest", &snap).await.is_err());

    d.pause(uuid).await.unwrap();
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Paused);
    assert!(matches!(
        d.reboot(uuid, false).await,
        Err(VirtError::InvalidState { .. })
    ));
    d.unpause(uuid).await.unwrap();
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Running);

    // Soft reboot: the guest powers off on the ACPI button and comes back.
    let t = Instant::now();
    d.reboot(uuid, false).await.unwrap();
    host.wait_console(uuid, MARKER, 2).await;
    eprintln!(
        "timing: soft reboot to marker {} ms",
        t.elapsed().as_millis()
    );
    assert!(
        d.console_output(uuid)
            .await
            .unwrap()
            .contains("ACPI power button")
    );

    d.power_off(uuid).await.unwrap();
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Shutdown);
    assert!(host.qemu_pids().is_empty());
    d.power_off(uuid).await.unwrap();
    d.power_on(uuid).await.unwrap();
    host.wait_console(uuid, MARKER, 3).await;

    let t = Instant::now();
    d.suspend(uuid).await.unwrap();
    eprintln!("timing: suspend {} ms", t.elapsed().as_millis());
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Suspended);
    assert!(host.qemu_pids().is_empty());
    assert!(matches!(
        d.power_on(uuid).await,
        Err(VirtError::InvalidState { .. })
    ));
    let t = Instant::now();
    d.resume(uuid).await.unwrap();
    eprintln!("timing: resume {} ms", t.elapsed().as_millis());
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Running);
    // The resumed guest is the same boot (no new marker), and it still answers ACPI.
    assert_eq!(
        d.console_output(uuid)
            .await
            .unwrap()
            .matches(MARKER)
            .count(),
        3
    );
    d.reboot(uuid, true).await.unwrap();
    host.wait_console(uuid, MARKER, 4).await;

    d.destroy(uuid).await.unwrap();
    d.destroy(uuid).await.unwrap();
    assert!(host.qemu_pids().is_empty());
    assert!(!host.dir.path().join("vms").join(uuid).exists());
    assert!(matches!(
        d.power_state(uuid).await,
        Err(VirtError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_driver_finds_its_running_guests_again() {
    let mut host = TestHost::new().await;
    let uuid = "2c1b8d3f-2222-4b6c-8d4e-0000000000b2";
    // This guest's root image is qcow2 (the other test's is raw).
    let qcow2 = host.dir.path().join("root.qcow2");
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-q", "-O", "qcow2"])
        .arg(guest_image().join("root.raw"))
        .arg(&qcow2)
        .status()
        .unwrap();
    assert!(status.success());
    let mut spec = guest_spec(uuid, "before the restart");
    spec.image = Some(source("guest-root-qcow2", &qcow2, "qcow2"));
    host.driver.spawn(&spec).await.unwrap();
    host.wait_console(uuid, MARKER, 1).await;
    let pids = host.qemu_pids();
    assert_eq!(pids.len(), 1);

    host.restart().await;
    let d = &host.driver;
    assert_eq!(d.list_instances().await.unwrap(), vec![uuid.to_string()]);
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Running);
    assert_eq!(host.qemu_pids(), pids, "the guest kept its process");
    d.pause(uuid).await.unwrap();
    d.unpause(uuid).await.unwrap();
    d.reboot(uuid, true).await.unwrap();
    host.wait_console(uuid, MARKER, 2).await;

    // Resize on this host: the root disk grows, the guest gets the new memory; a revert
    // brings the old disk back.
    let disk = host.dir.path().join("vms").join(uuid).join("disk");
    d.migrate_disk_and_power_off(uuid).await.unwrap();
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Shutdown);
    let bigger = InstanceSpec {
        root_gb: 2,
        memory_mb: 160,
        ..spec.clone()
    };
    d.finish_migration(&bigger, true).await.unwrap();
    host.wait_console(uuid, MARKER, 3).await;
    assert_eq!(virtual_size(&disk), 2 << 30);
    assert!(cmdline_of(host.qemu_pids()[0]).contains(" -m 160 "));
    d.finish_revert_migration(&spec, false).await.unwrap();
    assert_eq!(d.power_state(uuid).await.unwrap(), PowerState::Shutdown);
    assert_eq!(virtual_size(&disk), 1 << 30);
    d.power_on(uuid).await.unwrap();
    host.wait_console(uuid, MARKER, 4).await;
    assert!(cmdline_of(host.qemu_pids()[0]).contains(" -m 128 "));

    // Another host cannot finish a resize: the disk is here.
    let other = TestHost::new().await;
    let e = other
        .driver
        .finish_migration(&bigger, true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("between hosts"), "{e}");

    d.destroy(uuid).await.unwrap();
    assert!(host.qemu_pids().is_empty());
    assert!(d.list_instances().await.unwrap().is_empty());
}

fn virtual_size(disk: &std::path::Path) -> u64 {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(disk)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

fn cmdline_of(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
        .replace('\0', " ")
}
