//! The FerroStack cloud as one program: configuration, start-up of the chosen services on
//! one database and one bus, and the operator tasks (bootstrap, migrations, key rotation).
//!
//! It wires services together; it holds no API logic of its own.

pub mod compute_plane;
pub mod config;
pub mod network_plane;
pub mod rings;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use ferro_compute::{Compute, ComputeConfig};
use ferro_identity::bootstrap::{BootstrapParams, Bootstrapped};
use ferro_identity::{Identity, IdentityConfig};
use ferro_image::{ImageConfig, Images};
use ferro_network::{NetworkConfig, Networking};
use ferro_placement::{Placement, PlacementConfig};

pub use config::Config;

/// A running cloud: its services and the addresses they listen on.
pub struct Cloud {
    pub identity: Arc<Identity>,
    pub identity_addr: SocketAddr,
    pub identity_url: String,
    pub images: Arc<Images>,
    pub image_addr: SocketAddr,
    /// The image API's base URL (`http://host:9292`).
    pub image_url: String,
    pub compute: Arc<Compute>,
    pub compute_addr: SocketAddr,
    /// The compute API's base URL without the version (`http://host:8774`).
    pub compute_url: String,
    /// The conductor's bus and the in-process compute agents.
    pub compute_plane: compute_plane::ComputePlane,
    pub metadata_addr: SocketAddr,
    /// The metadata API's base URL (`http://host:8775`), where the metadata proxy forwards.
    pub metadata_url: String,
    /// The secret the metadata proxy signs instance ids with.
    pub metadata_secret: String,
    pub placement: Arc<Placement>,
    pub placement_addr: SocketAddr,
    /// The placement API's base URL (`http://host:8778`).
    pub placement_url: String,
    pub network: Arc<Networking>,
    pub network_addr: SocketAddr,
    /// The network API's base URL without the version (`http://host:9696`).
    pub network_url: String,
    pub object_store: Arc<ferro_object_store::ObjectStore>,
    pub object_addr: SocketAddr,
    /// The object proxy's base URL without `/v1` (`http://host:8080`).
    pub object_url: String,
    /// The bus between the control plane and the agents.
    pub bus: Arc<dyn ferro_bus::Bus>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Glance's quotas read Keystone's unified limits for the `image` service, in-process.
struct IdentityLimits(Arc<Identity>);

#[async_trait::async_trait]
impl ferro_image::quota::Limits for IdentityLimits {
    async fn limit(&self, project_id: &str, resource: &str) -> ferro_common::Result<Option<i64>> {
        self.0.effective_limit(project_id, "image", resource).await
    }
}

/// Opens the database named by the configuration and applies every migration.
pub async fn open_database(config: &Config) -> anyhow::Result<ferro_db::Db> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("state dir {:?}", config.state_dir))?;
    let url = config.database_url();
    let db = ferro_db::Db::connect(&url)
        .await
        .with_context(|| format!("database {url}"))?;
    ferro_db::migrate(&db, "identity", ferro_identity::migrations()).await?;
    ferro_db::migrate(&db, "image", ferro_image::migrations()).await?;
    ferro_db::migrate(&db, "compute", ferro_compute::migrations()).await?;
    ferro_db::migrate(&db, "placement", ferro_placement::migrations()).await?;
    ferro_db::migrate(&db, "network", ferro_network::migrations()).await?;
    Ok(db)
}

fn identity_config(config: &Config, url: &str) -> IdentityConfig {
    let mut ic = IdentityConfig::new(&config.state_dir, url);
    ic.token_expiration = config.identity.token_expiration;
    ic.bcrypt_cost = config.identity.bcrypt_cost;
    ic.max_active_keys = config.identity.max_active_keys;
    ic.policy_file = config.identity.policy_file.clone();
    ic
}

/// The catalog entries of the services this cloud runs. Glance's and placement's URLs carry
/// no version: clients discover it from the version document.
pub fn catalog(
    identity_url: &str,
    image_url: &str,
    placement_url: &str,
) -> Vec<(String, String, String)> {
    vec![
        (
            "identity".into(),
            "keystone".into(),
            format!("{identity_url}/v3"),
        ),
        ("image".into(), "glance".into(), image_url.to_string()),
        (
            "placement".into(),
            "placement".into(),
            placement_url.to_string(),
        ),
    ]
}

