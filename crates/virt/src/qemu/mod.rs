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

use crate::{Driver, InstanceSpec, Nic, PowerState, VirtError};

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
    /// How long an interface detach waits for the guest to release the NIC (Nova's
    /// `device_detach_timeout`, 20 s).
    pub detach_timeout: Duration,
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
            detach_timeout: Duration::from_secs(20),
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

    /// The guest's spec as spawned, with the ports attached since.
    fn read_spec(dir: &Path) -> Result<InstanceSpec, VirtError> {
        let path = dir.join("spec.json");
        serde_json::from_slice(&std::fs::read(&path).map_err(io_err("read", &path))?)
            .map_err(|e| VirtError::Failed(format!("{}: {e}", path.display())))
    }

    /// The ports the guest has (its saved spec).
    fn saved_nics(dir: &Path) -> Vec<Nic> {
        Self::read_spec(dir).map(|s| s.nics).unwrap_or_default()
    }

    /// Plugs each port as a tap in its network's bridge (os-vif's job for Nova's linux
    /// bridge VIFs): QEMU opens the taps by name. The network agent watches the taps.
    async fn plug(&self, dir: &Path) -> Result<(), VirtError> {
        for nic in Self::saved_nics(dir) {
            self.plug_nic(&nic).await?;
        }
        Ok(())
    }

    async fn plug_nic(&self, nic: &Nic) -> Result<(), VirtError> {
        let n = &self.config.names;
        let (tap, bridge) = (n.tap(&nic.port_id), n.bridge(&nic.network_id));
        let plugged = async {
            ferro_host::link::ensure_bridge(&bridge, None).await?;
            ferro_host::link::ensure_tap_in(&tap, &bridge).await
        };
        plugged
            .await
            .map_err(|e| VirtError::Failed(format!("plug port {}: {e}", nic.port_id)))
    }

    /// Removes the guest's taps (its bridges are the network agent's): every one of them,
    /// also after one fails; the first failure is the answer.
    async fn unplug(&self, dir: &Path) -> Result<(), VirtError> {
        let mut first = None;
        for nic in Self::saved_nics(dir) {
            if let Err(e) = self.unplug_nic(&nic.port_id).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Removes the port's tap. A device of the tap's name that is no tap is not one the
    /// driver made (making the tap fails on it), and stays.
    async fn unplug_nic(&self, port_id: &str) -> Result<(), VirtError> {
        ferro_host::link::delete_tap(&self.config.names.tap(port_id))
            .await
            .map_err(|e| VirtError::Failed(format!("unplug port {port_id}: {e}")))
    }

    /// QEMU's arguments of one NIC: a tap netdev and a virtio-net device, both with ids
    /// derived from the port so a detach finds them; a hot-plugged NIC keeps its PCI slot
    /// on the command line, so a restart (or a resume from saved state) lays the guest's
    /// devices out as they were.
    fn nic_args(&self, nic: &Nic, slot: Option<u8>) -> [String; 4] {
        let (netdev, device) = nic_ids(&nic.port_id);
        let addr = slot
            .map(|s| format!(",bus=pci.0,addr={s:#x}"))
            .unwrap_or_default();
        [
            "-netdev".into(),
            format!(
                "tap,id={netdev},ifname={},script=no,downscript=no",
                self.config.names.tap(&nic.port_id)
            ),
            "-device".into(),
            format!(
                "virtio-net-pci,netdev={netdev},id={device},mac={}{addr}",
                nic.mac_address
            ),
        ]
    }

    /// The PCI slots of bus 0 the running guest uses.
    async fn live_slots(&self, dir: &Path) -> Result<Vec<u8>, VirtError> {
        let buses = self.exec(dir, "query-pci", None).await?;
        Ok(buses
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["bus"] == 0)
            .flat_map(|b| b["devices"].as_array().cloned().unwrap_or_default())
            .filter_map(|d| d["slot"].as_u64().and_then(|s| u8::try_from(s).ok()))
            .collect())
    }

    /// Hot-plugs `nic` (its tap exists) into the running guest at `slot`; nothing stays
    /// behind in QEMU when it fails.
    async fn hot_add(&self, dir: &Path, nic: &Nic, slot: u8) -> Result<(), VirtError> {
        let (netdev, device) = nic_ids(&nic.port_id);
        let mut q = self.qmp(dir).await?;
        q.execute(
            "netdev_add",
            Some(serde_json::json!({"type": "tap", "id": netdev,
                "ifname": self.config.names.tap(&nic.port_id),
                "script": "no", "downscript": "no"})),
        )
        .await
        .map_err(qmp_err)?;
        let added = q
            .execute(
                "device_add",
                Some(serde_json::json!({"driver": "virtio-net-pci", "id": device,
                    "netdev": netdev, "mac": nic.mac_address, "bus": "pci.0",
                    "addr": format!("{slot:#x}")})),
            )
            .await;
        if let Err(e) = added {
            let _ = q
                .execute("netdev_del", Some(serde_json::json!({"id": netdev})))
                .await;
            return Err(qmp_err(e));
        }
        Ok(())
    }

    /// Unplugs port `port_id`'s NIC from the running guest: `device_del`, then the
    /// guest's release (`DEVICE_DELETED`) within the detach timeout, then its netdev. A
    /// guest that keeps the device fails the detach, as libvirt's `DeviceDetachFailed`.
    async fn hot_remove(&self, dir: &Path, port_id: &str) -> Result<(), VirtError> {
        let (netdev, device) = nic_ids(port_id);
        let mut q = self.qmp(dir).await?;
        let gone = |e: &QmpError| {
            matches!(e, QmpError::Command { class, desc, .. }
                if class == "DeviceNotFound" || desc.contains("not found"))
        };
        match q
            .execute("device_del", Some(serde_json::json!({"id": device})))
            .await
        {
            Ok(_) => {
                let timeout = self.config.detach_timeout;
                q.wait_event(
                    "DEVICE_DELETED",
                    |d| d["device"] == device.as_str(),
                    timeout,
                )
                .await
                .map_err(|e| match e {
                    QmpError::Timeout(_) => VirtError::Failed(format!(
                        "the guest did not release the NIC of port {port_id} within {} s",
                        timeout.as_secs()
                    )),
                    e => qmp_err(e),
                })?;
            }
            Err(e) if gone(&e) => {}
            Err(e) => return Err(qmp_err(e)),
        }
        match q
            .execute("netdev_del", Some(serde_json::json!({"id": netdev})))
            .await
        {
            Err(e) if !gone(&e) => Err(qmp_err(e)),
            _ => Ok(()),
        }
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
        write_json(dir, "launch.json", &args)
    }

    /// Saves the spec without the image sources (their tokens are short-lived).
    fn write_spec(dir: &Path, spec: &InstanceSpec) -> Result<(), VirtError> {
        let saved = InstanceSpec {
            image: None,
            kernel: None,
            ramdisk: None,
            ..spec.clone()
        };
        write_json(dir, "spec.json", &saved)
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
        for nic in &spec.nics {
            a.extend(self.nic_args(nic, None));
        }
        a.extend(drive_args(disks));
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
        disks.extend(self.scratch_disks(spec, dir).await?);
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

impl QemuDriver {
    /// The flavor's ephemeral (vdb) and swap (vdc, or vdb without an ephemeral) disks of
    /// `spec` in `dir`, each a qcow2 overlay on its formatted base in the image cache, made
    /// where missing; their paths in the order the guest gets them.
    async fn scratch_disks(
        &self,
        spec: &InstanceSpec,
        dir: &Path,
    ) -> Result<Vec<PathBuf>, VirtError> {
        let mut out = Vec::new();
        for (kind, file) in scratch_of(spec) {
            let p = dir.join(file);
            if !p.is_file() {
                let base = self.images.scratch(kind).await?;
                disk::create_overlay(&base, &p, 0).await?;
            }
            out.push(p);
        }
        Ok(out)
    }
}

impl QemuDriver {
    /// The cache files some guest of this host uses: its disks' backing files (also the
    /// copies a resize keeps) and the kernel and ramdisk its arguments name. A guest whose
    /// disks cannot be read fails the pass rather than lose its base.
    async fn cache_in_use(&self) -> Result<std::collections::HashSet<PathBuf>, VirtError> {
        let cache = self.images.dir();
        let mut used = std::collections::HashSet::new();
        let vms = self.config.state_dir.join("vms");
        for guest in std::fs::read_dir(&vms).map_err(io_err("read", &vms))? {
            let dir = guest.map_err(io_err("read", &vms))?.path();
            for file in ["launch.json", "launch.json.resize-orig"] {
                let args: Vec<String> = std::fs::read(dir.join(file))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                used.extend(
                    args.iter()
                        .map(PathBuf::from)
                        .filter(|p| p.starts_with(cache)),
                );
            }
            for file in ["disk", "disk.eph0", "disk.swap", "disk.resize-orig"] {
                let disk = dir.join(file);
                if !disk.is_file() {
                    continue;
                }
                let d = disk.to_string_lossy();
                let out = process::run_tool(
                    "qemu-img",
                    &["info", "-U", "--backing-chain", "--output=json", &d],
                )
                .await?;
                let chain: Value = serde_json::from_str(&out)
                    .map_err(|e| VirtError::Failed(format!("qemu-img info {d}: {e}")))?;
                used.extend(
                    chain
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i["full-backing-filename"].as_str())
                        .map(PathBuf::from),
                );
            }
        }
        Ok(used)
    }
}

/// The scratch disks a flavor gives a guest, with their file names (Nova's `disk.eph0` for
/// the ephemeral disk, `disk.swap`).
fn scratch_of(spec: &InstanceSpec) -> Vec<(disk::Scratch, &'static str)> {
    let mut out = Vec::new();
    if spec.ephemeral_gb > 0 {
        out.push((
            disk::Scratch::Ephemeral {
                gb: spec.ephemeral_gb,
            },
            "disk.eph0",
        ));
    }
    if spec.swap_mb > 0 {
        out.push((disk::Scratch::Swap { mb: spec.swap_mb }, "disk.swap"));
    }
    out
}

/// What a resize keeps aside for a revert: (file, its copy).
// TODO-correctness: a confirmed resize on the same host keeps the copies until the next
// resize or the guest's deletion.
const RESIZE_BACKUP: [(&str, &str); 3] = [
    ("disk", "disk.resize-orig"),
    ("launch.json", "launch.json.resize-orig"),
    ("spec.json", "spec.json.resize-orig"),
];

/// Grows qcow2 disk `path` (when it exists) to `gb` GiB; a disk as large already stays.
async fn grow(path: &Path, gb: i64) -> Result<(), VirtError> {
    if !path.is_file() {
        return Ok(());
    }
    let size = u64::try_from(gb).unwrap_or(0) << 30;
    let info = disk::inspect(path).await?;
    if size > info["virtual-size"].as_u64().unwrap_or(0) {
        let d = path.to_string_lossy();
        process::run_tool("qemu-img", &["resize", "-q", &d, &size.to_string()]).await?;
    }
    Ok(())
}

/// QEMU's arguments without every `flag` and its value.
fn without_flag(args: Vec<String>, flag: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == flag {
            it.next();
        } else {
            out.push(a);
        }
    }
    out
}

