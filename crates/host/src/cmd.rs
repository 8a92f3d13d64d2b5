//! Running host programs: the command line and its stderr end up in the error.

use tokio::process::Command;

/// A host command that failed, or could not start.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct HostError {
    pub what: String,
}

impl HostError {
    pub fn new(what: impl Into<String>) -> Self {
        HostError { what: what.into() }
    }
}

pub type Result<T> = std::result::Result<T, HostError>;

/// Runs `program args…` and returns its stdout; fails with the command and its stderr.
pub async fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| HostError::new(format!("{program}: {e}")))?;
    if !out.status.success() {
        return Err(HostError::new(format!(
            "{program} {}: {} ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip args…`.
pub async fn ip(args: &[&str]) -> Result<String> {
    run("ip", args).await
}

/// `ip args…` inside namespace `ns`.
pub async fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    let mut a = vec!["-n", ns];
    a.extend_from_slice(args);
    run("ip", &a).await
}

/// Whether the error says the thing did not exist (for idempotent deletes).
pub fn is_absent(e: &HostError) -> bool {
    let w = &e.what;
    w.contains("Cannot find device")
        || w.contains("does not exist")
        || w.contains("No such file")
        || w.contains("No such process")
}
