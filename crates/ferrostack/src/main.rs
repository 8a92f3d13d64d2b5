//! `ferrostack`: every role of the cloud in one binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ferrostack::{Cloud, Config};

#[derive(Parser)]
#[command(
    name = "ferrostack",
    version,
    about = "An OpenStack-compatible cloud in one binary"
)]
struct Cli {
    /// Configuration file (TOML); default /etc/ferrostack/ferrostack.toml when present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// State directory (database, keys, client files).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Every service in one process on the embedded database; bootstraps on first start.
    AllInOne {
        /// The admin password on first start (default: generated and written to the state dir).
        #[arg(long, env = "FERROSTACK_ADMIN_PASSWORD")]
        admin_password: Option<String>,
        /// The hypervisor driver of the in-process compute agents.
        #[arg(long, value_parser = ["fake", "qemu"])]
        compute_driver: Option<String>,
        /// How many in-process compute agents (hosts fake-0, fake-1... or qemu-0...) to run.
        #[arg(long)]
        fake_hosts: Option<usize>,
    },
    /// The API services only, on an existing (bootstrapped) database.
    Serve,
    /// This host's network agent (bridges, VXLAN, DHCP, metadata proxy, security groups)
    /// on the configured bus; `[network_agent]` names the host, prefix and tunnel address.
    NetworkAgent {
        /// Remove everything the agent made on this host (its prefix) and exit.
        #[arg(long)]
        purge: bool,
    },
    /// This host's object storage devices (`[object]` devices under devices_root) served
    /// to the proxies and peers on `[object]` storage_bind:storage_port, with their
    /// replicator and auditor; needs the ring files built by `ferrostack ring`.
    StorageNode,
    /// This host's compute agent (as nova-compute) on the configured bus, with the
    /// configured driver; `[compute] host` names the host (default: the hostname).
    ComputeAgent,
    /// Creates the default domain, admin project and user, roles and catalog (idempotent).
    Bootstrap {
        #[arg(long, env = "FERROSTACK_ADMIN_PASSWORD")]
        admin_password: String,
    },
    /// Database tasks.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Fernet key repository tasks.
    Fernet {
        #[command(subcommand)]
        command: FernetCommand,
    },
    /// Swift ring builder (as swift-ring-builder): `ring object create 10 3 1`,
    /// `ring object add r1z1-127.0.0.1:6200/sdb1 100`, `ring object rebalance`.
    Ring {
        /// Where the builder and ring files live (default `<state_dir>/rings`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// `account`, `container` or `object`.
        name: String,
        #[command(subcommand)]
        command: RingCommand,
    },
}

#[derive(Subcommand)]
enum RingCommand {
    /// Creates the builder: 2^part_power partitions, each on `replicas` devices.
    Create {
        part_power: u8,
        replicas: usize,
        min_part_hours: u32,
    },
    /// Adds a device: `r<region>z<zone>-<ip>:<port>/<device> <weight>`.
    Add { device: String, weight: f64 },
    /// Changes a device's weight.
    SetWeight { id: u32, weight: f64 },
    /// Marks a device for removal; its partitions move at the next rebalance.
    Remove { id: u32 },
    /// Reassigns partitions and writes `<name>.ring`.
    Rebalance,
    /// Prints the builder's parameters and devices.
    Show,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Applies every pending migration.
    Migrate,
}

#[derive(Subcommand)]
enum FernetCommand {
    /// Creates the key repository if missing.
    Setup,
    /// Promotes the staged key, stages a new one, drops the oldest beyond max_active_keys.
    Rotate,
}

/// Lets an agent's tasks run until the process is asked to stop.
async fn run_until_shutdown(tasks: Vec<tokio::task::JoinHandle<()>>) {
    wait_for_shutdown().await;
    for t in tasks {
        t.abort();
    }
}

