//! The compute control plane and its in-process agents: connects the compute service to
//! the bus and its service credentials, starts the conductor's workers and, for
//! all-in-one, `fake_hosts` compute agents (`fake-0`, `fake-1`... or, with the QEMU
//! driver, `qemu-0`... each in `<state_dir>/qemu/<host>`) on the chosen driver.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferro_client::ServiceAuth;
use ferro_compute::Compute;
use ferro_compute::servers::Links;
use ferro_compute_agent::{Agent, AgentConfig};
use ferro_virt::qemu::{QemuConfig, QemuDriver};
use ferro_virt::{Driver, FakeDriver};

use crate::Config;

/// The service user the conductor and the agents log in as (DevStack's `nova`), in the
/// `service` project bootstrap creates.
pub const SERVICE_USER: &str = "nova";
pub const SERVICE_PROJECT: &str = "service";

/// The service users' password: configured, else generated once into the state directory.
pub fn service_password(config: &Config) -> anyhow::Result<String> {
    state_secret(config, &config.compute.service_password, "service-password")
}

/// The metadata proxy's shared secret (`metadata_proxy_shared_secret`): configured, else
/// generated once into the state directory, where the network agent's proxy reads it too.
pub fn metadata_secret(config: &Config) -> anyhow::Result<String> {
    state_secret(
        config,
        &config.compute.metadata_proxy_shared_secret,
        "metadata-proxy-shared-secret",
    )
}

/// `configured` when set, else the secret in `<state_dir>/<file>`, made on first use
/// (readable by the owner only).
fn state_secret(config: &Config, configured: &str, file: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    if !configured.is_empty() {
        return Ok(configured.to_string());
    }
    let path = config.state_dir.join(file);
    if let Ok(p) = std::fs::read_to_string(&path)
        && !p.trim().is_empty()
    {
        return Ok(p.trim().to_string());
    }
    std::fs::create_dir_all(&config.state_dir)?;
    let p = crate::generate_password();
    std::fs::write(&path, &p).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(p)
}

/// The running compute plane: the fake hypervisors of the in-process hosts, by host name,
/// so tests can slow them down or make them fail.
#[derive(Default)]
pub struct ComputePlane {
    pub fake_drivers: Vec<(String, Arc<FakeDriver>)>,
}

/// Where the compute plane reaches the other services' APIs.
pub struct ServiceUrls<'a> {
    pub identity: &'a str,
    pub placement: &'a str,
    pub image: &'a str,
    pub network: &'a str,
}

/// Starts the conductor and the in-process agents.
pub async fn start(
    config: &Config,
    bus: &Arc<dyn ferro_bus::Bus>,
    compute: &Arc<Compute>,
    urls: ServiceUrls<'_>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<ComputePlane> {
    let ServiceUrls {
        identity: identity_url,
        placement: placement_url,
        image: image_url,
        network: network_url,
    } = urls;
    let section = &config.compute;
    let password = service_password(config)?;
    let auth = Arc::new(ServiceAuth::new(
        identity_url,
        SERVICE_USER,
        &password,
        SERVICE_PROJECT,
    ));
    compute.connect(Links {
        bus: bus.clone(),
        auth: auth.clone(),
        placement_url: placement_url.to_string(),
        image_url: image_url.to_string(),
        network_url: network_url.to_string(),
    });
    tasks.extend(
        ferro_compute::conductor::workers(compute.clone())
            .await
            .map_err(|e| anyhow::anyhow!("conductor: {}", e.message()))?,
    );
    let mut plane = ComputePlane::default();
    let qemu = match section.driver.as_str() {
        "fake" => false,
        "qemu" => true,
        other => anyhow::bail!("compute driver {other:?} is not available (fake, qemu)"),
    };
    // The in-process network agent watches the taps QEMU plugs; without it no
    // `network-vif-plugged` would come for these hosts' ports.
    let vif_wait = if qemu && !crate::network_plane::enabled(config)? {
        Duration::ZERO
    } else {
        Duration::from_secs(section.vif_plugging_timeout)
    };
    for n in 0..section.fake_hosts {
        let host = format!("{}-{n}", if qemu { "qemu" } else { "fake" });
        let mut ac = agent_config(config, &host, placement_url, image_url);
        ac.vif_plugging_timeout = vif_wait;
        let driver: Arc<dyn Driver> = if qemu {
            Arc::new(qemu_driver(config, &host, ALL_IN_ONE_FAKE).await?)
        } else {
            let fake = Arc::new(FakeDriver::new());
            plane.fake_drivers.push((host.clone(), fake.clone()));
            fake
        };
        let agent = Agent::new(ac, bus.clone(), driver, auth.clone());
        tasks.extend(
            ferro_compute_agent::start(agent)
                .await
                .with_context(|| format!("compute agent {host}"))?,
        );
    }
    Ok(plane)
}

/// The settings of compute host `host` from `[compute]`.
fn agent_config(config: &Config, host: &str, placement_url: &str, image_url: &str) -> AgentConfig {
    let section = &config.compute;
    let mut ac = AgentConfig::new(host, placement_url);
    ac.vcpus = section.host_vcpus;
    ac.memory_mb = section.host_memory_mb;
    ac.disk_gb = section.host_disk_gb;
    ac.heartbeat_interval = Duration::from_secs(section.report_interval.max(1));
    ac.image_url = image_url.to_string();
    ac.vif_plugging_timeout = Duration::from_secs(section.vif_plugging_timeout);
    ac.vif_plugging_is_fatal = section.vif_plugging_is_fatal;
    ac.image_cache_interval = Duration::from_secs(section.image_cache_interval);
    ac.image_cache_max_age = Duration::from_secs(section.image_cache_max_age);
    ac.running_deleted_poll_interval =
        Duration::from_secs(section.running_deleted_instance_poll_interval);
    ac.sync_power_state_interval = Duration::from_secs(section.sync_power_state_interval);
    ac
}

