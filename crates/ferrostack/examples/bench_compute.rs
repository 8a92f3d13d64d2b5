//! The load driver of `bench/compute/run.sh`: against a running all-in-one on the fake
//! hypervisor, creates `SERVERS` servers (`networks: "none"`, microversion 2.37) from
//! `CLIENTS` concurrent clients, each polling its server until ACTIVE before it creates the
//! next (as `openstack server create --wait` does), then deletes them all the same way; then
//! reads the scheduler's per-decision timings from the server's log (`LOG`, written with
//! `ferro_compute::scheduler=debug`) and prints one Markdown table with the targets.
//!
//! Create latency is taken two ways: as the client sees it (POST sent → first poll showing
//! ACTIVE, so it includes up to one `POLL_MS`), and as the control plane recorded it (POST
//! sent → the server's `OS-SRV-USG:launched_at`, the microsecond the conductor marked it
//! ACTIVE; one clock, one machine). It measures; it does not run in the test suite.
//!
//! Environment: `IDENTITY_URL`, `COMPUTE_URL`, `IMAGE_URL`, `ADMIN_PASSWORD`, `LOG` (all
//! required); `SERVERS` [1000], `CLIENTS` [16], `HOSTS` [1000] (waited for before starting),
//! `POLL_MS` [10].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use ferro_client::{Client, password_auth};
use serde_json::json;

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is required"))
}

fn env_num(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Microseconds since the epoch of Nova's `2026-11-24T10:00:00.123456` (UTC).
fn parse_isoformat(s: &str) -> Option<i64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(str::parse::<i64>);
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let micros: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + micros)
}

/// The `p`-th percentile (nearest rank) of `v`, in the unit of `v`.
fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// One created server: its id, when its POST was sent (µs since the epoch), the POST's own
/// latency and the latency until a poll saw it ACTIVE (ms).
struct Created {
    id: String,
    posted_at: i64,
    post_ms: f64,
    active_ms: f64,
}

async fn wait_hosts(nova: &Client, hosts: usize) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    loop {
        let r = nova.get("/os-hypervisors/statistics").await?;
        let count = r.body["hypervisor_statistics"]["count"]
            .as_u64()
            .unwrap_or(0);
        if count as usize >= hosts {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("only {count} of {hosts} hosts registered after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn prepare(
    admin: &Client,
    nova: &Client,
    image_url: &str,
) -> anyhow::Result<(String, String)> {
    let glance = admin.clone_with_base(image_url);
    let r = glance
        .post(
            "/v2/images",
            &json!({"name": "bench", "disk_format": "qcow2", "container_format": "bare",
                    "visibility": "public"}),
        )
        .await?;
    let image = r.body["id"].as_str().context("image create")?.to_string();
    let up = reqwest::Client::new()
        .put(format!("{image_url}/v2/images/{image}/file"))
        .header("X-Auth-Token", admin.token.clone().unwrap_or_default())
        .header("Content-Type", "application/octet-stream")
        .body(vec![7u8; 1024])
        .send()
        .await?;
    if up.status().as_u16() != 204 {
        bail!("image upload answered {}", up.status());
    }
    let f = nova
        .post(
            "/flavors",
            &json!({"flavor": {"name": format!("bench-{}", now_micros()), "vcpus": 1, "ram": 64,
                    "disk": 1}}),
        )
        .await?;
    let flavor = f.body["flavor"]["id"]
        .as_str()
        .context("flavor create")?
        .to_string();
    Ok((image, flavor))
}

async fn create_all(
    nova: &Client,
    image: &str,
    flavor: &str,
    servers: usize,
    clients: usize,
    poll: Duration,
) -> anyhow::Result<(Vec<Created>, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (nova, next) = (nova.clone(), next.clone());
        let (image, flavor) = (image.to_string(), flavor.to_string());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= servers {
                    return Ok::<_, anyhow::Error>(done);
                }
                let body = json!({"server": {"name": format!("bench-{n}"), "imageRef": image,
                    "flavorRef": flavor, "networks": "none"}});
                let posted_at = now_micros();
                let sent = Instant::now();
                let r = nova.post("/servers", &body).await?;
                let post_ms = sent.elapsed().as_secs_f64() * 1e3;
                if r.status != 202 {
                    bail!("server create answered {}: {}", r.status, r.body);
                }
                let id = r.body["server"]["id"]
                    .as_str()
                    .context("server id")?
                    .to_string();
                let active_ms = loop {
                    let s = nova.get(&format!("/servers/{id}")).await?;
                    match s.body["server"]["status"].as_str() {
                        Some("ACTIVE") => break sent.elapsed().as_secs_f64() * 1e3,
                        Some("ERROR") => bail!("server {id} went to ERROR: {}", s.body),
                        _ => tokio::time::sleep(poll).await,
                    }
                };
                done.push(Created {
                    id,
                    posted_at,
                    post_ms,
                    active_ms,
                });
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, t0.elapsed().as_secs_f64()))
}