async fn storage_node(config: &Config) -> anyhow::Result<()> {
    let node = ferrostack::StorageNode::start(config).await?;
    eprintln!(
        "ferrostack storage-node: devices {:?} at {}",
        config.object.devices, node.addr
    );
    wait_for_shutdown().await;
    node.stop().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERROSTACK_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(dir) = cli.state_dir {
        config.state_dir = dir;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(
        cli.command.unwrap_or(Command::AllInOne {
            admin_password: None,
            compute_driver: None,
            fake_hosts: None,
        }),
        config,
    ))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::AllInOne {
            admin_password,
            compute_driver,
            fake_hosts,
        } => {
            let mut config = config;
            if let Some(d) = compute_driver {
                config.compute.driver = d;
            }
            if let Some(n) = fake_hosts {
                config.compute.fake_hosts = n;
            }
            let started = std::time::Instant::now();
            let cloud = Cloud::start(&config).await?;
            let first = ferro_identity::db::project_by_name(
                &mut &cloud.identity.db,
                "default",
                &config.bootstrap.admin_project,
            )
            .await?
            .is_none();
            if first {
                let password = admin_password
                    .or_else(|| {
                        Some(config.bootstrap.admin_password.clone()).filter(|p| !p.is_empty())
                    })
                    .unwrap_or_else(ferrostack::generate_password);
                cloud.bootstrap(&config, &password).await?;
                ferrostack::write_client_files(
                    &config.state_dir,
                    &config,
                    &cloud.identity_url,
                    &password,
                )?;
            }
            eprintln!(
                "ferrostack all-in-one: identity at {}/v3, image at {} (ready in {} ms)\n  clouds.yaml and admin-openrc: {}",
                cloud.identity_url,
                cloud.image_url,
                started.elapsed().as_millis(),
                config.state_dir.display()
            );
            wait_for_shutdown().await;
            cloud.stop();
        }
        Command::NetworkAgent { purge } => {
            if purge {
                ferrostack::network_plane::purge(&config).await?;
                return Ok(());
            }
            let tasks = ferrostack::network_plane::run_standalone(&config).await?;
            eprintln!(
                "ferrostack network-agent: host {}",
                ferrostack::network_plane::host(&config)
            );
            run_until_shutdown(tasks).await;
        }
        Command::StorageNode => storage_node(&config).await?,
        Command::ComputeAgent => {
            let tasks = ferrostack::compute_plane::run_standalone(&config).await?;
            eprintln!(
                "ferrostack compute-agent: host {}",
                ferrostack::compute_plane::standalone_host(&config)?
            );
            run_until_shutdown(tasks).await;
        }
        Command::Serve => {
            let cloud = Cloud::start(&config).await?;
            eprintln!(
                "ferrostack serve: identity at {}/v3, image at {}",
                cloud.identity_url, cloud.image_url
            );
            wait_for_shutdown().await;
            cloud.stop();
        }
        Command::Bootstrap { admin_password } => {
            let mut c = config.clone();
            c.identity.port = 0;
            c.image.port = 0;
            c.compute.port = 0;
            c.placement.port = 0;
            c.network.port = 0;
            c.object.port = 0;
            let cloud = Cloud::start(&c).await?;
            let url = config.identity_url(config.identity.port);
            let p = ferro_identity::bootstrap::BootstrapParams {
                admin_user: config.bootstrap.admin_user.clone(),
                admin_password,
                admin_project: config.bootstrap.admin_project.clone(),
                region: config.bootstrap.region.clone(),
                services: [
                    ferrostack::catalog(
                        &url,
                        &config.image_url(config.image.port),
                        &config.placement_url(config.placement.port),
                    ),
                    vec![ferrostack::compute_catalog_entry(
                        &config.compute_url(config.compute.port),
                    )],
                    vec![ferrostack::network_catalog_entry(
                        &config.network_url(config.network.port),
                    )],
                    vec![ferrostack::object_catalog_entry(
                        &config.object_url(config.object.port),
                    )],
                ]
                .concat(),
                service_password: Some(ferrostack::compute_plane::service_password(&config)?),
            };
            let b = ferro_identity::bootstrap::bootstrap(&cloud.identity, &p).await?;
            println!(
                "admin user {} on project {}",
                b.admin_user_id, b.admin_project_id
            );
            cloud.stop();
        }
        Command::Db {
            command: DbCommand::Migrate,
        } => {
            ferrostack::open_database(&config).await?;
            println!("migrations applied to {}", config.database_url());
        }
        Command::Ring { dir, name, command } => {
            use ferrostack::rings;
            let dir = dir.unwrap_or_else(|| config.state_dir.join("rings"));
            let out = match command {
                RingCommand::Create {
                    part_power,
                    replicas,
                    min_part_hours,
                } => rings::create(&dir, &name, part_power, replicas, min_part_hours)?,
                RingCommand::Add { device, weight } => rings::add(&dir, &name, &device, weight)?,
                RingCommand::SetWeight { id, weight } => {
                    rings::set_weight(&dir, &name, id, weight)?
                }
                RingCommand::Remove { id } => rings::remove(&dir, &name, id)?,
                RingCommand::Rebalance => rings::rebalance(&dir, &name)?,
                RingCommand::Show => rings::show(&dir, &name)?,
            };
            println!("{out}");
        }
        Command::Fernet { command } => {
            let dir = config.state_dir.join("fernet-keys");
            match command {
                FernetCommand::Setup => ferro_identity::token::setup_repository(&dir)?,
                FernetCommand::Rotate => {
                    ferro_identity::token::setup_repository(&dir)?;
                    ferro_identity::token::rotate_repository(
                        &dir,
                        config.identity.max_active_keys,
                    )?;
                }
            }
            println!("fernet keys in {}", dir.display());
        }
    }
    Ok(())
}

async fn wait_for_shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
