//! Network namespaces: made, listed, deleted; sockets bound inside one.

use crate::cmd::{HostError, Result, ip, ip_in, is_absent};

/// Namespace `name`, with its loopback up; kept if it exists.
pub async fn ensure(name: &str) -> Result<()> {
    match ip(&["netns", "add", name]).await {
        Err(e) if !e.what.contains("File exists") => return Err(e),
        _ => {}
    }
    ip_in(name, &["link", "set", "lo", "up"]).await.map(|_| ())
}

/// Every namespace whose name starts with `prefix`.
pub async fn list(prefix: &str) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Ns {
        name: String,
    }
    let out = ip(&["-json", "netns", "list"]).await?;
    let v: Vec<Ns> = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .map_err(|e| HostError::new(format!("ip -json netns list: {e}")))?;
    Ok(v.into_iter()
        .map(|n| n.name)
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// Deletes namespace `name` (and so every device in it); gone already is fine.
pub async fn delete(name: &str) -> Result<()> {
    match ip(&["netns", "del", name]).await {
        Err(e) if !is_absent(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Sets the addresses (`a.b.c.d/len`) of `dev` inside `ns` to exactly `cidrs`.
pub async fn set_addresses(ns: &str, dev: &str, cidrs: &[String]) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Addr {
        local: String,
        prefixlen: u8,
        #[serde(default)]
        scope: String,
    }
    #[derive(serde::Deserialize)]
    struct IfAddrs {
        #[serde(default)]
        addr_info: Vec<Addr>,
    }
    let out = ip_in(ns, &["-json", "addr", "show", "dev", dev]).await?;
    let have: Vec<IfAddrs> = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .map_err(|e| HostError::new(format!("ip -json addr show: {e}")))?;
    let have: Vec<String> = have
        .iter()
        .flat_map(|i| &i.addr_info)
        .filter(|a| a.scope != "link")
        .map(|a| format!("{}/{}", a.local, a.prefixlen))
        .collect();
    for h in &have {
        if !cidrs.contains(h) {
            ip_in(ns, &["addr", "del", h, "dev", dev]).await?;
        }
    }
    for c in cidrs {
        if !have.contains(c) {
            ip_in(ns, &["addr", "add", c, "dev", dev]).await?;
        }
    }
    Ok(())
}

/// The IPv4 routes through a gateway inside `ns` (`(destination, gateway)`, the
/// destination as `ip` prints it: `default`, `a.b.c.d` for a host, else `a.b.c.d/len`);
/// connected routes are left out.
pub async fn gateway_routes(ns: &str) -> Result<Vec<(String, String)>> {
    #[derive(serde::Deserialize)]
    struct Route {
        dst: String,
        #[serde(default)]
        gateway: Option<String>,
    }
    let out = ip_in(ns, &["-json", "-4", "route", "show"]).await?;
    let v: Vec<Route> = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .map_err(|e| HostError::new(format!("ip -json route show: {e}")))?;
    Ok(v.into_iter()
        .filter_map(|r| Some((r.dst, r.gateway?)))
        .collect())
}

/// Routes `dst` through `via` inside `ns` (replacing any route to `dst`).
pub async fn set_route(ns: &str, dst: &str, via: &str) -> Result<()> {
    ip_in(ns, &["route", "replace", dst, "via", via])
        .await
        .map(|_| ())
}

/// Removes the route to `dst` through `via` inside `ns`; gone already is fine.
pub async fn delete_route(ns: &str, dst: &str, via: &str) -> Result<()> {
    match ip_in(ns, &["route", "del", dst, "via", via]).await {
        Err(e) if !is_absent(&e) && !e.what.contains("No such process") => Err(e),
        _ => Ok(()),
    }
}

/// A TCP listener bound to `addr` inside namespace `ns`: the socket keeps the namespace
/// it was made in, so a thread enters the namespace, binds and ends.
pub fn listen_tcp(ns: &str, addr: std::net::SocketAddr) -> Result<std::net::TcpListener> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(&path)
                .map_err(|e| HostError::new(format!("open {path}: {e}")))?;
            // SAFETY: setns on a namespace file we hold open; it changes only this
            // thread's network namespace, and the thread ends right after the bind.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(HostError::new(format!(
                    "setns {ns}: {}",
                    std::io::Error::last_os_error()
                )));
            }
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| HostError::new(format!("bind {addr} in {ns}: {e}")))?;
            l.set_nonblocking(true)
                .map_err(|e| HostError::new(format!("nonblocking: {e}")))?;
            Ok(l)
        })
        .join()
        .unwrap_or_else(|_| Err(HostError::new("the namespace thread panicked")))
    })
}