/// `ferrostack compute-agent`: this host's compute agent alone (Nova's nova-compute), on
/// the configured bus (RabbitMQ, to reach the conductor on another host); it reaches
/// identity, placement and the image API at their configured public URLs, as the service
/// user with the controller's `service_password`. The host is `[compute] host`, else the
/// machine's hostname; QEMU guests live under `<state_dir>/qemu/<host>`.
pub async fn run_standalone(config: &Config) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let section = &config.compute;
    if section.service_password.is_empty() {
        anyhow::bail!("compute.service_password must be set to the controller's");
    }
    if matches!(section.bus_url.as_str(), "" | "memory://") {
        anyhow::bail!("compute.bus_url must name the controller's bus (amqp://...)");
    }
    let host = standalone_host(config)?;
    let bus = crate::connect_bus(config)?;
    let auth = Arc::new(ServiceAuth::new(
        &config.identity_url(config.identity.port),
        SERVICE_USER,
        &section.service_password,
        SERVICE_PROJECT,
    ));
    let ac = agent_config(
        config,
        &host,
        &config.placement_url(config.placement.port),
        &config.image_url(config.image.port),
    );
    let driver: Arc<dyn Driver> = match section.driver.as_str() {
        "qemu" => Arc::new(qemu_driver(config, &host, AGENT_FAKE).await?),
        "fake" => Arc::new(FakeDriver::new()),
        other => anyhow::bail!("compute driver {other:?} is not available (fake, qemu)"),
    };
    let agent = Agent::new(ac, bus, driver, auth);
    tracing::info!(%host, driver = %section.driver, "compute agent");
    ferro_compute_agent::start(agent)
        .await
        .with_context(|| format!("compute agent {host}"))
}

/// The standalone agent's host name: `[compute] host`, else the machine's hostname.
pub fn standalone_host(config: &Config) -> anyhow::Result<String> {
    if !config.compute.host.is_empty() {
        return Ok(config.compute.host.clone());
    }
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("read the hostname")?
        .trim()
        .to_string();
    anyhow::ensure!(
        !name.is_empty(),
        "the machine has no hostname: set compute.host"
    );
    Ok(name)
}

/// The QEMU driver of in-process host `host`, under `<state_dir>/qemu/<host>`.
/// How all-in-one and `compute-agent` are told to run without QEMU.
const ALL_IN_ONE_FAKE: &str = "`--compute-driver fake` or `[compute] driver = \"fake\"`";
const AGENT_FAKE: &str = "`[compute] driver = \"fake\"`";

/// Host `host`'s QEMU driver; when QEMU cannot start, the error says how to install it
/// and how to choose the fake driver instead (`fake_choice`): no fallback, as upstream.
async fn qemu_driver(config: &Config, host: &str, fake_choice: &str) -> anyhow::Result<QemuDriver> {
    qemu_driver_of(config, host).await.map_err(|e| {
        anyhow::anyhow!(
            "{e:#}; the compute driver is qemu (the default): install qemu-system-x86, \
             qemu-utils and genisoimage, or run the fake driver with {fake_choice}"
        )
    })
}

async fn qemu_driver_of(config: &Config, host: &str) -> anyhow::Result<QemuDriver> {
    let section = &config.compute;
    let mut qc = QemuConfig::new(config.state_dir.join("qemu").join(host));
    qc.qemu_binary = section.qemu_binary.clone().into();
    qc.accel = section
        .qemu_accel
        .parse()
        .map_err(|e: String| anyhow::anyhow!("compute.qemu_accel: {e}"))?;
    if !section.qemu_probe_kernel.is_empty() {
        qc.probe_kernel = Some(section.qemu_probe_kernel.clone().into());
    }
    qc.shutdown_timeout = Duration::from_secs(section.shutdown_timeout);
    qc.soft_reboot_timeout = Duration::from_secs(section.soft_reboot_timeout);
    qc.force_config_drive = section.force_config_drive;
    qc.names = crate::network_plane::names(config)?;
    let driver = QemuDriver::new(qc)
        .await
        .with_context(|| format!("the QEMU driver of {host}"))?;
    tracing::info!(%host, accel = driver.probe().accel.as_str(), reason = %driver.probe().reason, "qemu host");
    Ok(driver)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without its emulator the QEMU driver refuses to start with an error naming the
    /// missing program and the way to the fake driver, and leaves no host state behind.
    #[tokio::test]
    async fn qemu_missing_names_the_fake_driver() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            state_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        assert_eq!(config.compute.driver, "qemu");
        config.compute.qemu_binary = "/nonexistent/qemu-system-x86_64".into();
        let message = match qemu_driver(&config, "qemu-0", ALL_IN_ONE_FAKE).await {
            Ok(_) => panic!("the QEMU driver started without its emulator"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            message.contains("/nonexistent/qemu-system-x86_64 is not installed"),
            "{message}"
        );
        assert!(message.contains("--compute-driver fake"), "{message}");
        assert!(!dir.path().join("qemu").exists(), "{message}");
        let message = match qemu_driver(&config, "hostb", AGENT_FAKE).await {
            Ok(_) => panic!("the QEMU driver started without its emulator"),
            Err(e) => format!("{e:#}"),
        };
        assert!(message.contains("[compute] driver = \"fake\""), "{message}");
    }
}
