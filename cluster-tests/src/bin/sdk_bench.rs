//! What a language binding costs: one client's checkout+checkin ops/s through each SDK against
//! the same real 3-process cluster (release build, fsync on), beside the Rust client's.
//!
//! One client at a time, closed loop, no think time: the async Rust client in this process,
//! the blocking facade the bindings sit on (also in this process), then the C library (a C
//! program, `cluster-tests/sdk-bench/bench.c`), the Python wheel (`bench.py`) and the Java
//! binding (`Bench.java`), each as its own process. `BENCH_ROUNDS` rounds (3), the clients
//! interleaved within each round since this VM drifts; the median of the rounds is printed
//! and written to `target/bench/sdk.json`. `BENCH_WARMUP_SECS` (1) and `BENCH_SECS` (5) set the
//! windows.
//!
//! `make bench-sdk` builds what it needs first: qlmd and qlm (release), libquorumlm (release),
//! the wheel (`make python-wheel`) and the jar (`make java-sdk`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_tests::bench::{env_or, write_report};
use cluster_tests::{Cluster, qlmd_binary};

use qlm_client::{CheckoutOptions, Client, SessionOptions, parse_servers};
use serde_json::json;

const FEATURE: &str = "sdk-bench";

/// The cluster serves far more seats than one client takes, so no checkout is denied.
const LICENSE: &str = "FEATURE sdk-bench vendor=test version=1.0 count=1000 expires=permanent\n";

struct Window {
    warmup: Duration,
    measured: Duration,
}

fn main() {
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let window = Window {
        warmup: Duration::from_secs_f64(env_or("BENCH_WARMUP_SECS", 1.0)),
        measured: Duration::from_secs_f64(env_or("BENCH_SECS", 5.0)),
    };
    let release = qlmd_binary().parent().map(Path::to_path_buf).expect("target/release");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let c_bench = build_c(&root, &release);
    let python = python_venv(&release);
    let java_classes = build_java(&root, &release);

    let cluster = Cluster::start_serving(3, LICENSE);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(cluster.wait_ready());
    let servers = cluster.servers();

    let clients = ["Rust (async)", "Rust (blocking facade)", "C", "Python", "Java"];
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
    for round in 1..=rounds {
        for (i, name) in clients.iter().enumerate() {
            let ops_per_s = match i {
                0 => runtime.block_on(rust_async(&servers, &window)),
                1 => rust_blocking(&servers, &window),
                2 => external(Command::new(&c_bench), &servers, &window),
                3 => {
                    let mut command = Command::new(&python);
                    command.arg(root.join("cluster-tests/sdk-bench/bench.py"));
                    external(command, &servers, &window)
                }
                _ => {
                    let mut command = Command::new("java");
                    command
                        .arg(format!("-Djna.library.path={}", release.display()))
                        .arg("-cp")
                        .arg(&java_classes)
                        .arg("Bench");
                    external(command, &servers, &window)
                }
            };
            println!("round {round}: {name:<24} {ops_per_s:>8.0} ops/s");
            figures[i].push(ops_per_s);
        }
    }
    report(&clients, &mut figures, &window, rounds);
}

async fn rust_async(servers: &str, window: &Window) -> f64 {
    let client = Client::connect(parse_servers(servers).expect("servers")).expect("client");
    let session = client.open_session(SessionOptions::from_process()).await.expect("session");
    let run = |until: Instant| {
        let session = &session;
        async move {
            let mut ops = 0u64;
            while Instant::now() < until {
                if let Ok(seat) = session.checkout(FEATURE, CheckoutOptions::default()).await
                    && seat.checkin().await.is_ok()
                {
                    ops += 1;
                }
            }
            ops
        }
    };
    run(Instant::now() + window.warmup).await;
    let start = Instant::now();
    let ops = run(start + window.measured).await;
    let _ = session.close().await;
    ops as f64 / start.elapsed().as_secs_f64()
}

