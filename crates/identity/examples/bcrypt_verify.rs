//! Prints the milliseconds one bcrypt verify takes at the cost given (default 12): the bound
//! of password token issue is cores ÷ this time. Used by bench/identity/run.sh.

fn main() {
    let cost: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(12);
    let hash = bcrypt::hash("bench-password", cost).unwrap_or_default();
    let rounds = 8;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let _ = bcrypt::verify("bench-password", &hash);
    }
    println!(
        "{:.1}",
        start.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds)
    );
}
