//! How fast this machine computes the two digests Glance keeps for every image (md5 and
//! sha512), one core each: the bound on upload throughput that `bench/image` compares against.
//!
//! `cargo run --release -p ferro-image --example hash_speed -- [MiB]`

use std::time::Instant;

use sha2::Digest as _;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let chunk = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let mut md5 = md5::Md5::default();
    for _ in 0..mib {
        md5::Digest::update(&mut md5, &chunk);
    }
    let _ = md5::Digest::finalize(md5);
    let md5_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut sha = sha2::Sha512::new();
    for _ in 0..mib {
        sha.update(&chunk);
    }
    let _ = sha.finalize();
    let sha_s = t.elapsed().as_secs_f64();
    let mbs = |s: f64| mib as f64 * 1.048576 / s;
    println!("md5 {:.0} MB/s, sha512 {:.0} MB/s", mbs(md5_s), mbs(sha_s));
}
