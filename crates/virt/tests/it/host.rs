//! A scratch compute host for one test: its own state directory and QEMU driver, the guest
//! image, and a guard that kills every qemu process of the host and removes its files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ferro_virt::qemu::{AccelMode, QemuConfig, QemuDriver};
use ferro_virt::{Driver, ImageSource, InstanceSpec, Nic};

/// The marker line the guest image prints once its init runs.
pub const MARKER: &str = "FERROSTACK-GUEST-READY";

/// The guest image directory (vmlinuz, initrd.gz, root.raw), built once per run by
/// `scripts/build-guest-image` (cached under /var/tmp), or `FERRO_GUEST_IMAGE`.
pub fn guest_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Ok(p) = std::env::var("FERRO_GUEST_IMAGE") {
            return PathBuf::from(p);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-guest-image");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .expect("run scripts/build-guest-image");
        assert!(
            out.status.success(),
            "build-guest-image failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(stdout.lines().last().expect("the image path").trim())
    })
}

fn sha512_of(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).expect("read image");
    sha2::Sha512::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A local image source for `file` of the guest image directory (or any path).
pub fn source(id: &str, path: &Path, disk_format: &str) -> ImageSource {
    ImageSource {
        id: id.into(),
        url: format!("file://{}", path.display()),
        token: None,
        disk_format: disk_format.into(),
        os_hash_algo: Some("sha512".into()),
        os_hash_value: Some(sha512_of(path)),
    }
}

/// A guest of the test image: AMI root with the image's kernel and ramdisk, config drive
/// with `user_data`.
pub fn guest_spec(uuid: &str, user_data: &str) -> InstanceSpec {
    let img = guest_image();
    InstanceSpec {
        uuid: uuid.into(),
        name: format!("instance-{}", &uuid[..8]),
        display_name: format!("test-{}", &uuid[..8]),
        vcpus: 1,
        memory_mb: 128,
        root_gb: 1,
        image_ref: "guest-root".into(),
        user_data: Some(base64::engine::general_purpose::STANDARD.encode(user_data)),
        config_drive: true,
        image: Some(source("guest-root", &img.join("root.raw"), "ami")),
        kernel: Some(source("guest-kernel", &img.join("vmlinuz"), "aki")),
        ramdisk: Some(source("guest-ramdisk", &img.join("initrd.gz"), "ari")),
        os_command_line: Some("console=ttyS0 quiet".into()),
        ..InstanceSpec::default()
    }
}

/// One scratch host. Dropping it kills its guests and removes its directory.
pub struct TestHost {
    pub dir: tempfile::TempDir,
    pub driver: QemuDriver,
    config: QemuConfig,
}

impl TestHost {
    /// A host forced to TCG with short timeouts (the probe has its own test).
    pub async fn new() -> TestHost {
        Self::with(|_| {}).await
    }

    /// The same with `adjust` applied to its configuration (kept across restarts).
    pub async fn with(adjust: impl FnOnce(&mut QemuConfig)) -> TestHost {
        let dir = tempfile::Builder::new()
            .prefix("ferro-qemu-it-")
            .tempdir()
            .expect("tempdir");
        let mut config = Self::config(dir.path());
        adjust(&mut config);
        let driver = QemuDriver::new(config.clone())
            .await
            .expect("the qemu driver starts");
        TestHost {
            dir,
            driver,
            config,
        }
    }

    pub fn config(dir: &Path) -> QemuConfig {
        let mut c = QemuConfig::new(dir);
        c.accel = AccelMode::Tcg;
        c.shutdown_timeout = Duration::from_secs(20);
        c.soft_reboot_timeout = Duration::from_secs(20);
        c
    }

    /// A second driver on the same directory, as after an agent restart.
    pub async fn restart(&mut self) {
        self.driver = QemuDriver::new(self.config.clone())
            .await
            .expect("the qemu driver restarts");
    }

    /// Waits until the console of `uuid` holds `n` times `needle`.
    pub async fn wait_console(&self, uuid: &str, needle: &str, n: usize) -> String {
        let start = Instant::now();
        loop {
            let out = self.driver.console_output(uuid).await.unwrap_or_default();
            if out.matches(needle).count() >= n {
                return out;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{needle:?} did not appear {n} times on the console of {uuid}:\n{out}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The pids of qemu processes running for this host.
    pub fn qemu_pids(&self) -> Vec<i32> {
        qemu_pids_under(self.dir.path())
    }
}

/// Processes whose command line mentions `dir` (our guests: their pidfile lives there).
pub fn qemu_pids_under(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if zombie {
            continue;
        }
        if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let c = String::from_utf8_lossy(&c);
            if c.contains("qemu-system") && c.contains(&needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

impl Drop for TestHost {
    fn drop(&mut self) {
        for pid in self.qemu_pids() {
            // SAFETY: signalling a process we found running our own guest's command line.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A port of network `network_id` as the driver gets it.
pub fn nic(port_id: &str, network_id: &str, mac: &str) -> Nic {
    Nic {
        port_id: port_id.into(),
        network_id: network_id.into(),
        mac_address: mac.into(),
        ..Nic::default()
    }
}

/// The links of a test's device-name prefix (its bridges, taps and any device it made):
/// every one of them is removed when dropped, also after a failed assertion.
pub struct Links(pub &'static str);

impl Links {
    /// The names of the links that carry the prefix.
    pub fn list(&self) -> Vec<String> {
        Self::names(&["-o", "link", "show"])
            .into_iter()
            .filter(|n| n.starts_with(self.0))
            .collect()
    }

    /// The names of the links in bridge `bridge`.
    pub fn ports_of(bridge: &str) -> Vec<String> {
        Self::names(&["-o", "link", "show", "master", bridge])
    }

    /// The link names `ip args…` lists (a veth's without its `@peer`).
    fn names(args: &[&str]) -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// Runs `ip args…` (the test's own devices), which must succeed.
    pub fn ip(args: &[&str]) {
        let ok = std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("ip")
            .success();
        assert!(ok, "ip {args:?}");
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        for name in self.list() {
            let _ = std::process::Command::new("ip")
                .args(["link", "delete", &name])
                .status();
        }
    }
}
