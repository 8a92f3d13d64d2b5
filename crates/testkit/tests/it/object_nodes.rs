//! Object storage across storage nodes: a proxy with no devices of its own in front of
//! three `StorageNode`s (one device each, their own ports), as the issue's "three storage
//! nodes" shows it: a node down during 1,000 writes, back within two replicator passes;
//! corrupt copies quarantined and restored, never served.

use std::path::{Path, PathBuf};

use ferro_object_ring::RingBuilder;
use ferro_testkit::TestCloud;
use ferrostack::{Config, StorageNode};
use reqwest::StatusCode;

/// A free port on 127.0.0.1 (the ring names the nodes' ports before they start).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Account, container and object rings over `nodes` (device `n<i>` at 127.0.0.1:<port>,
/// one zone each), 3 replicas.
fn build_rings(dir: &Path, ports: &[u16]) {
    for name in ["account", "container", "object"] {
        let mut b = RingBuilder::new(6, 3, 0).unwrap();
        for (i, port) in ports.iter().enumerate() {
            let dev = format!("n{}", i + 1);
            b.add_device(1, i as u32 + 1, "127.0.0.1", *port, &dev, 100.0)
                .unwrap();
        }
        b.rebalance().unwrap();
        b.ring()
            .unwrap()
            .save(&dir.join(format!("{name}.ring")))
            .unwrap();
    }
}

/// Node `i`'s configuration: its own state dir and device `n<i>`, the shared rings.
fn node_config(root: &Path, rings: &Path, i: usize, port: u16) -> Config {
    let mut c = Config {
        state_dir: root.join(format!("node{i}")),
        ..Config::default()
    };
    c.object.rings_dir = rings.display().to_string();
    c.object.devices = vec![format!("n{i}")];
    c.object.node_addresses = vec![];
    c.object.storage_port = port;
    // The test runs the passes itself.
    c.object.replicator_interval = 3600;
    c.object.auditor_interval = 3600;
    c.object.auditor_bytes_per_second = 0;
    c
}

/// The `.data` file of the object in `dir`, if any.
fn data_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "data"))
}

fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

struct Cluster {
    root: tempfile::TempDir,
    rings: PathBuf,
    ports: Vec<u16>,
    nodes: Vec<Option<StorageNode>>,
}

impl Cluster {
    /// Node `i`'s (1-based) device directory.
    fn device(&self, i: usize) -> PathBuf {
        self.root
            .path()
            .join(format!("node{i}/object-devices/n{i}"))
    }

    async fn start(&mut self, i: usize) {
        let c = node_config(self.root.path(), &self.rings, i, self.ports[i - 1]);
        self.nodes[i - 1] = Some(StorageNode::start(&c).await.unwrap());
    }

    async fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i - 1].take() {
            n.stop().await;
        }
    }

    fn node(&self, i: usize) -> &StorageNode {
        self.nodes[i - 1].as_ref().unwrap()
    }

    /// One replicator pass on every running node.
    async fn replicate(&self) -> usize {
        let mut pushed = 0;
        for n in self.nodes.iter().flatten() {
            pushed += n.store.replicate_once().await.unwrap().files_pushed;
        }
        pushed
    }

    /// On which nodes (1-based) the object in `rel` has its data.
    fn holders(&self, rel: &Path) -> Vec<usize> {
        (1..=3)
            .filter(|i| data_file(&self.device(*i).join(rel)).is_some())
            .collect()
    }
}