/// Writes `name` in `dir` whole or not at all (a temporary file renamed into place).
fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> Result<(), VirtError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let bytes = serde_json::to_vec(value)
        .map_err(|e| VirtError::Failed(format!("{}: {e}", path.display())))?;
    std::fs::write(&tmp, bytes).map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))
}

/// QEMU's ids of port `port_id`'s NIC, (netdev, device); QEMU ids start with a letter.
fn nic_ids(port_id: &str) -> (String, String) {
    (format!("hostnet-{port_id}"), format!("net-{port_id}"))
}

/// The PCI slots of bus 0 hot-plugged NICs take, above those the command line's devices
/// get (slot 2 on, in order); ACPI hot-plug of an i440fx machine reaches slots up to 31.
const HOT_SLOTS: std::ops::RangeInclusive<u8> = 0x10..=0x1f;

/// The slots the command line gives explicitly (`addr=0x10`).
fn slots_in(args: &[String]) -> Vec<u8> {
    args.iter()
        .flat_map(|a| a.split(','))
        .filter_map(|o| o.strip_prefix("addr=0x"))
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect()
}

/// Where NIC `nic` is on the command line: the indexes of its `-netdev` and `-device`
/// flags (found by its MAC, so NICs spawned by any earlier version are found too).
fn nic_position(args: &[String], nic: &Nic) -> Option<(usize, usize)> {
    let mac = format!("mac={}", nic.mac_address);
    let device = (1..args.len()).find(|&i| {
        args[i - 1] == "-device"
            && args[i].starts_with("virtio-net-pci,")
            && args[i].split(',').any(|o| o == mac)
    })?;
    let netdev = args[device]
        .split(',')
        .find_map(|o| o.strip_prefix("netdev="))?;
    let id = format!("id={netdev}");
    let net = (1..args.len())
        .find(|&i| args[i - 1] == "-netdev" && args[i].split(',').any(|o| o == id))?;
    Some((net - 1, device - 1))
}

