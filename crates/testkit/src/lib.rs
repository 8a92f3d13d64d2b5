//! `TestCloud`: a whole FerroStack in-process on ephemeral ports, for tests.
//!
//! Each cloud gets its own temporary state directory and its own database: an SQLite file by
//! default, or a fresh PostgreSQL / MariaDB database when `FERRO_TEST_DB=postgres|mysql`
//! (server URLs from `FERRO_TEST_PG_URL` / `FERRO_TEST_MYSQL_URL`), dropped again when the
//! cloud is dropped. `FERRO_TEST_BUS=amqp` puts the compute plane's bus on RabbitMQ
//! (`FERRO_TEST_AMQP_URL`). Passwords hash at bcrypt cost 4 unless a test asks for another.

use ferro_client::{Client, password_auth};
use ferrostack::{Cloud, Config};
use serde_json::{Value, json};

pub use ferro_client;

/// The admin's password in every test cloud.
pub const ADMIN_PASSWORD: &str = "secret-admin";

/// A running test cloud and a logged-in admin client.
pub struct TestCloud {
    pub cloud: Cloud,
    pub config: Config,
    /// Identity's base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    /// The image API's base URL (`http://127.0.0.1:<port>`).
    pub image_url: String,
    /// The compute API's base URL without the version (`http://127.0.0.1:<port>`).
    pub compute_url: String,
    /// The placement API's base URL (`http://127.0.0.1:<port>`).
    pub placement_url: String,
    /// The network API's base URL without the version (`http://127.0.0.1:<port>`).
    pub network_url: String,
    /// The object proxy's base URL without `/v1` (`http://127.0.0.1:<port>`).
    pub object_url: String,
    /// The compute metadata API's base URL (`http://127.0.0.1:<port>`).
    pub metadata_url: String,
    /// Project-scoped admin client.
    pub admin: Client,
    pub admin_token: Value,
    dir: tempfile::TempDir,
    database: Option<ScratchDatabase>,
}

/// A database made for one test on a shared server; dropped with the test cloud.
struct ScratchDatabase {
    admin_url: String,
    name: String,
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs on the test's runtime thread, which is blocked until the database is gone,
        // so the cloud's own tasks cannot finish a transaction they hold open. PostgreSQL's
        // `WITH (FORCE)` ends those sessions; MariaDB would wait on their metadata locks for
        // `lock_wait_timeout` (a year), so their connections are killed first. A drop that
        // still takes longer than a minute is abandoned: a leaked scratch database is better
        // than a hung test run.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let drop = async {
                    let db = ferro_db::Db::connect(&url).await.ok()?;
                    let sql = if url.starts_with("postgres") {
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                    } else {
                        let _ = db
                            .execute(&ferro_db::Sql::new("SET SESSION lock_wait_timeout = 30"))
                            .await;
                        kill_mysql_sessions(&db, &name).await;
                        format!("DROP DATABASE IF EXISTS {name}")
                    };
                    let _ = db.execute(&ferro_db::Sql::new(&sql)).await;
                    db.close().await;
                    Some(())
                };
                let _ = tokio::time::timeout(std::time::Duration::from_secs(60), drop).await;
            });
        })
        .join();
    }
}

