//! A flavor's ephemeral and swap disks on a real guest: the guest finds an ext4 file system
//! labelled `ephemeral0` on vdb and swap on vdc (its user-data script reads their
//! superblocks and sizes), each disk a qcow2 overlay on a formatted base in the image cache; a resize grows
//! the ephemeral disk and remakes swap at the new size, refuses to shrink the ephemeral
//! disk, and deletion removes the guest's disks and keeps the shared bases. The image cache
//! pass never removes what a guest uses (root image, kernel, ramdisk, scratch bases), and
//! removes the rest once unused for longer than its age.

use std::time::Duration;

use ferro_virt::{Driver, InstanceSpec};

use crate::host::{MARKER, TestHost, guest_spec};

/// The user-data script: for each disk, its size in sectors, the ext4 volume name (at
/// byte 1144: superblock 1024 + 120) and the swap signature (`SWAPSPACE2` at 4086).
const SCRIPT: &str = r#"#!/bin/sh
for d in vdb vdc vdd; do
  l=$(dd if=/dev/$d bs=1 skip=1144 count=16 2>/dev/null | tr -d '\000')
  w=$(dd if=/dev/$d bs=1 skip=4086 count=10 2>/dev/null)
  echo "disk $d sectors=$(cat /sys/block/$d/size) label=$l swap=$w"
done
echo disks-done
"#;

/// The guest's line about disk `dev` (`vdb`) printed after marker number `boot`.
fn disk_line(console: &str, boot: usize, dev: &str) -> Option<String> {
    let needle = format!("user-script: disk {dev} ");
    console
        .split(MARKER)
        .nth(boot)?
        .lines()
        .find(|l| l.starts_with(&needle))
        .map(str::to_string)
}

fn virtual_size(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_and_swap_disks_are_formatted_and_follow_a_resize() {
    let host = TestHost::new().await;
    let d = &host.driver;
    let uuid = "1b0a7c2e-3333-4a5b-9c3d-0000000000d1";
    let spec = InstanceSpec {
        ephemeral_gb: 1,
        swap_mb: 16,
        ..guest_spec(uuid, SCRIPT)
    };
    d.spawn(&spec).await.unwrap();
    let out = host.wait_console(uuid, "user-script: disks-done", 1).await;
    let line = |dev| disk_line(&out, 1, dev).unwrap_or_default();
    assert!(
        line("vdb").ends_with("sectors=2097152 label=ephemeral0 swap="),
        "{out}"
    );
    assert!(
        line("vdc").ends_with("sectors=32768 label= swap=SWAPSPACE2"),
        "{out}"
    );
    // The config drive comes after them.
    assert!(line("vdd").contains("label= swap="), "{out}");

    let vm = host.dir.path().join("vms").join(uuid);
    let images = host.dir.path().join("images");
    let bases: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ephemeral_1_") || n == "swap_16")
        .collect();
    assert_eq!(bases.len(), 2, "{bases:?}");

    // The cache pass, even with no age at all, keeps every file the guest uses.
    std::fs::write(images.join("swap_999"), b"").unwrap();
    let removed = d.manage_image_cache(Duration::ZERO).await.unwrap();
    assert_eq!(removed, vec!["swap_999"]);
    assert!(
        d.manage_image_cache(Duration::from_secs(86_400))
            .await
            .unwrap()
            .is_empty()
    );

    // Shrinking the ephemeral disk is refused, the guest left as it was.
    d.migrate_disk_and_power_off(uuid).await.unwrap();
    let smaller = InstanceSpec {
        ephemeral_gb: 0,
        ..spec.clone()
    };
    let e = d.finish_migration(&smaller, true).await.unwrap_err();
    assert!(e.to_string().contains("Unable to resize disk down"), "{e}");
    d.finish_revert_migration(&spec, true).await.unwrap();
    host.wait_console(uuid, "user-script: disks-done", 2).await;

    // Growing: the ephemeral disk grows in place, swap is made anew at its new size.
    d.migrate_disk_and_power_off(uuid).await.unwrap();
    let bigger = InstanceSpec {
        ephemeral_gb: 2,
        swap_mb: 32,
        ..spec.clone()
    };
    d.finish_migration(&bigger, true).await.unwrap();
    let out = host.wait_console(uuid, "user-script: disks-done", 3).await;
    let line = |dev| disk_line(&out, 3, dev).unwrap_or_default();
    assert!(
        line("vdb").contains("sectors=4194304 label=ephemeral0 "),
        "{out}"
    );
    assert!(
        line("vdc").ends_with("sectors=65536 label= swap=SWAPSPACE2"),
        "{out}"
    );
    assert_eq!(virtual_size(&vm.join("disk.eph0")), 2 << 30);
    assert_eq!(virtual_size(&vm.join("disk.swap")), 32 << 20);
    assert!(images.join("swap_32").is_file());

    d.destroy(uuid).await.unwrap();
    assert!(!vm.exists());
    assert!(
        images.join("swap_16").is_file(),
        "bases outlive their guests"
    );
    // Unused now, they go on the next pass past their age.
    assert!(
        d.manage_image_cache(Duration::from_secs(86_400))
            .await
            .unwrap()
            .is_empty()
    );
    let removed = d.manage_image_cache(Duration::ZERO).await.unwrap();
    assert!(removed.contains(&"guest-root".to_string()), "{removed:?}");
    assert_eq!(
        std::fs::read_dir(&images).unwrap().count(),
        0,
        "{removed:?}"
    );
}
