//! The only code that touches the host's network stack: named devices (bridges, taps, veth
//! pairs, VXLAN), network namespaces, addresses and the dnsmasq processes that serve DHCP.
//!
//! Every device and namespace FerroStack makes carries the configured prefix ([`Names`]), so
//! clouds side by side (tests) never see each other's and a reconciler can tell its own from
//! the host's. Links and namespaces are driven through iproute2 (`ip -json`): one program,
//! readable in a test log, fast enough for the handful of changes a port makes.

pub mod cmd;
pub mod dnsmasq;
pub mod link;
pub mod names;
pub mod netns;

pub use cmd::HostError;
pub use names::Names;

/// Whether this process may change the host's network (bridges, namespaces): root only.
pub fn can_manage_network() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