/// The bus between the control plane and the agents, as the configuration names it.
pub fn connect_bus(config: &Config) -> anyhow::Result<Arc<dyn ferro_bus::Bus>> {
    let url = match config.compute.bus_url.as_str() {
        "" => "memory://",
        u => u,
    };
    ferro_bus::connect(url).with_context(|| format!("bus {url}"))
}

async fn bind(what: &str, host: &str, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("bind {what} on {host}:{port}"))
}

fn serve(
    what: &'static str,
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "{what} server stopped");
        }
    })
}

impl Cloud {
    /// Starts the identity and image APIs on the configured addresses (port 0 picks a free
    /// one). The image API validates tokens in-process through identity.
    pub async fn start(config: &Config) -> anyhow::Result<Cloud> {
        let db = open_database(config).await?;
        let compute_db = db.clone();
        let network_db = db.clone();
        let listener = bind("identity", &config.identity.bind, config.identity.port).await?;
        let addr = listener.local_addr()?;
        let url = config.identity_url(addr.port());
        let identity = Identity::open(db.clone(), identity_config(config, &url)).await?;
        let validator: Arc<dyn ferro_http::TokenValidator> = identity.clone();
        let compute_validator = validator.clone();
        let network_validator = validator.clone();
        let app = ferro_http::layers(
            ferro_identity::api::router(identity.clone()),
            ferro_http::FaultStyle::Keystone,
            ferro_http::DEFAULT_BODY_LIMIT,
            validator.clone(),
        );
        let mut tasks = vec![serve("identity", listener, app)];
        tasks.extend(ferro_identity::workers(identity.clone()));

        let image_listener = bind("image", &config.image.bind, config.image.port).await?;
        let image_addr = image_listener.local_addr()?;
        let image_url = config.image_url(image_addr.port());
        let mut ic = ImageConfig::new(&config.state_dir, &image_url);
        ic.policy_file = config.image.policy_file.clone();
        ic.size_cap = config.image.size_cap;
        ic.web_download_allowed_ports = config.image.web_download_allowed_ports.clone();
        let limits = Arc::new(IdentityLimits(identity.clone()));
        let images = Images::open(db.clone(), ic, limits)?;
        let image_app = ferro_http::layers(
            ferro_image::api::router(images.clone()),
            ferro_http::FaultStyle::Glance,
            ferro_http::DEFAULT_BODY_LIMIT,
            validator.clone(),
        );
        tasks.push(serve("image", image_listener, image_app));
        tasks.extend(ferro_image::workers(images.clone()));

        let placement_listener =
            bind("placement", &config.placement.bind, config.placement.port).await?;
        let placement_addr = placement_listener.local_addr()?;
        let placement_url = config.placement_url(placement_addr.port());
        let mut pc = PlacementConfig::new();
        pc.policy_file = config.placement.policy_file.clone();
        let placement = Placement::open(db, pc)?;
        let placement_app = ferro_http::layers(
            ferro_placement::api::router(placement.clone()),
            ferro_http::FaultStyle::Placement,
            ferro_http::DEFAULT_BODY_LIMIT,
            validator,
        );
        tasks.push(serve("placement", placement_listener, placement_app));
        let compute_listener = bind("compute", &config.compute.bind, config.compute.port).await?;
        let compute_addr = compute_listener.local_addr()?;
        let compute_url = config.compute_url(compute_addr.port());
        let mut cc = ComputeConfig::new(&compute_url);
        cc.policy_file = config.compute.policy_file.clone();
        cc.identity_url = Some(url.clone());
        cc.max_attempts = config.compute.max_attempts.max(1);
        cc.shelved_offload_time = config.compute.shelved_offload_time;
        cc.task_timeout = std::time::Duration::from_secs(config.compute.task_timeout);
        cc.host_subset_size = config.compute.host_subset_size.max(1);
        cc.scheduler_view_ttl =
            std::time::Duration::from_millis(config.compute.scheduler_view_ttl_ms);
        let compute = Compute::open(compute_db, cc)?;
        let compute_app = ferro_http::layers(
            ferro_compute::api::router(compute.clone()),
            ferro_http::FaultStyle::Nova,
            ferro_http::DEFAULT_BODY_LIMIT,
            compute_validator,
        );
        let object_validator = network_validator.clone();
        let bus = connect_bus(config)?;
        let (network, network_addr, network_url) =
            start_network(config, network_db, network_validator, &mut tasks).await?;
        network.connect_bus(bus.clone());
        network.connect_nova(ferro_network::nova::NovaNotifier::new(
            &format!("{compute_url}/v2.1"),
            Arc::new(ferro_client::ServiceAuth::new(
                &url,
                "neutron",
                &compute_plane::service_password(config)?,
                compute_plane::SERVICE_PROJECT,
            )),
        ));
        tasks.extend(ferro_network::nova::worker(network.clone()));
        tasks.extend(
            ferro_network::agents::workers(network.clone())
                .await
                .map_err(|e| anyhow::anyhow!("network service workers: {}", e.message))?,
        );
        let compute_plane = compute_plane::start(
            config,
            &bus,
            &compute,
            compute_plane::ServiceUrls {
                identity: &url,
                placement: &placement_url,
                image: &image_url,
                network: &network_url,
            },
            &mut tasks,
        )
        .await?;
        tasks.push(serve("compute", compute_listener, compute_app));
        let (metadata_addr, metadata_url, metadata_secret) =
            start_metadata(config, &compute, &mut tasks).await?;
        let metadata_target = ferro_network_agent::MetadataTarget {
            url: metadata_url.clone(),
            shared_secret: metadata_secret.clone(),
        };
        tasks.extend(network_plane::start(config, &bus, Some(metadata_target)).await?);
        let (object_store, object_addr, object_url) =
            start_object_store(config, object_validator, &mut tasks).await?;
        Ok(Cloud {
            identity,
            identity_addr: addr,
            identity_url: url,
            images,
            image_addr,
            image_url,
            compute,
            compute_addr,
            compute_url,
            compute_plane,
            metadata_addr,
            metadata_url,
            metadata_secret,
            placement,
            placement_addr,
            placement_url,
            network,
            network_addr,
            network_url,
            object_store,
            object_addr,
            object_url,
            bus,
            tasks,
        })
    }

