//! Links: bridges, taps, veth pairs and VXLAN devices, made idempotently.

use serde::Deserialize;

use crate::cmd::{Result, ip, ip_in, is_absent, run};

/// A link as `ip -json -details link show` describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct Link {
    #[serde(rename = "ifname")]
    pub name: String,
    #[serde(default)]
    pub master: Option<String>,
    #[serde(default)]
    pub operstate: String,
    #[serde(default)]
    pub mtu: i64,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LinkInfo {
    #[serde(default)]
    pub info_kind: String,
}

impl Link {
    /// `bridge`, `tun`, `veth`, `vxlan`… (empty for a physical device).
    pub fn kind(&self) -> &str {
        self.linkinfo.as_ref().map_or("", |l| l.info_kind.as_str())
    }

    /// Whether the administrator set it up (whether or not it has carrier).
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

/// Every link of the host's namespace whose name starts with `prefix`.
pub async fn list(prefix: &str) -> Result<Vec<Link>> {
    let out = ip(&["-json", "-details", "link", "show"]).await?;
    let all: Vec<Link> = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .map_err(|e| crate::HostError::new(format!("ip -json link show: {e}")))?;
    Ok(all
        .into_iter()
        .filter(|l| l.name.starts_with(prefix))
        .collect())
}

/// The link named `name`, if it exists.
pub async fn get(name: &str) -> Result<Option<Link>> {
    match ip(&["-json", "-details", "link", "show", "dev", name]).await {
        Ok(out) => {
            let mut v: Vec<Link> = serde_json::from_str(&out)
                .map_err(|e| crate::HostError::new(format!("ip -json link show {name}: {e}")))?;
            Ok(v.pop())
        }
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn exists(e: &crate::HostError) -> bool {
    e.what.contains("File exists")
}

/// A bridge named `name`, up, with `mtu` when given (else as it is, 1500 when new); kept
/// if it exists. A device of that name that is no bridge is an error, and is left as it is.
pub async fn ensure_bridge(name: &str, mtu: Option<i64>) -> Result<()> {
    match ip(&["link", "add", "name", name, "type", "bridge"]).await {
        Err(e) if !exists(&e) => return Err(e),
        Err(_) => expect_kind(name, "bridge", "a bridge").await?,
        Ok(_) => {}
    }
    match mtu {
        Some(m) => set_mtu_up(name, m).await,
        None => ip(&["link", "set", name, "up"]).await.map(|_| ()),
    }
}

/// A persistent tap named `name` (QEMU opens it by name) in bridge `bridge` with the
/// bridge's MTU, up.
///
/// A device of that name that is no tap (a veth, a bridge…) is an error and is left as it
/// is: it is not ours. When a step after the tap's creation fails (the bridge refuses it,
/// or its MTU), the tap goes again, unless a process holds it open (a running guest's).
pub async fn ensure_tap_in(name: &str, bridge: &str) -> Result<()> {
    let in_use = match ip(&["tuntap", "add", "dev", name, "mode", "tap"]).await {
        Ok(_) => false,
        // A device of that name that is open, or is no tun device at all, answers
        // "Device or resource busy".
        Err(e) if e.what.contains("busy") || exists(&e) => {
            expect_kind(name, "tun", "a tap").await?;
            true
        }
        Err(e) => return Err(e),
    };
    let plugged = async {
        let mtu = get(bridge).await?.map_or(1500, |b| b.mtu);
        ip(&["link", "set", name, "master", bridge]).await?;
        set_mtu_up(name, mtu).await
    };
    let result = plugged.await;
    if result.is_err() && !in_use {
        let _ = delete_tap(name).await;
    }
    result
}

/// Fails unless link `name` is of kind `kind` (`tun`, `bridge`…), which `what` names.
async fn expect_kind(name: &str, kind: &str, what: &str) -> Result<()> {
    match get(name).await? {
        Some(l) if l.kind() == kind => Ok(()),
        Some(l) => Err(crate::HostError::new(format!(
            "a device named {name} exists and is not {what} ({})",
            if l.kind().is_empty() {
                "a physical device"
            } else {
                l.kind()
            }
        ))),
        None => Err(crate::HostError::new(format!(
            "{name} could not be made, and no device of that name exists"
        ))),
    }
}

/// A VXLAN device for `vni` over `local` (UDP 4789, learning on), with `mtu`, up.
pub async fn ensure_vxlan(name: &str, vni: i64, local: &str, mtu: i64) -> Result<()> {
    let vni = vni.to_string();
    match ip(&[
        "link", "add", name, "type", "vxlan", "id", &vni, "local", local, "dstport", "4789",
    ])
    .await
    {
        Err(e) if !exists(&e) => return Err(e),
        _ => {}
    }
    set_mtu_up(name, mtu).await
}

/// VLAN `vid` of interface `parent` as device `name` (802.1Q), up with `mtu`.
pub async fn ensure_vlan(name: &str, parent: &str, vid: i64, mtu: i64) -> Result<()> {
    let id = vid.to_string();
    match ip(&[
        "link", "add", "link", parent, "name", name, "type", "vlan", "id", &id,
    ])
    .await
    {
        Err(e) if !exists(&e) => return Err(e),
        _ => {}
    }
    set_mtu_up(name, mtu).await
}

/// Sets link `name` up (a host interface a flat network is carried on).
pub async fn set_up(name: &str) -> Result<()> {
    ip(&["link", "set", name, "up"]).await.map(|_| ())
}

/// The VXLAN device floods broadcast and unknown unicast to each of `peers` (and no other).
pub async fn set_flood_peers(name: &str, peers: &[String]) -> Result<()> {
    let out = run("bridge", &["-json", "fdb", "show", "dev", name]).await?;
    #[derive(Deserialize)]
    struct Fdb {
        mac: String,
        #[serde(default)]
        dst: Option<String>,
    }
    let have: Vec<Fdb> =
        serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out }).unwrap_or_default();
    const ZERO: &str = "00:00:00:00:00:00";
    for f in &have {
        if f.mac == ZERO
            && let Some(d) = &f.dst
            && !peers.contains(d)
        {
            run("bridge", &["fdb", "del", ZERO, "dev", name, "dst", d]).await?;
        }
    }
    for p in peers {
        if !have
            .iter()
            .any(|f| f.mac == ZERO && f.dst.as_deref() == Some(p))
        {
            run("bridge", &["fdb", "append", ZERO, "dev", name, "dst", p]).await?;
        }
    }
    Ok(())
}

/// A veth pair: `host_end` in the host's namespace, `ns_end` inside namespace `ns` with
/// MAC `mac`, both with `mtu`; the host end up, the namespace end up or (`ns_up` false,
/// an administratively down port) down. Kept if the host end exists.
pub async fn ensure_veth(
    host_end: &str,
    ns_end: &str,
    ns: &str,
    mac: &str,
    mtu: i64,
    ns_up: bool,
) -> Result<()> {
    if get(host_end).await?.is_none() {
        ip(&[
            "link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", ns,
        ])
        .await?;
    }
    let m = mtu.to_string();
    let state = if ns_up { "up" } else { "down" };
    ip_in(
        ns,
        &["link", "set", ns_end, "address", mac, "mtu", &m, state],
    )
    .await?;
    set_mtu_up(host_end, mtu).await
}

/// Puts `dev` into bridge `bridge` (no-op when it is there already).
pub async fn set_master(dev: &str, bridge: &str) -> Result<()> {
    ip(&["link", "set", dev, "master", bridge])
        .await
        .map(|_| ())
}

async fn set_mtu_up(name: &str, mtu: i64) -> Result<()> {
    let m = mtu.to_string();
    ip(&["link", "set", name, "mtu", &m, "up"])
        .await
        .map(|_| ())
}

/// Deletes link `name`; gone already is fine.
pub async fn delete(name: &str) -> Result<()> {
    match ip(&["link", "del", name]).await {
        Err(e) if !is_absent(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Deletes tap `name`; gone already is fine, and so is a device of that name that is no
/// tap: it is not one a guest was plugged through, and is left alone.
pub async fn delete_tap(name: &str) -> Result<()> {
    match get(name).await? {
        Some(l) if l.kind() == "tun" => delete(name).await,
        _ => Ok(()),
    }
}

/// The names of the links that are ports of bridge `bridge`.
pub async fn bridge_ports(bridge: &str) -> Result<Vec<String>> {
    let out = ip(&["-json", "link", "show", "master", bridge]).await?;
    let v: Vec<Link> = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .map_err(|e| crate::HostError::new(format!("ip -json link show master: {e}")))?;
    Ok(v.into_iter().map(|l| l.name).collect())
}