#[tokio::test]
async fn three_storage_nodes_survive_a_node_down_and_corrupt_copies() {
    let root = tempfile::tempdir().unwrap();
    let rings = root.path().join("rings");
    std::fs::create_dir_all(&rings).unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    build_rings(&rings, &ports);
    let mut cluster = Cluster {
        root,
        rings: rings.clone(),
        ports,
        nodes: vec![None, None, None],
    };
    for i in 1..=3 {
        cluster.start(i).await;
    }
    // The proxy holds no device: every request goes to the nodes' storage servers.
    let c = TestCloud::start_with(|cfg| {
        cfg.object.rings_dir = rings.display().to_string();
        cfg.object.devices = vec![];
        cfg.object.node_addresses = vec![];
        cfg.object.replicator_interval = 3600;
        cfg.object.auditor_interval = 3600;
    })
    .await
    .unwrap();
    let store = c.cloud.object_store.clone();
    let http = reqwest::Client::new();
    let account = format!(
        "AUTH_{}",
        c.admin_token["token"]["project"]["id"].as_str().unwrap()
    );
    let base = format!("{}/v1/{account}", c.object_url);
    let token = c.admin.token.clone().unwrap();
    let req = |m: reqwest::Method, path: &str| {
        http.request(m, format!("{base}/{path}"))
            .header("X-Auth-Token", &token)
    };
    let r = req(reqwest::Method::PUT, "c").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Node 3 is down while 1,000 objects are written: every write succeeds on a quorum.
    cluster.stop(3).await;
    let names: Vec<String> = (0..1000).map(|i| format!("obj/{i:04}")).collect();
    for n in &names {
        let r = req(reqwest::Method::PUT, &format!("c/{n}"))
            .body(format!("payload of {n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{n}");
    }
    let rel = |n: &str| store.object_nodes(&account, "c", n).2;
    assert!(names.iter().all(|n| cluster.holders(&rel(n)) == vec![1, 2]));

    // Back up: within two passes every object has its three replicas.
    cluster.start(3).await;
    for _ in 0..2 {
        cluster.replicate().await;
    }
    for n in &names {
        assert_eq!(cluster.holders(&rel(n)), vec![1, 2, 3], "{n}");
    }
    assert_eq!(
        cluster.replicate().await,
        0,
        "a converged cluster pushes nothing"
    );

    // A corrupt copy on the object's first primary, read by GETs: the client always gets
    // the right bytes, the node quarantines the copy, the replicator restores it.
    let (primaries, _, rel0) = store.object_nodes(&account, "c", &names[0]);
    let first: usize = primaries[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches('n')
        .parse()
        .unwrap();
    corrupt(&data_file(&cluster.device(first).join(&rel0)).unwrap());
    for _ in 0..3 {
        let r = req(reqwest::Method::GET, &format!("c/{}", names[0]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), format!("payload of {}", names[0]));
    }
    assert!(
        data_file(&cluster.device(first).join(&rel0)).is_none(),
        "quarantined"
    );
    assert!(cluster.device(first).join("quarantined/objects").is_dir());
    cluster.replicate().await;
    assert_eq!(cluster.holders(&rel0), vec![1, 2, 3]);

    // A corrupt copy nobody reads: that node's auditor finds it, a peer restores it.
    let rel1 = rel(&names[1]);
    corrupt(&data_file(&cluster.device(2).join(&rel1)).unwrap());
    let audit = cluster.node(2).store.audit_once().await.unwrap();
    assert_eq!(audit.quarantined, 1, "{audit:?}");
    assert_eq!(audit.objects_checked, 1000);
    assert_eq!(cluster.holders(&rel1), vec![1, 3]);
    cluster.replicate().await;
    assert_eq!(cluster.holders(&rel1), vec![1, 2, 3]);

    // A large object streams through the nodes both ways, whole and by range; DELETE
    // and POST reach them too.
    let big: Vec<u8> = (0..5 << 20).map(|i: u32| (i % 251) as u8).collect();
    let r = req(reqwest::Method::PUT, "c/big")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(cluster.holders(&rel("big")), vec![1, 2, 3]);
    let r = req(reqwest::Method::GET, "c/big").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), big.as_slice());
    let r = req(reqwest::Method::GET, "c/big")
        .header("Range", "bytes=3000000-3000009")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &big[3_000_000..3_000_010]
    );
    let r = req(reqwest::Method::POST, "c/big")
        .header("X-Object-Meta-Color", "blue")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = req(reqwest::Method::HEAD, "c/big").send().await.unwrap();
    assert_eq!(r.headers()["x-object-meta-color"], "blue");
    let r = req(reqwest::Method::DELETE, "c/big").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = req(reqwest::Method::GET, "c/big").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(cluster.holders(&rel("big")).is_empty());

    // Node 3's container database missed the 1,000 rows while it was down; the database
    // replicator merged them in: every replica counts and lists them all.
    let ring = ferro_object_ring::Ring::load(&rings.join("container.ring")).unwrap();
    let salt = ferro_object_ring::HashPath::new("", "ferrostack");
    let part = ring.get_part(&salt, &account, Some("c"), None);
    for (i, port) in cluster.ports.iter().enumerate() {
        // Each node's own replica, through its storage server.
        let url = format!("http://127.0.0.1:{port}/n{}/{part}/{account}/c", i + 1);
        let r = http
            .get(url)
            .header("X-Backend-Stat-Only", "true")
            .send()
            .await
            .unwrap();
        let stat: serde_json::Value = r.json().await.unwrap();
        assert_eq!(stat["object_count"], 1000, "node {}", i + 1);
    }
    let r = req(reqwest::Method::GET, "c?format=json&limit=10000")
        .send()
        .await
        .unwrap();
    let listed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1000);

    // A node refuses a device it does not hold.
    let foreign = format!("http://127.0.0.1:{}/n2/0/{account}", cluster.ports[0]);
    let r = http.get(foreign).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 507);
    for i in 1..=3 {
        cluster.stop(i).await;
    }
}