/// POST sent → `launched_at` for every server, read from the detailed list (ms).
async fn control_plane_ms(nova: &Client, created: &[Created]) -> anyhow::Result<Vec<f64>> {
    let mut launched = std::collections::HashMap::new();
    let mut marker: Option<String> = None;
    loop {
        let path = match &marker {
            Some(m) => format!("/servers/detail?limit=1000&marker={m}"),
            None => "/servers/detail?limit=1000".to_string(),
        };
        let r = nova.get(&path).await?;
        let page = r.body["servers"].as_array().cloned().unwrap_or_default();
        for s in &page {
            if let (Some(id), Some(at)) = (
                s["id"].as_str(),
                s["OS-SRV-USG:launched_at"]
                    .as_str()
                    .and_then(parse_isoformat),
            ) {
                launched.insert(id.to_string(), at);
            }
        }
        match page.last().and_then(|s| s["id"].as_str()) {
            Some(last) if page.len() == 1000 => marker = Some(last.to_string()),
            _ => break,
        }
    }
    Ok(created
        .iter()
        .filter_map(|c| {
            launched
                .get(&c.id)
                .map(|at| (at - c.posted_at) as f64 / 1e3)
        })
        .collect())
}

async fn delete_all(
    nova: &Client,
    ids: Vec<String>,
    clients: usize,
    poll: Duration,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, f64)> {
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (nova, next, ids) = (nova.clone(), next.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let (mut req, mut gone) = (Vec::new(), Vec::new());
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(n) else {
                    return Ok::<_, anyhow::Error>((req, gone));
                };
                let sent = Instant::now();
                let r = nova.delete(&format!("/servers/{id}")).await?;
                req.push(sent.elapsed().as_secs_f64() * 1e3);
                if r.status != 204 {
                    bail!("server delete answered {}: {}", r.status, r.body);
                }
                loop {
                    if nova.get(&format!("/servers/{id}")).await?.status == 404 {
                        gone.push(sent.elapsed().as_secs_f64() * 1e3);
                        break;
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        }));
    }
    let (mut req, mut gone) = (Vec::new(), Vec::new());
    for t in tasks {
        let (r, g) = t.await??;
        req.extend(r);
        gone.extend(g);
    }
    Ok((req, gone, t0.elapsed().as_secs_f64()))
}

