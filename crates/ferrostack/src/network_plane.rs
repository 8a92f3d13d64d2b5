//! The network agent of this host, run in-process by all-in-one when the host allows it
//! (root, iproute2 and dnsmasq present) or the configuration asks for it.

use std::time::Duration;

use anyhow::Context as _;
use ferro_host::Names;
use ferro_network_agent::{AgentConfig, MetadataTarget, NetworkAgent};

use crate::Config;

/// The device naming scheme of this host (shared by the agent and the QEMU driver).
pub fn names(config: &Config) -> anyhow::Result<Names> {
    Names::new(&config.network_agent.prefix)
        .map_err(|e| anyhow::anyhow!("network_agent.prefix: {e}"))
}

/// Whether the in-process network agent runs.
pub fn enabled(config: &Config) -> anyhow::Result<bool> {
    match config.network_agent.enabled.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        "auto" => Ok(ferro_host::can_manage_network() && which("ip") && which("dnsmasq")),
        other => anyhow::bail!("network_agent.enabled {other:?}: auto, true or false"),
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// The host the agent serves: configured, else the first in-process compute host.
pub fn host(config: &Config) -> String {
    if !config.network_agent.host.is_empty() {
        return config.network_agent.host.clone();
    }
    let driver = if config.compute.driver == "qemu" {
        "qemu"
    } else {
        "fake"
    };
    format!("{driver}-0")
}

/// The agent's settings from the configuration.
pub fn agent_config(config: &Config) -> anyhow::Result<AgentConfig> {
    let section = &config.network_agent;
    let mut ac = AgentConfig::new(
        &host(config),
        names(config)?,
        config.state_dir.join("network"),
    );
    ac.dhcp = section.dhcp;
    ac.l3 = section.l3;
    for pair in section
        .physical_interface_mappings
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (physnet, dev) = pair
            .split_once(':')
            .filter(|(p, d)| !p.is_empty() && !d.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "network_agent.physical_interface_mappings {pair:?}: physnet:interface"
                )
            })?;
        ac.physical_interfaces
            .insert(physnet.to_string(), dev.to_string());
    }
    ac.tunnel_ip = (!section.tunnel_ip.is_empty()).then(|| section.tunnel_ip.clone());
    ac.sync_interval = Duration::from_secs(section.sync_interval.max(1));
    Ok(ac)
}

/// Starts the in-process network agent when enabled; its metadata proxy forwards to
/// `metadata` when given.
pub async fn start(
    config: &Config,
    bus: &std::sync::Arc<dyn ferro_bus::Bus>,
    metadata: Option<MetadataTarget>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    if !enabled(config)? {
        return Ok(Vec::new());
    }
    let mut ac = agent_config(config)?;
    ac.metadata = metadata;
    let agent = NetworkAgent::new(ac, bus.clone());
    tracing::info!(host = %agent.config.host, prefix = %agent.config.names.prefix(), "network agent");
    ferro_network_agent::start(agent)
        .await
        .context("network agent")
}

/// `ferrostack network-agent`: this host's agent alone, on the configured bus (RabbitMQ,
/// to reach the network service on another host). Answers its tasks.
pub async fn run_standalone(config: &Config) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    if !ferro_host::can_manage_network() {
        anyhow::bail!("the network agent changes the host's network: run it as root");
    }
    let bus = crate::connect_bus(config)?;
    let mut ac = agent_config(config)?;
    if !config.network_agent.metadata_url.is_empty() {
        let secret = &config.compute.metadata_proxy_shared_secret;
        if secret.is_empty() {
            anyhow::bail!(
                "network_agent.metadata_url needs compute.metadata_proxy_shared_secret (the controller's)"
            );
        }
        ac.metadata = Some(MetadataTarget {
            url: config
                .network_agent
                .metadata_url
                .trim_end_matches('/')
                .to_string(),
            shared_secret: secret.clone(),
        });
    }
    let agent = NetworkAgent::new(ac, bus);
    tracing::info!(host = %agent.config.host, prefix = %agent.config.names.prefix(), "network agent");
    ferro_network_agent::start(agent)
        .await
        .context("network agent")
}

/// `ferrostack network-agent --purge`: removes every device, namespace, dnsmasq and
/// nftables table of this host's prefix.
pub async fn purge(config: &Config) -> anyhow::Result<()> {
    ferro_network_agent::purge(&names(config)?, &config.state_dir.join("network"))
        .await
        .context("purge")
}