fn rust_blocking(servers: &str, window: &Window) -> f64 {
    use qlm_client::blocking::{CheckoutRequest, Client};
    let client = Client::from_servers(servers).expect("client");
    let session = client.open_session(SessionOptions::from_process()).expect("session");
    let request = CheckoutRequest { count: 1, ..CheckoutRequest::default() };
    let run = |until: Instant| {
        let mut ops = 0u64;
        while Instant::now() < until {
            if let Ok(seat) = session.checkout(FEATURE, &request)
                && seat.checkin().is_ok()
            {
                ops += 1;
            }
        }
        ops
    };
    run(Instant::now() + window.warmup);
    let start = Instant::now();
    let ops = run(start + window.measured);
    let _ = session.close();
    ops as f64 / start.elapsed().as_secs_f64()
}

/// Runs one bench program (`SERVERS FEATURE WARMUP SECONDS`) and reads its `ops N seconds S`.
fn external(mut command: Command, servers: &str, window: &Window) -> f64 {
    let output = command
        .arg(servers)
        .arg(FEATURE)
        .arg(window.warmup.as_secs_f64().to_string())
        .arg(window.measured.as_secs_f64().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{command:?}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let words: Vec<&str> = text.split_whitespace().collect();
    let field = |name: &str| -> f64 {
        let at = words.iter().position(|w| *w == name).unwrap_or_else(|| panic!("{text}"));
        words[at + 1].parse().unwrap_or_else(|_| panic!("{text}"))
    };
    field("ops") / field("seconds")
}

fn build_c(root: &Path, release: &Path) -> PathBuf {
    let out = release.join("sdk-bench-c");
    let status = Command::new("cc")
        .args(["-O2", "-std=c99", "-o"])
        .arg(&out)
        .arg(root.join("cluster-tests/sdk-bench/bench.c"))
        .arg(format!("-I{}", root.join("src/capi/include").display()))
        .arg(format!("-L{}", release.display()))
        .arg("-lquorumlm")
        .arg(format!("-Wl,-rpath,{}", release.display()))
        .status()
        .expect("cc");
    assert!(
        status.success(),
        "cannot build the C bench (cc, libquorumlm in {})",
        release.display()
    );
    out
}

/// A venv with the newest wheel of `target/wheels` installed; its python.
fn python_venv(release: &Path) -> PathBuf {
    let target = release.parent().expect("target");
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(target.join("wheels"))
        .expect("target/wheels: run `make python-wheel`")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .collect();
    wheels.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
    let wheel = wheels.pop().expect("a wheel in target/wheels: run `make python-wheel`");
    let venv = target.join("sdk-bench-venv");
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    let python = venv.join("bin/python");
    run(Command::new(&python).args(["-m", "pip", "install", "-q"]).arg(&wheel));
    python
}

/// Compiles Bench.java against the binding's jar; the class path to run it with.
fn build_java(root: &Path, release: &Path) -> String {
    let target = release.parent().expect("target");
    let jna = std::env::var("JNA_JAR").unwrap_or_else(|_| "/usr/share/java/jna.jar".into());
    let jar = target.join("java/quorumlm.jar");
    assert!(jar.exists(), "{}: run `make java-sdk`", jar.display());
    let classes = target.join("sdk-bench-java");
    let class_path = format!("{jna}:{}", jar.display());
    run(Command::new("javac")
        .arg("-cp")
        .arg(&class_path)
        .arg("-d")
        .arg(&classes)
        .arg(root.join("cluster-tests/sdk-bench/Bench.java")));
    format!("{class_path}:{}", classes.display())
}

fn run(command: &mut Command) {
    let status = command.status().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed");
}

fn report(clients: &[&str], figures: &mut [Vec<f64>], window: &Window, rounds: usize) {
    println!("\none client, checkout+checkin, median of {rounds} rounds:");
    let mut rows = Vec::new();
    let mut rust = 0.0;
    for (name, values) in clients.iter().zip(figures.iter_mut()) {
        values.sort_by(f64::total_cmp);
        let median = values[values.len() / 2];
        if rust == 0.0 {
            rust = median;
        }
        println!("  {name:<24} {median:>8.0} ops/s  ({:.2}x the Rust client)", median / rust);
        rows.push(json!({ "client": name, "median_ops_per_s": median, "rounds": values }));
    }
    let report = json!({
        "benchmark": "sdk",
        "warmup_secs": window.warmup.as_secs_f64(),
        "secs": window.measured.as_secs_f64(),
        "clients": rows,
    });
    write_report("target/bench/sdk.json", &report);
}
