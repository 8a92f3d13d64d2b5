//! The accelerator choice: KVM only when a guest really boots under it. On some hosts
//! `/dev/kvm` opens and creates VMs, yet a nested guest aborts on MSRs or spins forever
//! after the firmware, so the probe boots a Linux kernel (no root disk) with the very
//! machine and CPU arguments guests get, and takes KVM only if the kernel's own messages
//! reach the serial console before a timeout. Otherwise TCG.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The accelerator of a host's guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The `-machine` and `-cpu` arguments of a guest.
    pub fn machine_args(self) -> Vec<String> {
        match self {
            Accel::Kvm => vec![
                "-machine".into(),
                "pc,accel=kvm".into(),
                "-cpu".into(),
                "host".into(),
            ],
            Accel::Tcg => vec![
                "-machine".into(),
                "pc,accel=tcg".into(),
                "-cpu".into(),
                "qemu64".into(),
            ],
        }
    }
}

/// What the probe found, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub accel: Accel,
    pub reason: String,
}

/// The kernel to probe with: the configured one, else the newest `/boot/vmlinuz-*`.
pub fn probe_kernel(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return p.is_file().then(|| p.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Boots `kernel` under KVM for at most `timeout`: KVM if the kernel printed its panic
/// about the missing root (it got that far), else TCG with the reason.
pub async fn probe(
    qemu: &Path,
    kernel: Option<&Path>,
    scratch: &Path,
    timeout: Duration,
) -> ProbeResult {
    let tcg = |reason: String| ProbeResult {
        accel: Accel::Tcg,
        reason,
    };
    if !Path::new("/dev/kvm").exists() {
        return tcg("/dev/kvm does not exist".into());
    }
    let Some(kernel) = kernel else {
        return tcg("no kernel to probe KVM with (set the probe kernel)".into());
    };
    if let Err(e) = std::fs::create_dir_all(scratch) {
        return tcg(format!("probe directory {}: {e}", scratch.display()));
    }
    let log = scratch.join("kvm-probe.log");
    let _ = std::fs::remove_file(&log);
    let mut args = Accel::Kvm.machine_args();
    args.extend(
        [
            "-m",
            "128",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-kernel",
            &kernel.to_string_lossy(),
            "-append",
            "console=ttyS0 panic=-1 loglevel=4",
            "-chardev",
            &format!("file,id=probe,path={}", log.display()),
            "-serial",
            "chardev:probe",
        ]
        .map(str::to_string),
    );
    let child = tokio::process::Command::new(qemu)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return tcg(format!("cannot run {}: {e}", qemu.display())),
    };
    let start = Instant::now();
    let booted = |log: &Path| {
        std::fs::read(log)
            .map(|b| {
                let t = String::from_utf8_lossy(&b);
                t.contains("Kernel panic") || t.contains("VFS: Unable to mount root")
            })
            .unwrap_or(false)
    };
    let result = loop {
        if booted(&log) {
            break ProbeResult {
                accel: Accel::Kvm,
                reason: format!(
                    "a probe kernel booted under KVM in {} ms",
                    start.elapsed().as_millis()
                ),
            };
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                if booted(&log) {
                    continue;
                }
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut err).await;
                }
                break tcg(format!(
                    "qemu under KVM exited ({status}) before the kernel ran: {}",
                    err.trim()
                ));
            }
            Ok(None) => {}
            Err(e) => break tcg(format!("waiting for the KVM probe: {e}")),
        }
        if start.elapsed() > timeout {
            break tcg(format!(
                "a probe kernel printed nothing under KVM in {} s (nested guests hang here)",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&log);
    result
}