/// Kills the MariaDB connections using database `name`, except this one.
async fn kill_mysql_sessions(db: &ferro_db::Db, name: &str) {
    let query = ferro_db::Sql::new(
        "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
         WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .arg(name);
    let sessions: Vec<(i64,)> = db.fetch_all(&query).await.unwrap_or_default();
    for (id,) in sessions {
        let _ = db
            .execute(&ferro_db::Sql::new(&format!("KILL CONNECTION {id}")))
            .await;
    }
}

async fn scratch_database() -> anyhow::Result<Option<(String, ScratchDatabase)>> {
    let engine = std::env::var("FERRO_TEST_DB").unwrap_or_default();
    let (admin_url, base) = match engine.as_str() {
        "" | "sqlite" => return Ok(None),
        "postgres" => {
            let u = std::env::var("FERRO_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            (format!("{u}/postgres"), u)
        }
        "mysql" | "mariadb" => {
            let u = std::env::var("FERRO_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
            // No database in the URL: the test role may only see its own scratch databases.
            (u.clone(), u)
        }
        other => anyhow::bail!("FERRO_TEST_DB={other}: expected sqlite, postgres or mysql"),
    };
    let name = format!("ferro_{}", ferro_common::new_hex_id());
    let db = ferro_db::Db::connect(&admin_url).await?;
    db.execute(&ferro_db::Sql::new(&format!("CREATE DATABASE {name}")))
        .await?;
    db.close().await;
    Ok(Some((
        format!("{base}/{name}"),
        ScratchDatabase { admin_url, name },
    )))
}

impl TestCloud {
    /// Starts a fresh cloud and logs the admin in.
    pub async fn start() -> TestCloud {
        Self::start_with(|_| {}).await.expect("test cloud starts")
    }

    /// Starts a fresh cloud with `n` fake compute hosts (`fake-0`...).
    pub async fn with_fake_hosts(n: usize) -> TestCloud {
        Self::start_with(|c| c.compute.fake_hosts = n)
            .await
            .expect("test cloud starts")
    }

    /// The fake hypervisor of in-process host `host`.
    pub fn fake_driver(&self, host: &str) -> std::sync::Arc<ferro_virt::FakeDriver> {
        self.cloud
            .compute_plane
            .fake_drivers
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, d)| d.clone())
            .expect("no such fake host")
    }

    /// Starts a fresh cloud after `adjust` has changed its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<TestCloud> {
        let dir = tempfile::tempdir()?;
        let mut config = Config {
            state_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.identity.port = 0;
        config.image.port = 0;
        config.compute.port = 0;
        config.placement.port = 0;
        config.network.port = 0;
        config.object.port = 0;
        config.compute.metadata_port = 0;
        config.object.expirer_interval = 1;
        config.identity.bcrypt_cost = 4;
        // No compute hosts unless a test asks for them (`start_with`), so providers and
        // services other tests count stay theirs.
        config.compute.fake_hosts = 0;
        // Compute hosts are fake unless a test asks for QEMU (the dataplane tests).
        config.compute.driver = "fake".into();
        config.compute.report_interval = 1;
        // The host's network is shared by every test: only the dataplane tests touch it.
        config.network_agent.enabled = "false".into();
        let database = match scratch_database().await? {
            Some((url, scratch)) => {
                config.database.url = url;
                Some(scratch)
            }
            None => None,
        };
        // FERRO_TEST_BUS=amqp: the cloud's bus is RabbitMQ at FERRO_TEST_AMQP_URL, its
        // queues named under a prefix of its own so parallel clouds share the broker.
        if std::env::var("FERRO_TEST_BUS").as_deref() == Ok("amqp") {
            let url = std::env::var("FERRO_TEST_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
            let sep = if url.contains('?') { '&' } else { '?' };
            config.compute.bus_url = format!(
                "{url}{sep}prefix=ferrotest-{}",
                &ferro_common::new_hex_id()[..12]
            );
        }
        adjust(&mut config);
        let cloud = Cloud::start(&config).await?;
        cloud.bootstrap(&config, ADMIN_PASSWORD).await?;
        Self::logged_in(cloud, config, dir, database).await
    }

    /// Restarts the cloud on the same state directory and database (a process restart).
    pub async fn restart(self) -> anyhow::Result<TestCloud> {
        let TestCloud {
            cloud,
            mut config,
            dir,
            database,
            ..
        } = self;
        config.identity.port = 0;
        config.image.port = 0;
        config.compute.port = 0;
        config.placement.port = 0;
        config.network.port = 0;
        config.object.port = 0;
        config.compute.metadata_port = 0;
        cloud.stop();
        drop(cloud);
        let cloud = Cloud::start(&config).await?;
        Self::logged_in(cloud, config, dir, database).await
    }

    /// A test cloud around a started `cloud`, with the admin logged in.
    async fn logged_in(
        cloud: Cloud,
        config: Config,
        dir: tempfile::TempDir,
        database: Option<ScratchDatabase>,
    ) -> anyhow::Result<TestCloud> {
        let url = cloud.identity_url.clone();
        let (admin, admin_token) = Client::login(
            &url,
            &password_auth("admin", "Default", ADMIN_PASSWORD, Some("admin")),
        )
        .await?;
        let image_url = cloud.image_url.clone();
        let compute_url = cloud.compute_url.clone();
        let placement_url = cloud.placement_url.clone();
        let network_url = cloud.network_url.clone();
        let object_url = cloud.object_url.clone();
        let metadata_url = cloud.metadata_url.clone();
        Ok(TestCloud {
            cloud,
            config,
            url,
            image_url,
            compute_url,
            placement_url,
            network_url,
            object_url,
            metadata_url,
            admin,
            admin_token,
            dir,
            database,
        })
    }

    /// A client with no token.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.url)
    }

    /// Creates a project, a user with `password` and grants `role` there; returns
    /// `(project_id, user_id)`.
    pub async fn project_user(
        &self,
        project: &str,
        user: &str,
        password: &str,
        role: &str,
    ) -> (String, String) {
        let p = self
            .admin
            .post(
                "/v3/projects",
                &json!({"project": {"name": project, "domain_id": "default"}}),
            )
            .await
            .expect("post");
        assert_eq!(p.status, 201, "create project: {:?}", p.body);
        let pid = p.body["project"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let u = self
            .admin
            .post(
                "/v3/users",
                &json!({"user": {"name": user, "domain_id": "default", "password": password}}),
            )
            .await
            .expect("post");
        assert_eq!(u.status, 201, "create user: {:?}", u.body);
        let uid = u.body["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let rid = self.role_id(role).await;
        let g = self
            .admin
            .put(&format!("/v3/projects/{pid}/users/{uid}/roles/{rid}"), None)
            .await
            .expect("put");
        assert_eq!(g.status, 204, "grant: {:?}", g.body);
        (pid, uid)
    }

    /// The id of global role `name`.
    pub async fn role_id(&self, name: &str) -> String {
        let r = self
            .admin
            .get(&format!("/v3/roles?name={name}"))
            .await
            .expect("get");
        r.body["roles"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Logs `user` in with a project scope.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        project: Option<&str>,
    ) -> Result<(Client, Value), ferro_client::ClientError> {
        Client::login(
            &self.url,
            &password_auth(user, "Default", password, project),
        )
        .await
    }
}

/// What [`routed_network`] made.
pub struct RoutedNetwork {
    /// The external network and the router's address on it.
    pub external: String,
    pub gateway_ip: String,
    /// The internal network, its subnet, and the router's port on it.
    pub network: String,
    pub subnet: String,
    pub router: String,
    pub interface: String,
}

/// With the network API client `n` (admin): an external network on `external_cidr`
/// (gateway `.1`), an internal one on `internal_cidr`, both without DHCP, and a router
/// between them with its gateway on the external network and an interface on the subnet.
pub async fn routed_network(n: &Client, external_cidr: &str, internal_cidr: &str) -> RoutedNetwork {
    async fn made(n: &Client, path: &str, key: &str, body: Value) -> Value {
        let r = n.post(path, &body).await.unwrap();
        assert_eq!(r.status, 201, "{path}: {}", r.body);
        r.body[key].clone()
    }
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let external = id(&made(
        n,
        "/v2.0/networks",
        "network",
        json!({"network": {"name": "public", "router:external": true}}),
    )
    .await);
    made(
        n,
        "/v2.0/subnets",
        "subnet",
        json!({"subnet": {"network_id": external, "cidr": external_cidr, "ip_version": 4,
            "enable_dhcp": false}}),
    )
    .await;
    let network = id(&made(
        n,
        "/v2.0/networks",
        "network",
        json!({"network": {"name": "in"}}),
    )
    .await);
    let subnet = id(&made(
        n,
        "/v2.0/subnets",
        "subnet",
        json!({"subnet": {"network_id": network, "cidr": internal_cidr, "ip_version": 4,
            "enable_dhcp": false}}),
    )
    .await);
    let r = made(
        n,
        "/v2.0/routers",
        "router",
        json!({"router": {"name": "r", "external_gateway_info": {"network_id": external}}}),
    )
    .await;
    let router = id(&r);
    let gateway_ip = r["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let put = n
        .put(
            &format!("/v2.0/routers/{router}/add_router_interface"),
            Some(&json!({"subnet_id": subnet})),
        )
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", put.body);
    RoutedNetwork {
        external,
        gateway_ip,
        network,
        subnet,
        router,
        interface: put.body["port_id"].as_str().unwrap().to_string(),
    }
}
