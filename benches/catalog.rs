//! The whole catalog on the two-server lab, once with the default concurrency and once with
//! `--jobs 1`: prints both wall times, their ratio and plugfest's own CPU time.
//! Targets (issue 3): ≤ 30 s wall on 2 cores, ≥ 5× faster than `--jobs 1`.
//!
//! Run as root: `cargo bench --bench catalog` (brings the lab up if it is not).
//! `PLUGFEST_BENCH_ARGS="scenarios/messaging"` narrows what runs.

use nix::sys::resource::{getrusage, UsageWho};
use std::process::Command;
use std::time::{Duration, Instant};

struct Sample {
    wall: Duration,
    cpu: Duration,
    exit: Option<i32>,
    summary: String,
}

fn cpu_of_children() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let user = usage.user_time();
    let system = usage.system_time();
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Duration::from_micros(micros(user) + micros(system))
}

fn plugfest() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plugfest"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn run(jobs: Option<usize>, extra: &[String]) -> Sample {
    let reports = std::env::temp_dir().join("plugfest-bench");
    let mut cmd = plugfest();
    cmd.arg("run").arg("--reports").arg(&reports).args(extra);
    if let Some(j) = jobs {
        cmd.arg("--jobs").arg(j.to_string());
    }
    let cpu_before = cpu_of_children();
    let started = Instant::now();
    let out = cmd.output().expect("run plugfest");
    let wall = started.elapsed();
    let cpu = cpu_of_children().saturating_sub(cpu_before);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = match stdout.lines().rev().find(|l| l.contains(" passed, ")) {
        Some(line) => line.to_string(),
        // No run happened (a bad scenario, the lab down): say why instead of timing nothing.
        None => format!("no summary line; plugfest said: {}", String::from_utf8_lossy(&out.stderr).trim()),
    };
    Sample { wall, cpu, exit: out.status.code(), summary }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let extra: Vec<String> = std::env::var("PLUGFEST_BENCH_ARGS")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let up = plugfest().args(["lab", "up"]).output().expect("plugfest lab up");
    if !up.status.success() {
        eprintln!("plugfest lab up failed:\n{}", String::from_utf8_lossy(&up.stderr));
        std::process::exit(1);
    }
    // One warm-up run so both measurements see established s2s links and warm caches alike.
    let _ = run(None, &extra);
    let parallel = run(None, &extra);
    let serial = run(Some(1), &extra);
    let show = |name: &str, s: &Sample| {
        println!(
            "{name:<22} wall {:>7.2}s   plugfest CPU {:>6.2}s   exit {:?}   {}",
            s.wall.as_secs_f64(),
            s.cpu.as_secs_f64(),
            s.exit,
            s.summary
        );
    };
    println!("catalog on the local lab ({} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    show("default concurrency", &parallel);
    show("--jobs 1", &serial);
    let ratio = serial.wall.as_secs_f64() / parallel.wall.as_secs_f64().max(1e-9);
    println!("speed-up {ratio:.1}x (target ≥ 5x); wall {:.1}s (target ≤ 30s)", parallel.wall.as_secs_f64());
}
