//! The qemu-system process of one VM: launched daemonized with a pidfile, found again from
//! that pidfile (checked against `/proc/<pid>/cmdline` so a recycled pid is never taken for
//! ours), and stopped with a signal when QMP cannot do it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::VirtError;

/// The pid in `pidfile` if that process is alive (not a zombie) and its command line
/// mentions `marker` (the VM's directory).
pub fn running_pid(pidfile: &Path, marker: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    alive(pid, marker).then_some(pid)
}

fn alive(pid: i32, marker: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    if state == "Z" || state == "X" {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(marker))
        .unwrap_or(false)
}

/// Sends SIGKILL to `pid` (if it is still ours) and waits up to `wait` for it to go.
pub async fn kill(pid: i32, marker: &str, wait: Duration) -> Result<(), VirtError> {
    if !alive(pid, marker) {
        return Ok(());
    }
    // SAFETY: kill(2) with a pid we just checked is our qemu; no memory is shared.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(VirtError::Failed(format!("kill qemu {pid}: {e}")));
        }
    }
    wait_gone(pid, marker, wait).await
}

/// Waits up to `wait` for `pid` to exit.
pub async fn wait_gone(pid: i32, marker: &str, wait: Duration) -> Result<(), VirtError> {
    let start = Instant::now();
    while alive(pid, marker) {
        if start.elapsed() > wait {
            return Err(VirtError::Failed(format!(
                "qemu {pid} still runs {} s after it was told to stop",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs `binary args` (which daemonizes itself with `-daemonize`) and waits for the parent
/// to exit: QEMU's parent exits once the VM is set up, so a failure to start — a bad disk,
/// a missing kernel — comes back here with QEMU's stderr.
pub async fn launch(binary: &Path, args: &[String], timeout: Duration) -> Result<(), VirtError> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| {
            VirtError::Failed(format!(
                "{} did not finish starting in {} s",
                binary.display(),
                timeout.as_secs()
            ))
        })?
        .map_err(|e| VirtError::Failed(format!("cannot run {}: {e}", binary.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(VirtError::Failed(format!(
            "{} failed to start ({}): {}",
            binary.display(),
            out.status,
            stderr.trim()
        )));
    }
    Ok(())
}

/// Runs a helper (`qemu-img`, `genisoimage`) to completion; its stdout, or an error with
/// its stderr.
pub async fn run_tool(binary: &str, args: &[&str]) -> Result<String, VirtError> {
    let out = tokio::process::Command::new(binary)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| VirtError::Failed(format!("cannot run {binary}: {e}")))?;
    if !out.status.success() {
        return Err(VirtError::Failed(format!(
            "{binary} {} failed ({}): {}",
            args.first().unwrap_or(&""),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Finds `name` on PATH (or takes it as a path when it has a slash).
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pidfile_names_a_live_process_only_if_it_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        assert_eq!(running_pid(&pidfile, "x"), None);
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id().unwrap() as i32;
        std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
        // Until the child has exec'd, its command line is still this test's.
        for _ in 0..200 {
            if running_pid(&pidfile, "sleep").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(running_pid(&pidfile, "sleep"), Some(pid));
        // A recycled pid running something else is not ours.
        assert_eq!(running_pid(&pidfile, "qemu-system"), None);
        kill(pid, "sleep", Duration::from_secs(5)).await.ok();
        child.wait().await.unwrap();
        assert_eq!(running_pid(&pidfile, "sleep"), None);
    }

    #[tokio::test]
    async fn a_failing_launch_reports_stderr() {
        let e = launch(
            Path::new("sh"),
            &["-c".into(), "echo boom >&2; exit 3".into()],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        let e = launch(Path::new("/nonexistent/qemu"), &[], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot run"), "{e}");
    }
}