/// The value of `key=` in one log line, ANSI colours removed.
fn field(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The scheduler's decisions in the server log: (refreshing the host view, until chosen,
/// total) in ms, the hosts that passed the filters, and the claims placement refused.
fn scheduler_decisions(log: &str) -> anyhow::Result<(Vec<[f64; 3]>, Vec<f64>, f64)> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {log}"))?;
    let mut out = Vec::new();
    let mut counts = Vec::new();
    let mut refused = 0.0;
    for raw in text.lines().filter(|l| l.contains("scheduling decision")) {
        let line = strip_ansi(raw);
        if let (Some(r), Some(c), Some(t)) = (
            field(&line, "refresh_us"),
            field(&line, "chosen_us"),
            field(&line, "total_us"),
        ) {
            out.push([r / 1e3, c / 1e3, t / 1e3]);
            counts.extend(field(&line, "candidates"));
            refused += field(&line, "refused").unwrap_or(0.0);
        }
    }
    Ok((out, counts, refused))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One table row: `label`, the p50 and p99 of `v` (ms), the target and whether it is met.
fn row(label: &str, v: &mut [f64], target: &str, met: &str) {
    let (p50, p99) = (percentile(v, 50.0), percentile(v, 99.0));
    println!("| {label} | {p50:.2} | {p99:.2} | {target} | {met} |");
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let identity = env("IDENTITY_URL")?;
    let compute = env("COMPUTE_URL")?;
    let image_url = env("IMAGE_URL")?;
    let password = env("ADMIN_PASSWORD")?;
    let log = env("LOG")?;
    let servers = env_num("SERVERS", 1000)?;
    let clients = env_num("CLIENTS", 16)?;
    let hosts = env_num("HOSTS", 1000)?;
    let poll = Duration::from_millis(env_num("POLL_MS", 10)? as u64);

    // Identity answers before the all-in-one's bootstrap has set the admin password.
    let auth = password_auth("admin", "Default", &password, Some("admin"));
    let mut tries = 0;
    let (admin, token) = loop {
        match Client::login(&identity, &auth).await {
            Ok(ok) => break ok,
            Err(e) if tries >= 100 => return Err(e.into()),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let project = token["token"]["project"]["id"]
        .as_str()
        .context("project id")?
        .to_string();
    let nova = admin
        .clone_with_base(&format!("{compute}/v2.1"))
        .with_header("OpenStack-API-Version", "compute 2.37");

    let registered = wait_hosts(&nova, hosts).await?;
    eprintln!("{hosts} hosts registered after {registered:.1} s");
    let q = nova
        .put(
            &format!("/os-quota-sets/{project}"),
            Some(&json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}})),
        )
        .await?;
    if q.status != 200 {
        bail!("quota update answered {}: {}", q.status, q.body);
    }
    let (image, flavor) = prepare(&admin, &nova, &image_url).await?;

    eprintln!("creating {servers} servers from {clients} clients");
    let (created, create_wall) = create_all(&nova, &image, &flavor, servers, clients, poll).await?;
    let mut cp = control_plane_ms(&nova, &created).await?;
    let mut post: Vec<f64> = created.iter().map(|c| c.post_ms).collect();
    let mut active: Vec<f64> = created.iter().map(|c| c.active_ms).collect();
    eprintln!("all ACTIVE after {create_wall:.2} s; deleting");
    let ids = created.into_iter().map(|c| c.id).collect();
    let (mut del_req, mut del_gone, delete_wall) = delete_all(&nova, ids, clients, poll).await?;
    let left = nova.get("/servers").await?.body["servers"]
        .as_array()
        .map_or(0, Vec::len);
    if left != 0 {
        bail!("{left} servers left after the deletes");
    }

    let (decisions, mut counts, refused) = scheduler_decisions(&log)?;
    let col = |k: usize| decisions.iter().map(|d| d[k]).collect::<Vec<f64>>();
    let (mut refresh, mut chosen, mut st) = (col(0), col(1), col(2));
    let refreshes = refresh.iter().filter(|&&r| r > 0.0).count();

    let cp50 = percentile(&mut cp, 50.0);
    let st50 = percentile(&mut st, 50.0);
    println!(
        "| {servers} servers, {clients} clients, {hosts} fake hosts (ms) | p50 | p99 | target | met |"
    );
    println!("|---|---:|---:|---|---|");
    let create = "create, control plane (POST sent → `launched_at`)";
    row(create, &mut cp, "p50 < 20 ms", met(cp50 < 20.0));
    let seen = format!("create as a client sees it (POST → poll shows ACTIVE, poll {poll:?})");
    row(&seen, &mut active, "", "");
    row("`POST /servers` (202)", &mut post, "", "");
    let decision = format!(
        "scheduler decision ({} decisions, {:.0} candidates each at p50)",
        st.len(),
        percentile(&mut counts, 50.0)
    );
    row(&decision, &mut st, "p50 < 1 ms", met(st50 < 1.0));
    row(
        "… until chosen in the host view (cumulative)",
        &mut chosen,
        "",
        "",
    );
    row(
        "… of which refreshing the view from placement",
        &mut refresh,
        "",
        "",
    );
    row("`DELETE /servers/{id}` (204)", &mut del_req, "", "");
    row(
        "delete as a client sees it (DELETE → poll answers 404)",
        &mut del_gone,
        "",
        "",
    );
    println!();
    println!(
        "- wall time until all {servers} ACTIVE: {create_wall:.2} s ({:.0} servers/s)",
        servers as f64 / create_wall
    );
    println!(
        "- wall time until all deleted: {delete_wall:.2} s ({:.0} servers/s)",
        servers as f64 / delete_wall
    );
    println!(
        "- decisions that refreshed the host view from placement (or waited for a refresh): \
         {refreshes} of {}; claims placement refused: {refused:.0}",
        st.len()
    );
    println!("- {hosts} hosts registered in placement and reporting after {registered:.1} s");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isoformat_parses_to_micros() {
        assert_eq!(
            parse_isoformat("1970-01-01T00:00:01.000002"),
            Some(1_000_002)
        );
        assert_eq!(
            parse_isoformat("2026-11-24T10:00:00.123456"),
            Some(1_795_514_400_123_456)
        );
    }

    #[test]
    fn fields_are_read_from_a_coloured_line() {
        let l = strip_ansi("x \x1b[3mtotal_us\x1b[0m\x1b[2m=\x1b[0m812 y");
        assert_eq!(field(&l, "total_us"), Some(812.0));
    }
}
