//! dnsmasq serving one network's DHCP inside its namespace, from static host entries only
//! (no dynamic leases), as Neutron's DHCP agent runs it.
//!
//! Its files live in one directory per network: `args` (the command line it was started
//! with), `host` (`--dhcp-hostsfile`), `opts` (`--dhcp-optsfile`), `addn_hosts` (DNS names)
//! and `pid`. A change of hosts or options is a `SIGHUP` (dnsmasq re-reads those files);
//! a change of the command line (a subnet added) is a restart.

use std::path::{Path, PathBuf};

use crate::cmd::{HostError, Result};

/// One subnet dnsmasq answers on.
#[derive(Clone, Debug, PartialEq)]
pub struct Subnet {
    pub id: String,
    /// `10.0.0.0/24`.
    pub cidr: String,
    pub lease_secs: u32,
}

/// A port's static entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    pub mac: String,
    pub ip: String,
    /// The short host name (`host-10-0-0-5` or the port's `dns_name`).
    pub name: String,
}

/// What one network's dnsmasq serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub namespace: String,
    /// The DHCP port's device inside the namespace.
    pub interface: String,
    pub domain: String,
    pub subnets: Vec<Subnet>,
    pub hosts: Vec<Host>,
    /// `--dhcp-optsfile` lines (`tag:subnet-<id>,option:router,10.0.0.1`).
    pub options: Vec<String>,
}

/// The dnsmasq of one network, under `dir`.
pub struct Dnsmasq {
    dir: PathBuf,
}

fn io(what: &str, p: &Path) -> impl Fn(std::io::Error) -> HostError {
    let m = format!("{what} {}", p.display());
    move |e| HostError::new(format!("{m}: {e}"))
}

fn netmask(cidr: &str) -> Option<(String, String)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let net = u32::from(addr) & mask;
    Some((
        std::net::Ipv4Addr::from(net).to_string(),
        std::net::Ipv4Addr::from(mask).to_string(),
    ))
}

impl Dnsmasq {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Dnsmasq { dir: dir.into() }
    }

    /// The command line for `c` (inside its namespace through `ip netns exec`).
    pub fn arguments(&self, c: &Config) -> Vec<String> {
        let f = |n: &str| self.dir.join(n).to_string_lossy().into_owned();
        let mut a: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            c.namespace.clone(),
            "dnsmasq".into(),
            "--no-hosts".into(),
            "--no-resolv".into(),
            "--conf-file=/dev/null".into(),
            // It re-reads its files on SIGHUP after dropping privileges, and they live under
            // the state directory, which other users may not traverse: it stays root (in
            // its own namespace, bound to one interface).
            "--user=root".into(),
            "--group=root".into(),
            format!("--pid-file={}", f("pid")),
            format!("--dhcp-hostsfile={}", f("host")),
            format!("--addn-hosts={}", f("addn_hosts")),
            format!("--dhcp-optsfile={}", f("opts")),
            format!("--log-facility={}", f("log")),
            "--leasefile-ro".into(),
            "--dhcp-authoritative".into(),
            "--bind-interfaces".into(),
            format!("--interface={}", c.interface),
            "--except-interface=lo".into(),
            format!("--domain={}", c.domain),
            format!("--dhcp-lease-max={}", 1 << 16),
        ];
        for s in &c.subnets {
            if let Some((net, mask)) = netmask(&s.cidr) {
                a.push(format!(
                    "--dhcp-range=set:subnet-{},{net},static,{mask},{}s",
                    s.id, s.lease_secs
                ));
            }
        }
        a
    }

    fn render_hosts(c: &Config) -> (String, String) {
        let mut hosts = String::new();
        let mut addn = String::new();
        for h in &c.hosts {
            hosts.push_str(&format!("{},{}.{}.,{}\n", h.mac, h.name, c.domain, h.ip));
            addn.push_str(&format!("{}\t{}.{} {}\n", h.ip, h.name, c.domain, h.name));
        }
        (hosts, addn)
    }

    /// Whether the dnsmasq of this directory runs.
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let dir = self.dir.to_string_lossy();
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.starts_with("dnsmasq") && cmdline.contains(dir.as_ref())).then_some(pid)
    }

    /// Makes dnsmasq serve `c`: writes the files, starts it, re-reads on a change of hosts
    /// or options, restarts on a change of its command line. Answers whether it (re)started.
    pub async fn ensure(&self, c: &Config) -> Result<bool> {
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let (hosts, addn) = Self::render_hosts(c);
        let opts: String = c.options.iter().map(|o| format!("{o}\n")).collect();
        let mut changed = false;
        for (name, text) in [("host", &hosts), ("addn_hosts", &addn), ("opts", &opts)] {
            changed |= write_if_changed(&self.dir.join(name), text)?;
        }
        let args = self.arguments(c);
        let args_text = args.join("\n");
        let args_changed = write_if_changed(&self.dir.join("args"), &args_text)?;
        match self.pid() {
            Some(pid) if !args_changed => {
                if changed {
                    signal(pid, libc::SIGHUP);
                }
                Ok(false)
            }
            running => {
                if let Some(pid) = running {
                    stop_pid(pid).await;
                }
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                crate::cmd::run("ip", &a).await?;
                Ok(true)
            }
        }
    }

    /// Stops the process and removes its files.
    pub async fn stop(&self) -> Result<()> {
        if let Some(pid) = self.pid() {
            stop_pid(pid).await;
        }
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &self.dir)(e)),
            _ => Ok(()),
        }
    }
}

fn write_if_changed(path: &Path, text: &str) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    Ok(true)
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory preconditions; the pid was read from dnsmasq's own
    // pidfile and checked against /proc just before.
    unsafe {
        libc::kill(pid, sig);
    }
}

async fn stop_pid(pid: i32) {
    signal(pid, libc::SIGTERM);
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    signal(pid, libc::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_and_files_say_what_neutron_s_would() {
        let d = Dnsmasq::new("/x");
        let c = Config {
            namespace: "fs-qdhcp-n1".into(),
            interface: "fsnabc".into(),
            domain: "openstacklocal".into(),
            subnets: vec![Subnet {
                id: "s1".into(),
                cidr: "10.0.0.5/24".into(),
                lease_secs: 86400,
            }],
            hosts: vec![Host {
                mac: "fa:16:3e:00:00:01".into(),
                ip: "10.0.0.5".into(),
                name: "host-10-0-0-5".into(),
            }],
            options: vec![],
        };
        let a = d.arguments(&c);
        assert!(a.contains(
            &"--dhcp-range=set:subnet-s1,10.0.0.0,static,255.255.255.0,86400s".to_string()
        ));
        assert!(a.contains(&"--interface=fsnabc".to_string()));
        let (hosts, addn) = Dnsmasq::render_hosts(&c);
        assert_eq!(
            hosts,
            "fa:16:3e:00:00:01,host-10-0-0-5.openstacklocal.,10.0.0.5\n"
        );
        assert!(addn.starts_with("10.0.0.5\thost-10-0-0-5.openstacklocal"));
    }

    #[test]
    fn netmasks() {
        assert_eq!(
            netmask("192.168.1.77/20"),
            Some(("192.168.0.0".into(), "255.255.240.0".into()))
        );
        assert_eq!(netmask("fd00::/64"), None);
    }
}
