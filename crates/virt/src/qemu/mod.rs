//! The QEMU hypervisor driver: one `qemu-system-x86_64` process per guest, daemonized with
//! a pidfile and controlled over its QMP socket; disks as qcow2 overlays on a per-host image
//! cache; direct kernel boot for images with `kernel_id`/`ramdisk_id`; a `config-2` ISO
//! config drive; the serial console in a log file; KVM when a probe boot works, else TCG.
//!
//! Everything about a guest lives in `<state>/vms/<uuid>/` (spec, QEMU's arguments,
//! pidfile, QMP socket, console log, disks, suspend state), and every operation reads it
//! afresh: a restarted agent finds its running guests again with no bookkeeping of its
//! own. The driver never kills a process it cannot prove is the guest's (the pidfile's pid
//! must run with the guest's directory on its command line).

pub mod accel;
pub mod configdrive;
pub mod disk;
pub mod process;
pub mod qmp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use accel::{Accel, ProbeResult};
use async_trait::async_trait;
use qmp::{Qmp, QmpError};
use serde_json::Value;

use crate::{Driver, InstanceSpec, PowerState, VirtError};

/// How the accelerator is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelMode {
    /// Probe once per host (the result is kept in the state directory).
    Auto,
    /// Forced.
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "" => Ok(AccelMode::Auto),
            "kvm" => Ok(AccelMode::Kvm),
            "tcg" => Ok(AccelMode::Tcg),
            other => Err(format!("accelerator {other:?} is not auto, kvm or tcg")),
        }
    }
}

/// Settings of one host's QEMU driver.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// This host's directory (`<state dir>/qemu/<host>`): guests, image cache, probe result.
    pub state_dir: PathBuf,
    pub qemu_binary: PathBuf,
    pub accel: AccelMode,
    /// The kernel the KVM probe boots; default the newest `/boot/vmlinuz-*`.
    pub probe_kernel: Option<PathBuf>,
    pub probe_timeout: Duration,
    /// How long a clean shutdown (ACPI) may take before the process is stopped hard
    /// (Nova's `shutdown_timeout`, 60 s).
    pub shutdown_timeout: Duration,
    /// How long a soft reboot waits for the guest to shut down before it resets it
    /// (Nova's `wait_soft_reboot_seconds`, 120 s).
    pub soft_reboot_timeout: Duration,
    /// Every guest gets a config drive (Nova's `force_config_drive`).
    pub force_config_drive: bool,
    /// How long one QMP answer may take.
    pub qmp_timeout: Duration,
    /// The host's device names: each port is a tap in its network's bridge.
    pub names: ferro_host::Names,
}

impl QemuConfig {
    /// Defaults as Nova's, under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> QemuConfig {
        QemuConfig {
            state_dir: state_dir.into(),
            qemu_binary: PathBuf::from("qemu-system-x86_64"),
            accel: AccelMode::Auto,
            probe_kernel: None,
            probe_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(60),
            soft_reboot_timeout: Duration::from_secs(120),
            force_config_drive: false,
            qmp_timeout: Duration::from_secs(10),
            names: ferro_host::Names::new(DEFAULT_PREFIX).expect("a valid prefix"),
        }
    }
}

/// The device-name prefix of a host whose configuration names none.
pub const DEFAULT_PREFIX: &str = "fs";

