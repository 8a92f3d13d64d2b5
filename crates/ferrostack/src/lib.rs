//! The FerroStack cloud as one program: configuration, start-up of the chosen services on
//! one database and one bus, and the operator tasks (bootstrap, migrations, key rotation).
//!
//! It wires services together; it holds no API logic of its own.

pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use ferro_identity::bootstrap::{BootstrapParams, Bootstrapped};
use ferro_identity::{Identity, IdentityConfig};
use ferro_image::{ImageConfig, Images};

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
    tasks: Vec<tokio::task::JoinHandle<()>>,
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

/// The catalog entries of the services this cloud runs. Glance's URL carries no version:
/// clients discover v2 from its version list.
pub fn catalog(identity_url: &str, image_url: &str) -> Vec<(String, String, String)> {
    vec![
        (
            "identity".into(),
            "keystone".into(),
            format!("{identity_url}/v3"),
        ),
        ("image".into(), "glance".into(), image_url.to_string()),
    ]
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
        let listener = bind("identity", &config.identity.bind, config.identity.port).await?;
        let addr = listener.local_addr()?;
        let url = config.identity_url(addr.port());
        let identity = Identity::open(db.clone(), identity_config(config, &url)).await?;
        let validator: Arc<dyn ferro_http::TokenValidator> = identity.clone();
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
        let images = Images::open(db, ic)?;
        let image_app = ferro_http::layers(
            ferro_image::api::router(images.clone()),
            ferro_http::FaultStyle::Glance,
            ferro_http::DEFAULT_BODY_LIMIT,
            validator,
        );
        tasks.push(serve("image", image_listener, image_app));
        Ok(Cloud {
            identity,
            identity_addr: addr,
            identity_url: url,
            images,
            image_addr,
            image_url,
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
            services: catalog(&self.identity_url, &self.image_url),
            service_password: None,
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