    /// Bootstraps the cloud's first admin and catalog (idempotent).
    pub async fn bootstrap(
        &self,
        config: &Config,
        admin_password: &str,
    ) -> anyhow::Result<Bootstrapped> {
        let p = BootstrapParams {
            admin_user: config.bootstrap.admin_user.clone(),
            admin_password: admin_password.to_string(),
            admin_project: config.bootstrap.admin_project.clone(),
            region: config.bootstrap.region.clone(),
            services: [
                catalog(&self.identity_url, &self.image_url, &self.placement_url),
                vec![compute_catalog_entry(&self.compute_url)],
                vec![network_catalog_entry(&self.network_url)],
                vec![object_catalog_entry(&self.object_url)],
            ]
            .concat(),
            service_password: Some(compute_plane::service_password(config)?),
        };
        Ok(ferro_identity::bootstrap::bootstrap(&self.identity, &p).await?)
    }

    /// Stops the servers and background tasks.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the compute metadata API (nova-api-metadata) on its configured address: its
/// address, base URL and the proxy's shared secret.
async fn start_metadata(
    config: &Config,
    compute: &Arc<Compute>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<(SocketAddr, String, String)> {
    let section = &config.compute;
    let listener = bind("metadata", &section.metadata_bind, section.metadata_port).await?;
    let addr = listener.local_addr()?;
    let secret = compute_plane::metadata_secret(config)?;
    let mut mc = ferro_compute::metadata_api::MetadataConfig::new(&secret);
    mc.dhcp_domain = section.dhcp_domain.clone();
    tasks.push(serve(
        "metadata",
        listener,
        ferro_compute::metadata_api::router(compute.clone(), mc),
    ));
    let url = format!("http://{}:{}", section.metadata_bind, addr.port());
    Ok((addr, url, secret))
}

/// Starts the network API (Neutron v2.0) on its configured address.
async fn start_network(
    config: &Config,
    db: ferro_db::Db,
    validator: Arc<dyn ferro_http::TokenValidator>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<(Arc<Networking>, SocketAddr, String)> {
    let section = &config.network;
    let listener = bind("network", &section.bind, section.port).await?;
    let addr = listener.local_addr()?;
    let url = config.network_url(addr.port());
    let mut nc = NetworkConfig::new(&url);
    nc.policy_file = section.policy_file.clone();
    nc.vxlan_ranges =
        NetworkConfig::parse_vxlan_ranges(&section.vxlan_ranges).map_err(anyhow::Error::msg)?;
    nc.vlan_ranges =
        NetworkConfig::parse_vlan_ranges(&section.vlan_ranges).map_err(anyhow::Error::msg)?;
    nc.flat_networks = section.flat_networks.clone();
    nc.base_mac = section.base_mac.clone();
    nc.physnet_mtu = section.physnet_mtu;
    let network = Networking::open(db, nc)?;
    let app = ferro_http::layers(
        ferro_network::api::router(network.clone()),
        ferro_http::FaultStyle::Neutron,
        ferro_http::DEFAULT_BODY_LIMIT,
        validator,
    );
    tasks.push(serve("network", listener, app));
    Ok((network, addr, url))
}

/// The object storage settings of `config` for a process whose proxy answers at `url`.
fn object_store_config(config: &Config, url: &str) -> ferro_object_store::ObjectStoreConfig {
    let section = &config.object;
    let mut oc = ferro_object_store::ObjectStoreConfig::new(&config.state_dir, url);
    if !section.rings_dir.is_empty() {
        oc.rings_dir = section.rings_dir.clone().into();
    }
    if !section.devices_root.is_empty() {
        oc.devices_root = section.devices_root.clone().into();
    }
    oc.devices = section.devices.clone();
    oc.node_addresses = section.node_addresses.clone();
    oc.replicas = section.replicas;
    oc.part_power = section.part_power;
    oc.hash_path =
        ferro_object_ring::HashPath::new(&section.hash_path_prefix, &section.hash_path_suffix);
    oc.operator_roles = section.operator_roles.clone();
    oc.reseller_admin_role = section.reseller_admin_role.clone();
    oc.expirer_interval = std::time::Duration::from_secs(section.expirer_interval.max(1));
    oc.replicator_interval = std::time::Duration::from_secs(section.replicator_interval.max(1));
    oc.auditor_interval = std::time::Duration::from_secs(section.auditor_interval.max(1));
    oc.auditor_bytes_per_second = section.auditor_bytes_per_second;
    oc
}

/// Starts the object storage proxy (Swift) on its configured address; builds the rings on
/// first start. With `storage_port` set, also serves its devices to other nodes.
async fn start_object_store(
    config: &Config,
    validator: Arc<dyn ferro_http::TokenValidator>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<(Arc<ferro_object_store::ObjectStore>, SocketAddr, String)> {
    let section = &config.object;
    let listener = bind("object", &section.bind, section.port).await?;
    let addr = listener.local_addr()?;
    let url = config.object_url(addr.port());
    let store = ferro_object_store::ObjectStore::open(object_store_config(config, &url))?;
    let app = ferro_object_store::api::router(store.clone(), validator);
    tasks.push(serve("object", listener, app));
    if section.storage_port != 0 {
        let listener = bind("storage", &section.storage_bind, section.storage_port).await?;
        let app = ferro_object_store::server::router(store.clone());
        tasks.push(serve("storage", listener, app));
    }
    tasks.extend(ferro_object_store::workers(store.clone()));
    Ok((store, addr, url))
}

/// A storage node (`ferrostack storage-node`): the storage server for this host's devices
/// and their replicator and auditor. The rings come from the operator (`ferrostack ring`,
/// copied to every node); devices at `storage_bind:storage_port` (and `node_addresses`)
/// are this node's.
pub struct StorageNode {
    pub store: Arc<ferro_object_store::ObjectStore>,
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl StorageNode {
    pub async fn start(config: &Config) -> anyhow::Result<StorageNode> {
        let section = &config.object;
        let port = if section.storage_port == 0 {
            6200
        } else {
            section.storage_port
        };
        let listener = bind("storage", &section.storage_bind, port).await?;
        let addr = listener.local_addr()?;
        let mut oc = object_store_config(config, "");
        oc.build_rings = false;
        oc.node_addresses
            .push(format!("{}:{}", section.storage_bind, addr.port()));
        for ring in ["account", "container", "object"] {
            let path = oc.rings_dir.join(format!("{ring}.ring"));
            anyhow::ensure!(
                path.exists(),
                "{} is missing: build the rings with `ferrostack ring` and copy them here",
                path.display()
            );
        }
        let store = ferro_object_store::ObjectStore::open(oc)?;
        let app = ferro_object_store::server::router(store.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let stopped = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(error = %e, "storage server stopped");
            }
        });
        let workers = ferro_object_store::node_workers(store.clone());
        tracing::info!(%addr, "storage node serving");
        Ok(StorageNode {
            store,
            addr,
            shutdown: Some(tx),
            server: Some(server),
            workers,
        })
    }

    /// Runs until the server stops.
    pub async fn wait(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Stops serving (open connections finish their request and close) and stops the
    /// background passes.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        for w in self.workers.drain(..) {
            w.abort();
        }
    }
}

impl Drop for StorageNode {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

/// Swift's catalog entry: type `object-store`, name `swift`, at
/// `<url>/v1/AUTH_%(project_id)s` as DevStack registers it.
pub fn object_catalog_entry(object_url: &str) -> (String, String, String) {
    (
        "object-store".into(),
        "swift".into(),
        format!("{object_url}/v1/AUTH_%(project_id)s"),
    )
}

/// Neutron's catalog entry: type `network`, name `neutron`, at the unversioned URL as
/// DevStack registers it (clients read the version document there).
pub fn network_catalog_entry(network_url: &str) -> (String, String, String) {
    ("network".into(), "neutron".into(), network_url.to_string())
}

/// Nova's catalog entry: type `compute`, name `nova`, at `<url>/v2.1` as DevStack registers
/// it (clients append nothing; they read the version document there).
pub fn compute_catalog_entry(compute_url: &str) -> (String, String, String) {
    (
        "compute".into(),
        "nova".into(),
        format!("{compute_url}/v2.1"),
    )
}

/// Writes `clouds.yaml` and `admin-openrc` for the admin into `dir`.
pub fn write_client_files(
    dir: &std::path::Path,
    config: &Config,
    auth_url: &str,
    password: &str,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let b = &config.bootstrap;
    let clouds = format!(
        "clouds:\n  ferrostack:\n    auth:\n      auth_url: {auth_url}/v3\n      username: {user}\n      password: \"{password}\"\n      \
         project_name: {project}\n      user_domain_name: Default\n      project_domain_name: Default\n    \
         region_name: {region}\n    interface: public\n    identity_api_version: 3\n",
        user = b.admin_user,
        project = b.admin_project,
        region = b.region,
    );
    let openrc = format!(
        "export OS_AUTH_URL={auth_url}/v3\nexport OS_USERNAME={user}\nexport OS_PASSWORD='{password}'\n\
         export OS_PROJECT_NAME={project}\nexport OS_USER_DOMAIN_NAME=Default\nexport OS_PROJECT_DOMAIN_NAME=Default\n\
         export OS_REGION_NAME={region}\nexport OS_IDENTITY_API_VERSION=3\nexport OS_INTERFACE=public\n",
        user = b.admin_user,
        project = b.admin_project,
        region = b.region,
    );
    for (name, text) in [("clouds.yaml", clouds), ("admin-openrc", openrc)] {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// A random password for the bootstrap admin: 24 url-safe characters.
pub fn generate_password() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    a[..24].to_string()
}