/// Nova caps console output at 100 KiB (`MAX_CONSOLE_BYTES`).
const MAX_CONSOLE_BYTES: u64 = 100 * 1024;
/// `sun_path` holds 108 bytes with its NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The QEMU driver of one host.
pub struct QemuDriver {
    config: QemuConfig,
    probe: ProbeResult,
    version: i64,
    images: disk::ImageCache,
    /// One lock per guest: QEMU serves one QMP client at a time, and the steps of one
    /// operation must not interleave with another's.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A VM directory that is removed on drop unless kept: a failed spawn leaves nothing.
struct DirGuard {
    dir: PathBuf,
    keep: bool,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn io_err(what: &str, path: &Path) -> impl Fn(std::io::Error) -> VirtError {
    let msg = format!("{what} {}", path.display());
    move |e| VirtError::Failed(format!("{msg}: {e}"))
}

fn qmp_err(e: QmpError) -> VirtError {
    VirtError::Failed(e.to_string())
}

/// QEMU's run states in Nova's power states (libvirt's mapping of the same states).
fn power_state_of(status: &str) -> PowerState {
    match status {
        "running" | "debug" => PowerState::Running,
        "shutdown" => PowerState::Shutdown,
        "guest-panicked" | "internal-error" | "io-error" => PowerState::Crashed,
        "suspended" => PowerState::Suspended,
        _ => PowerState::Paused,
    }
}

impl QemuDriver {
    /// Starts the driver: checks QEMU is there, and chooses the accelerator (forced, or
    /// the host's earlier probe, or a new probe boot).
    pub async fn new(config: QemuConfig) -> Result<QemuDriver, VirtError> {
        let qemu = process::which(&config.qemu_binary.to_string_lossy()).ok_or_else(|| {
            VirtError::Failed(format!(
                "{} is not installed (Debian: qemu-system-x86)",
                config.qemu_binary.display()
            ))
        })?;
        let config = QemuConfig {
            qemu_binary: qemu,
            ..config
        };
        std::fs::create_dir_all(config.state_dir.join("vms"))
            .map_err(io_err("create", &config.state_dir))?;
        let version_text =
            process::run_tool(&config.qemu_binary.to_string_lossy(), &["--version"]).await?;
        let probe = match config.accel {
            AccelMode::Kvm => ProbeResult {
                accel: Accel::Kvm,
                reason: "forced by configuration".into(),
            },
            AccelMode::Tcg => ProbeResult {
                accel: Accel::Tcg,
                reason: "forced by configuration".into(),
            },
            AccelMode::Auto => {
                let saved = config.state_dir.join("accel.json");
                match std::fs::read(&saved)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<ProbeResult>(&b).ok())
                {
                    Some(p) => p,
                    None => {
                        let kernel = accel::probe_kernel(config.probe_kernel.as_deref());
                        let p = accel::probe(
                            &config.qemu_binary,
                            kernel.as_deref(),
                            &config.state_dir,
                            config.probe_timeout,
                        )
                        .await;
                        // Only an answer a probe boot gave is kept: a kernel configured
                        // later, or a /dev/kvm that appears, must get its probe.
                        if kernel.is_some() && Path::new("/dev/kvm").exists() {
                            let _ =
                                std::fs::write(&saved, serde_json::to_vec(&p).unwrap_or_default());
                        }
                        p
                    }
                }
            }
        };
        tracing::info!(accel = probe.accel.as_str(), reason = %probe.reason, "qemu accelerator");
        Ok(QemuDriver {
            images: disk::ImageCache::new(config.state_dir.join("images")),
            version: parse_version(&version_text),
            probe,
            config,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The accelerator in use and why.
    pub fn probe(&self) -> &ProbeResult {
        &self.probe
    }

    fn lock(&self, uuid: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(uuid.to_string())
            .or_default()
            .clone()
    }

    /// The guest's directory; the uuid becomes a path, so only uuid characters pass.
    fn dir_of(&self, uuid: &str) -> Result<PathBuf, VirtError> {
        if uuid.is_empty()
            || uuid.len() > 64
            || !uuid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(VirtError::NotFound(uuid.to_string()));
        }
        Ok(self.config.state_dir.join("vms").join(uuid))
    }

    /// The guest's directory if it exists.
    fn existing(&self, uuid: &str) -> Result<PathBuf, VirtError> {
        let d = self.dir_of(uuid)?;
        if d.join("launch.json").is_file() {
            Ok(d)
        } else {
            Err(VirtError::NotFound(uuid.to_string()))
        }
    }

    fn marker(dir: &Path) -> String {
        dir.to_string_lossy().into_owned()
    }

    fn pid(dir: &Path) -> Option<i32> {
        process::running_pid(&dir.join("qemu.pid"), &Self::marker(dir))
    }

    async fn qmp(&self, dir: &Path) -> Result<Qmp, VirtError> {
        Qmp::connect(&dir.join("qmp.sock"), self.config.qmp_timeout)
            .await
            .map_err(qmp_err)
    }

    async fn exec(&self, dir: &Path, cmd: &str, args: Option<Value>) -> Result<Value, VirtError> {
        self.qmp(dir)
            .await?
            .execute(cmd, args)
            .await
            .map_err(qmp_err)
    }

    /// The guest's power state: QEMU's run state while its process runs; without one,
    /// suspended if a saved state waits, else shut down.
    async fn state_of(&self, dir: &Path) -> Result<PowerState, VirtError> {
        if Self::pid(dir).is_some() {
            let status = self.qmp(dir).await?.status().await.map_err(qmp_err)?;
            return Ok(power_state_of(&status));
        }
        if dir.join("suspend.state").is_file() {
            Ok(PowerState::Suspended)
        } else {
            Ok(PowerState::Shutdown)
        }
    }

    /// Waits up to `timeout` for QEMU's run state to be one of `want`.
    async fn wait_status(
        &self,
        dir: &Path,
        want: &[&str],
        timeout: Duration,
    ) -> Result<bool, VirtError> {
        let start = Instant::now();
        loop {
            let mut q = self.qmp(dir).await?;
            let s = q.status().await.map_err(qmp_err)?;
            if want.contains(&s.as_str()) {
                return Ok(true);
            }
            if start.elapsed() > timeout {
                return Ok(false);
            }
            drop(q);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Moves a guest from `from` to `to` with the QMP `command` (`stop`, `cont`); a guest
    /// in `to` already is left alone.
    async fn switch(
        &self,
        uuid: &str,
        op: &'static str,
        from: PowerState,
        to: PowerState,
        command: &str,
    ) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        match self.state_of(&dir).await? {
            s if s == to => Ok(()),
            s if s == from => self.exec(&dir, command, None).await.map(|_| ()),
            state => Err(VirtError::InvalidState {
                uuid: uuid.into(),
                op,
                state,
            }),
        }
    }

    /// Waits for an incoming saved state to load, then runs the guest: QEMU keeps a guest
    /// that was stopped when saved (as suspend stops it) paused after loading.
    async fn wait_loaded(&self, dir: &Path) -> Result<(), VirtError> {
        let start = Instant::now();
        loop {
            let status = self.qmp(dir).await?.status().await.map_err(qmp_err)?;
            match status.as_str() {
                "running" => return Ok(()),
                "inmigrate" | "prelaunch" => {}
                "paused" | "postmigrate" => {
                    self.exec(dir, "cont", None).await?;
                    return Ok(());
                }
                other => return Err(VirtError::Failed(format!("QEMU is {other}"))),
            }
            if start.elapsed() > Duration::from_secs(120) {
                return Err(VirtError::Failed("timed out".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the guest's QEMU from its saved arguments (loading `incoming` state if given).
    async fn start(&self, dir: &Path, incoming: Option<&Path>) -> Result<(), VirtError> {
        let mut args = Self::read_launch(dir)?;
        self.plug(dir).await?;
        for stale in ["qemu.pid", "qmp.sock"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        if let Some(state) = incoming {
            let s = state.to_string_lossy();
            if s.contains('\'') {
                return Err(VirtError::Failed("the state path holds a quote".into()));
            }
            args.push("-incoming".into());
            args.push(format!("exec:cat '{s}'"));
        }
        process::launch(&self.config.qemu_binary, &args, Duration::from_secs(60)).await?;
        if Self::pid(dir).is_none() {
            return Err(VirtError::Failed(
                "qemu started but its pidfile names no running process".into(),
            ));
        }
        Ok(())
    }

    /// The ports the guest was spawned with (its saved spec).
    fn saved_nics(dir: &Path) -> Vec<ferro_api_types::compute::Nic> {
        std::fs::read(dir.join("spec.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<InstanceSpec>(&b).ok())
            .map(|s| s.nics)
            .unwrap_or_default()
    }

    /// Plugs each port as a tap in its network's bridge (os-vif's job for Nova's linux
    /// bridge VIFs): QEMU opens the taps by name. The network agent watches the taps.
    async fn plug(&self, dir: &Path) -> Result<(), VirtError> {
        let n = &self.config.names;
        for nic in Self::saved_nics(dir) {
            let (tap, bridge) = (n.tap(&nic.port_id), n.bridge(&nic.network_id));
            let plugged = async {
                ferro_host::link::ensure_bridge(&bridge, None).await?;
                ferro_host::link::ensure_tap_in(&tap, &bridge).await
            };
            plugged
                .await
                .map_err(|e| VirtError::Failed(format!("plug port {}: {e}", nic.port_id)))?;
        }
        Ok(())
    }

    /// Removes the guest's taps (its bridges are the network agent's).
    async fn unplug(&self, dir: &Path) -> Result<(), VirtError> {
        for nic in Self::saved_nics(dir) {
            ferro_host::link::delete(&self.config.names.tap(&nic.port_id))
                .await
                .map_err(|e| VirtError::Failed(format!("unplug port {}: {e}", nic.port_id)))?;
        }
        Ok(())
    }

    /// Ends the guest's QEMU: `quit` over QMP, then SIGKILL if it lingers.
    async fn stop_process(&self, dir: &Path) -> Result<(), VirtError> {
        let Some(pid) = Self::pid(dir) else {
            return Ok(());
        };
        let marker = Self::marker(dir);
        if self.exec(dir, "quit", None).await.is_ok()
            && process::wait_gone(pid, &marker, Duration::from_secs(5))
                .await
                .is_ok()
        {
            return Ok(());
        }
        process::kill(pid, &marker, Duration::from_secs(10)).await
    }

    /// Shuts the guest down cleanly (ACPI) within `timeout`, else stops it hard.
    async fn shutdown(&self, dir: &Path, timeout: Duration) -> Result<(), VirtError> {
        if Self::pid(dir).is_none() {
            return Ok(());
        }
        if !timeout.is_zero()
            && self.state_of(dir).await? == PowerState::Running
            && self.exec(dir, "system_powerdown", None).await.is_ok()
        {
            // With -no-shutdown QEMU stays, in state `shutdown`, once the guest is off.
            let _ = self.wait_status(dir, &["shutdown"], timeout).await;
        }
        self.stop_process(dir).await
    }

    fn read_launch(dir: &Path) -> Result<Vec<String>, VirtError> {
        let launch = dir.join("launch.json");
        serde_json::from_slice(&std::fs::read(&launch).map_err(io_err("read", &launch))?)
            .map_err(|e| VirtError::Failed(format!("{}: {e}", launch.display())))
    }

    fn write_launch(dir: &Path, args: &[String]) -> Result<(), VirtError> {
        let launch = dir.join("launch.json");
        let tmp = dir.join("launch.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(args).unwrap_or_default())
            .map_err(io_err("write", &tmp))?;
        std::fs::rename(&tmp, &launch).map_err(io_err("rename", &tmp))
    }

    /// QEMU's arguments for `spec` in `dir`.
    fn arguments(
        &self,
        spec: &InstanceSpec,
        dir: &Path,
        disks: &[PathBuf],
        kernel: Option<(&Path, Option<&Path>, String)>,
    ) -> Vec<String> {
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let mut a: Vec<String> = vec![
            "-name".into(),
            format!("guest={},debug-threads=on", spec.name.replace(',', ",,")),
            "-uuid".into(),
            spec.uuid.clone(),
        ];
        a.extend(self.probe.accel.machine_args());
        a.extend([
            "-smp".into(),
            spec.vcpus.max(1).to_string(),
            "-m".into(),
            spec.memory_mb.max(16).to_string(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-no-shutdown".into(),
            "-chardev".into(),
            format!("file,id=console,path={},append=on", d("console.log")),
            "-serial".into(),
            "chardev:console".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", d("qmp.sock")),
            "-pidfile".into(),
            d("qemu.pid"),
            "-daemonize".into(),
        ]);
        for (i, nic) in spec.nics.iter().enumerate() {
            a.push("-netdev".into());
            a.push(format!(
                "tap,id=net{i},ifname={},script=no,downscript=no",
                self.config.names.tap(&nic.port_id)
            ));
            a.push("-device".into());
            a.push(format!(
                "virtio-net-pci,netdev=net{i},mac={}",
                nic.mac_address
            ));
        }
        for (i, disk) in disks.iter().enumerate() {
            let config = disk.ends_with("disk.config");
            let format = if config { "raw" } else { "qcow2" };
            let ro = if config { ",readonly=on" } else { "" };
            a.push("-drive".into());
            a.push(format!(
                "file={},format={format},if=virtio,index={i}{ro}",
                disk.to_string_lossy().replace(',', ",,")
            ));
        }
        if let Some((k, r, cmdline)) = kernel {
            a.push("-kernel".into());
            a.push(k.to_string_lossy().into_owned());
            if let Some(r) = r {
                a.push("-initrd".into());
                a.push(r.to_string_lossy().into_owned());
            }
            a.push("-append".into());
            a.push(cmdline);
        }
        a
    }

    /// The spawn steps; on error the caller removes the directory (and any process).
    async fn build(&self, spec: &InstanceSpec, dir: &Path) -> Result<(), VirtError> {
        let src = spec.image.as_ref().ok_or_else(|| {
            VirtError::Failed(format!(
                "instance {}: no image source to build its disk from",
                spec.uuid
            ))
        })?;
        let base = self.images.get(src, true).await?;
        let mut disks = vec![dir.join("disk")];
        disk::create_overlay(&base, &disks[0], spec.root_gb).await?;
        if spec.ephemeral_gb > 0 {
            // TODO-compat: Nova formats ephemeral disks (ext4/vfat) and swap (mkswap).
            let p = dir.join("disk.eph0");
            disk::create_blank(&p, spec.ephemeral_gb * 1024).await?;
            disks.push(p);
        }
        if spec.swap_mb > 0 {
            let p = dir.join("disk.swap");
            disk::create_blank(&p, spec.swap_mb).await?;
            disks.push(p);
        }
        if spec.config_drive || self.config.force_config_drive {
            let p = dir.join("disk.config");
            let staging = dir.join("config-drive");
            let built = configdrive::build(spec, &staging, &p).await;
            let _ = std::fs::remove_dir_all(&staging);
            built?;
            disks.push(p);
        }
        let kernel = match &spec.kernel {
            Some(k) => Some(self.images.get(k, false).await?.path),
            None => None,
        };
        let ramdisk = match (&spec.kernel, &spec.ramdisk) {
            (Some(_), Some(r)) => Some(self.images.get(r, false).await?.path),
            _ => None,
        };
        // Nova's default kernel command line for AKI images: the root disk and the consoles.
        let cmdline = spec
            .os_command_line
            .clone()
            .unwrap_or_else(|| "root=/dev/vda console=tty0 console=ttyS0".into());
        let args = self.arguments(
            spec,
            dir,
            &disks,
            kernel.as_deref().map(|k| (k, ramdisk.as_deref(), cmdline)),
        );
        Self::write_launch(dir, &args)?;
        self.start(dir, None).await
    }
}

/// What a resize keeps aside for a revert: (file, its copy).
// TODO-correctness: a confirmed resize on the same host keeps the copies until the next
// resize or the guest's deletion.
const RESIZE_BACKUP: [(&str, &str); 2] = [
    ("disk", "disk.resize-orig"),
    ("launch.json", "launch.json.resize-orig"),
];

/// Sets the value after `flag` in QEMU's arguments.
fn set_arg(args: &mut [String], flag: &str, value: String) {
    if let Some(i) = args.iter().position(|a| a == flag)
        && let Some(v) = args.get_mut(i + 1)
    {
        *v = value;
    }
}

/// `QEMU emulator version 7.2.22 (...)` as Nova's integer form, 7002022.
fn parse_version(text: &str) -> i64 {
    let v = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or("");
    let mut parts = v.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    a * 1_000_000 + b * 1_000 + c
}

#[async_trait]
impl Driver for QemuDriver {
    fn hypervisor_type(&self) -> &'static str {
        "QEMU"
    }

    fn hypervisor_version(&self) -> i64 {
        self.version
    }

    fn accelerator(&self) -> Option<&'static str> {
        Some(self.probe.accel.as_str())
    }

    fn plugs_vifs(&self) -> bool {
        true
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), VirtError> {
        let dir = self.dir_of(&spec.uuid).map_err(|_| {
            VirtError::Failed(format!("{:?} is not a valid instance uuid", spec.uuid))
        })?;
        let lock = self.lock(&spec.uuid);
        let _g = lock.lock().await;
        if dir.join("launch.json").is_file() {
            return Ok(());
        }
        let socket = dir.join("qmp.sock");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(VirtError::Failed(format!(
                "the QMP socket path {} is longer than a unix socket allows: use a shorter state directory",
                socket.display()
            )));
        }
        // A directory without launch.json is a spawn that died halfway: start over.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let mut guard = DirGuard {
            dir: dir.clone(),
            keep: false,
        };
        std::fs::write(
            dir.join("spec.json"),
            serde_json::to_vec(&InstanceSpec {
                image: None,
                kernel: None,
                ramdisk: None,
                ..spec.clone()
            })
            .unwrap_or_default(),
        )
        .map_err(io_err("write", &dir))?;
        match self.build(spec, &dir).await {
            Ok(()) => {
                guard.keep = true;
                Ok(())
            }
            Err(e) => {
                if let Some(pid) = Self::pid(&dir) {
                    let _ = process::kill(pid, &Self::marker(&dir), Duration::from_secs(10)).await;
                }
                if let Err(u) = self.unplug(&dir).await {
                    tracing::warn!(uuid = %spec.uuid, error = %u, "a failed spawn left a tap");
                }
                Err(e)
            }
        }
    }

    async fn destroy(&self, uuid: &str) -> Result<(), VirtError> {
        let Ok(dir) = self.dir_of(uuid) else {
            return Ok(());
        };
        let lock = self.lock(uuid);
        {
            let _g = lock.lock().await;
            if dir.exists() {
                self.stop_process(&dir).await?;
                self.unplug(&dir).await?;
                std::fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
            }
        }
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        Ok(())
    }

    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        let state = self.state_of(&dir).await?;
        if Self::pid(&dir).is_none() {
            if !hard {
                return Err(VirtError::InvalidState {
                    uuid: uuid.into(),
                    op: "reboot",
                    state,
                });
            }
            // A hard reboot of a stopped guest boots it; a saved state is dropped.
            let _ = std::fs::remove_file(dir.join("suspend.state"));
            return self.start(&dir, None).await;
        }
        if !hard {
            if state != PowerState::Running {
                return Err(VirtError::InvalidState {
                    uuid: uuid.into(),
                    op: "reboot",
                    state,
                });
            }
            // Soft: ACPI power button, then a reset once the guest is off; a guest that
            // ignores ACPI is reset after the timeout, as Nova falls back to a hard reboot.
            self.exec(&dir, "system_powerdown", None).await?;
            let _ = self
                .wait_status(&dir, &["shutdown"], self.config.soft_reboot_timeout)
                .await?;
        }
        self.exec(&dir, "system_reset", None).await?;
        if self.state_of(&dir).await? != PowerState::Running {
            self.exec(&dir, "cont", None).await?;
        }
        Ok(())
    }

    async fn power_off(&self, uuid: &str) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        // Powering off a suspended guest discards its saved memory, as libvirt's
        // managed-save removal does.
        let _ = std::fs::remove_file(dir.join("suspend.state"));
        self.shutdown(&dir, self.config.shutdown_timeout).await
    }

    async fn power_on(&self, uuid: &str) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        match self.state_of(&dir).await? {
            PowerState::Running => Ok(()),
            PowerState::Shutdown | PowerState::Crashed => {
                self.stop_process(&dir).await?;
                self.start(&dir, None).await
            }
            state => Err(VirtError::InvalidState {
                uuid: uuid.into(),
                op: "power on",
                state,
            }),
        }
    }

    async fn pause(&self, uuid: &str) -> Result<(), VirtError> {
        self.switch(
            uuid,
            "pause",
            PowerState::Running,
            PowerState::Paused,
            "stop",
        )
        .await
    }

    async fn unpause(&self, uuid: &str) -> Result<(), VirtError> {
        self.switch(
            uuid,
            "unpause",
            PowerState::Paused,
            PowerState::Running,
            "cont",
        )
        .await
    }

    async fn suspend(&self, uuid: &str) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        let state = self.state_of(&dir).await?;
        match state {
            PowerState::Suspended => return Ok(()),
            PowerState::Running | PowerState::Paused => {}
            state => {
                return Err(VirtError::InvalidState {
                    uuid: uuid.into(),
                    op: "suspend",
                    state,
                });
            }
        }
        // Memory and device state go to a file by migration (QEMU 7.2 has no `file:`
        // URI, so through `cat`); the file is renamed into place only once complete.
        let part = dir.join("suspend.state.part");
        let target = format!("exec:cat > '{}'", part.to_string_lossy());
        self.exec(&dir, "stop", None).await?;
        let result = async {
            self.exec(&dir, "migrate", Some(serde_json::json!({"uri": target})))
                .await?;
            let start = Instant::now();
            loop {
                let m = self.exec(&dir, "query-migrate", None).await?;
                match m["status"].as_str().unwrap_or("") {
                    "completed" => return Ok(()),
                    "failed" | "cancelled" => {
                        return Err(VirtError::Failed(format!(
                            "saving the guest's state failed: {}",
                            m["error-desc"].as_str().unwrap_or("no reason given")
                        )));
                    }
                    _ => {}
                }
                if start.elapsed() > Duration::from_secs(300) {
                    return Err(VirtError::Failed(
                        "saving the guest's state timed out".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        .await;
        if let Err(e) = result {
            let _ = std::fs::remove_file(&part);
            if state == PowerState::Running {
                let _ = self.exec(&dir, "cont", None).await;
            }
            return Err(e);
        }
        std::fs::rename(&part, dir.join("suspend.state")).map_err(io_err("rename", &part))?;
        self.stop_process(&dir).await
    }

    async fn resume(&self, uuid: &str) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        let state = self.state_of(&dir).await?;
        if state == PowerState::Running {
            return Ok(());
        }
        let saved = dir.join("suspend.state");
        if state != PowerState::Suspended {
            return Err(VirtError::InvalidState {
                uuid: uuid.into(),
                op: "resume",
                state,
            });
        }
        self.start(&dir, Some(&saved)).await?;
        match self.wait_loaded(&dir).await {
            Ok(()) => {
                let _ = std::fs::remove_file(&saved);
                Ok(())
            }
            Err(e) => {
                let _ = self.stop_process(&dir).await;
                Err(VirtError::Failed(format!(
                    "the saved state did not load: {e}"
                )))
            }
        }
    }

    /// Resize, first half: a clean power-off, and the root disk and arguments kept aside
    /// so a revert finds the guest as it was (Nova keeps `<instance>_resize` the same way).
    async fn migrate_disk_and_power_off(&self, uuid: &str) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        let _ = std::fs::remove_file(dir.join("suspend.state"));
        self.shutdown(&dir, self.config.shutdown_timeout).await?;
        for (from, to) in RESIZE_BACKUP {
            let (from, to) = (dir.join(from), dir.join(to));
            std::fs::copy(&from, &to).map_err(io_err("copy", &from))?;
        }
        Ok(())
    }

    /// Resize, second half on this host: the root overlay grows to the new flavor's disk
    /// and the guest gets its vCPUs and memory. The guest's disk lives on this host only,
    /// so a resize to another host is refused rather than booting a blank disk.
    async fn finish_migration(&self, spec: &InstanceSpec, power_on: bool) -> Result<(), VirtError> {
        let dir = self.existing(&spec.uuid).map_err(|_| {
            VirtError::Failed(format!(
                "instance {}: the qemu driver cannot move a guest's disks between hosts yet",
                spec.uuid
            ))
        })?;
        let lock = self.lock(&spec.uuid);
        let _g = lock.lock().await;
        self.stop_process(&dir).await?;
        let disk = dir.join("disk");
        let info = disk::inspect(&disk).await?;
        let size = u64::try_from(spec.root_gb).unwrap_or(0) << 30;
        if size > info["virtual-size"].as_u64().unwrap_or(0) {
            let d = disk.to_string_lossy();
            process::run_tool("qemu-img", &["resize", "-q", &d, &size.to_string()]).await?;
        }
        // TODO-compat: a new flavor's ephemeral and swap sizes are not applied.
        let mut args = Self::read_launch(&dir)?;
        set_arg(&mut args, "-smp", spec.vcpus.max(1).to_string());
        set_arg(&mut args, "-m", spec.memory_mb.max(16).to_string());
        Self::write_launch(&dir, &args)?;
        if power_on {
            self.start(&dir, None).await?;
        }
        Ok(())
    }

    /// A reverted resize: the disk and arguments kept aside come back.
    async fn finish_revert_migration(
        &self,
        spec: &InstanceSpec,
        power_on: bool,
    ) -> Result<(), VirtError> {
        let dir = self.existing(&spec.uuid)?;
        let lock = self.lock(&spec.uuid);
        let _g = lock.lock().await;
        self.stop_process(&dir).await?;
        for (kept, back) in RESIZE_BACKUP {
            let (kept, back) = (dir.join(back), dir.join(kept));
            if kept.is_file() {
                std::fs::rename(&kept, &back).map_err(io_err("rename", &kept))?;
            }
        }
        if power_on {
            self.start(&dir, None).await?;
        }
        Ok(())
    }

    /// Pauses a running guest (QMP `stop` drains its I/O), copies its root disk with its
    /// backing chain flattened, and lets it run again, as Nova's cold snapshot does
    /// without the shutdown.
    async fn snapshot(&self, uuid: &str, dest: &Path) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        let was_running = self.state_of(&dir).await? == PowerState::Running;
        if was_running {
            self.exec(&dir, "stop", None).await?;
        }
        let part = dest.with_extension("part");
        let (src, out) = (dir.join("disk"), part.to_string_lossy().into_owned());
        let copied = process::run_tool(
            "qemu-img",
            &[
                "convert",
                "-U",
                "-f",
                "qcow2",
                "-O",
                "qcow2",
                &src.to_string_lossy(),
                &out,
            ],
        )
        .await;
        let resumed = if was_running {
            self.exec(&dir, "cont", None).await.map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = copied.and(resumed) {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        std::fs::rename(&part, dest).map_err(io_err("rename", &part))
    }

    async fn power_state(&self, uuid: &str) -> Result<PowerState, VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        self.state_of(&dir).await
    }

    async fn console_output(&self, uuid: &str) -> Result<String, VirtError> {
        use std::io::{Read, Seek, SeekFrom};
        let dir = self.existing(uuid)?;
        let path = dir.join("console.log");
        let Ok(mut f) = std::fs::File::open(&path) else {
            return Ok(String::new());
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        f.seek(SeekFrom::Start(len.saturating_sub(MAX_CONSOLE_BYTES)))
            .map_err(io_err("read", &path))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(io_err("read", &path))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    async fn list_instances(&self) -> Result<Vec<String>, VirtError> {
        let dir = self.config.state_dir.join("vms");
        let mut out: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io_err("read", &dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("launch.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_states_read_as_nova_does() {
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright"),
            7_002_022
        );
        assert_eq!(power_state_of("running"), PowerState::Running);
        assert_eq!(power_state_of("paused"), PowerState::Paused);
        assert_eq!(power_state_of("shutdown"), PowerState::Shutdown);
        assert_eq!(power_state_of("guest-panicked"), PowerState::Crashed);
        assert_eq!("tcg".parse::<AccelMode>(), Ok(AccelMode::Tcg));
        assert!("xen".parse::<AccelMode>().is_err());
    }
}