/// A MAC address as Neutron gives them (six hex pairs): it becomes part of QEMU's options.
fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// QEMU's `-drive` arguments of `disks`, vda first; the config drive is read-only raw.
fn drive_args(disks: &[PathBuf]) -> Vec<String> {
    let mut a = Vec::new();
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
    a
}

/// Sets the value after `flag` in QEMU's arguments.
fn set_arg(args: &mut [String], flag: &str, value: String) {
    if let Some(i) = args.iter().position(|a| a == flag)
        && let Some(v) = args.get_mut(i + 1)
    {
        *v = value;
    }
}

/// The host CPU's vendor as libvirt names it (`Intel`, `AMD`), from /proc/cpuinfo.
fn host_cpu_vendor() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let id = info
        .lines()
        .find_map(|l| l.strip_prefix("vendor_id"))
        .and_then(|r| r.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("");
    match id {
        "GenuineIntel" => "Intel".into(),
        "AuthenticAMD" => "AMD".into(),
        other => other.into(),
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

    /// As libvirt's (`arch`, `model`, `vendor`, `topology`, `features`) with the
    /// accelerator guests run with (and why) added: upstream has no field of its own for it.
    fn cpu_info(&self) -> Value {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (model, vendor) = match self.probe.accel {
            Accel::Kvm => ("host", host_cpu_vendor()),
            Accel::Tcg => ("qemu64", "QEMU".to_string()),
        };
        serde_json::json!({
            "arch": std::env::consts::ARCH,
            "model": model,
            "vendor": vendor,
            "topology": {"cells": 1, "sockets": 1, "cores": cores, "threads": 1},
            "features": [],
            "accelerator": self.probe.accel.as_str(),
            "accelerator_reason": self.probe.reason,
        })
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
        Self::write_spec(&dir, spec)?;
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
        let mut saved = Self::read_spec(&dir)?;
        if spec.ephemeral_gb < saved.ephemeral_gb {
            // Nova's libvirt driver refuses the same (ResizeError): the file system on
            // the ephemeral disk cannot shrink.
            return Err(VirtError::Failed(format!(
                "Unable to resize disk down: instance {}'s ephemeral disk is {} GB, the new \
                 flavor's {} GB",
                spec.uuid, saved.ephemeral_gb, spec.ephemeral_gb
            )));
        }
        self.stop_process(&dir).await?;
        grow(&dir.join("disk"), spec.root_gb).await?;
        // The ephemeral disk grows (its file system does not, as with Nova); swap holds
        // nothing that lasts, so a new size gets a new disk.
        grow(&dir.join("disk.eph0"), spec.ephemeral_gb).await?;
        if spec.swap_mb != saved.swap_mb {
            let swap = dir.join("disk.swap");
            let _ = std::fs::remove_file(&swap);
        }
        let mut disks = vec![dir.join("disk")];
        disks.extend(self.scratch_disks(spec, &dir).await?);
        if dir.join("disk.config").is_file() {
            disks.push(dir.join("disk.config"));
        }
        let mut args = without_flag(Self::read_launch(&dir)?, "-drive");
        args.extend(drive_args(&disks));
        set_arg(&mut args, "-smp", spec.vcpus.max(1).to_string());
        set_arg(&mut args, "-m", spec.memory_mb.max(16).to_string());
        (saved.vcpus, saved.memory_mb, saved.root_gb) = (spec.vcpus, spec.memory_mb, spec.root_gb);
        (saved.ephemeral_gb, saved.swap_mb) = (spec.ephemeral_gb, spec.swap_mb);
        saved.flavor_name = spec.flavor_name.clone();
        Self::write_spec(&dir, &saved)?;
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

    /// `os-interface` attach: the port's tap in its bridge, then, while QEMU runs the
    /// guest, `netdev_add` + `device_add` at a free hot-plug slot; the NIC is saved in the
    /// guest's spec and arguments either way, so every later start has it. A failed step
    /// takes back the ones before it.
    async fn attach_interface(&self, uuid: &str, nic: &Nic) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        let mut spec = Self::read_spec(&dir)?;
        if spec.nics.iter().any(|n| n.port_id == nic.port_id) {
            return Ok(());
        }
        if !valid_mac(&nic.mac_address) {
            return Err(VirtError::Failed(format!(
                "port {}: {:?} is not a MAC address",
                nic.port_id, nic.mac_address
            )));
        }
        let state = self.state_of(&dir).await?;
        if state == PowerState::Suspended {
            // The saved state's devices must match the arguments it is loaded with.
            return Err(VirtError::InvalidState {
                uuid: uuid.into(),
                op: "attach an interface",
                state,
            });
        }
        let live = Self::pid(&dir).is_some() && state != PowerState::Shutdown;
        let old_args = Self::read_launch(&dir)?;
        let mut used = slots_in(&old_args);
        if live {
            used.extend(self.live_slots(&dir).await?);
        }
        let slot = HOT_SLOTS
            .clone()
            .find(|s| !used.contains(s))
            .ok_or_else(|| {
                VirtError::Failed(format!(
                    "instance {uuid} has no free PCI slot for another NIC"
                ))
            })?;
        self.plug_nic(nic).await?;
        if live && let Err(e) = self.hot_add(&dir, nic, slot).await {
            let _ = self.unplug_nic(&nic.port_id).await;
            return Err(e);
        }
        // The spec first: a NIC in the arguments must have its tap plugged at start.
        let old_spec = spec.clone();
        spec.nics.push(nic.clone());
        let mut args = old_args.clone();
        args.extend(self.nic_args(nic, Some(slot)));
        let saved = Self::write_spec(&dir, &spec).and_then(|()| Self::write_launch(&dir, &args));
        if let Err(e) = saved {
            if live {
                let _ = self.hot_remove(&dir, &nic.port_id).await;
            }
            let _ = Self::write_spec(&dir, &old_spec);
            let _ = self.unplug_nic(&nic.port_id).await;
            return Err(e);
        }
        Ok(())
    }

    /// `os-interface` detach: while QEMU runs the guest, the NIC is unplugged (the guest
    /// must release it); then it leaves the guest's arguments and spec and its tap goes.
    async fn detach_interface(&self, uuid: &str, port_id: &str) -> Result<(), VirtError> {
        let dir = self.existing(uuid)?;
        let lock = self.lock(uuid);
        let _g = lock.lock().await;
        let mut spec = Self::read_spec(&dir)?;
        let Some(at) = spec.nics.iter().position(|n| n.port_id == port_id) else {
            return Ok(());
        };
        let state = self.state_of(&dir).await?;
        if state == PowerState::Suspended {
            return Err(VirtError::InvalidState {
                uuid: uuid.into(),
                op: "detach an interface",
                state,
            });
        }
        let mut args = Self::read_launch(&dir)?;
        let position = nic_position(&args, &spec.nics[at]);
        if Self::pid(&dir).is_some() && state != PowerState::Shutdown {
            let named = position.is_some_and(|(_, d)| {
                args[d + 1]
                    .split(',')
                    .any(|o| o == format!("id={}", nic_ids(port_id).1))
            });
            if !named {
                return Err(VirtError::Failed(format!(
                    "the NIC of port {port_id} was started without a device id; stop the \
                     server to detach it"
                )));
            }
            self.hot_remove(&dir, port_id).await?;
        }
        // The arguments first: a tap left plugged for a NIC no longer started is harmless.
        if let Some((net, dev)) = position {
            for i in [net.max(dev), net.min(dev)] {
                args.drain(i..i + 2);
            }
        }
        Self::write_launch(&dir, &args)?;
        spec.nics.remove(at);
        Self::write_spec(&dir, &spec)?;
        self.unplug_nic(port_id).await
    }

    /// Removes the cache files (images, kernels, ramdisks, ephemeral and swap bases) no
    /// guest's disk chain or arguments name, once unused for longer than `max_age`.
    async fn manage_image_cache(&self, max_age: Duration) -> Result<Vec<String>, VirtError> {
        let in_use = self.cache_in_use().await?;
        let removed = self.images.evict_unused(&in_use, max_age).await;
        if !removed.is_empty() {
            tracing::info!(?removed, "image cache: removed unused base files");
        }
        Ok(removed)
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

    #[test]
    fn nics_are_found_on_the_command_line_by_mac_and_removed_whole() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let nic = |port: &str, mac: &str| Nic {
            port_id: port.into(),
            mac_address: mac.into(),
            ..Nic::default()
        };
        // An older guest's NIC (ids net0) and a hot-plugged one with its slot.
        let args = v(&[
            "-m",
            "128",
            "-netdev",
            "tap,id=net0,ifname=fst1,script=no,downscript=no",
            "-device",
            "virtio-net-pci,netdev=net0,mac=fa:16:3e:00:00:01",
            "-drive",
            "file=/d/disk,format=qcow2,if=virtio,index=0",
            "-netdev",
            "tap,id=hostnet-p2,ifname=fst2,script=no,downscript=no",
            "-device",
            "virtio-net-pci,netdev=hostnet-p2,id=net-p2,mac=fa:16:3e:00:00:02,bus=pci.0,addr=0x10",
        ]);
        assert_eq!(
            nic_position(&args, &nic("p1", "fa:16:3e:00:00:01")),
            Some((2, 4))
        );
        assert_eq!(
            nic_position(&args, &nic("p2", "fa:16:3e:00:00:02")),
            Some((8, 10))
        );
        assert_eq!(nic_position(&args, &nic("p3", "fa:16:3e:00:00:03")), None);
        assert_eq!(slots_in(&args), vec![0x10]);
        assert_eq!(
            without_flag(args, "-drive").len(),
            10,
            "only the drive and its value go"
        );
        assert!(valid_mac("fa:16:3e:0A:00:01"));
        assert!(!valid_mac("fa:16:3e:00:00:01,id=x") && !valid_mac("fa:16:3e:00:00"));
        assert_eq!(
            nic_ids("p2"),
            ("hostnet-p2".to_string(), "net-p2".to_string())
        );
    }
}
