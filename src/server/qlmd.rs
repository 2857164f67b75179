//! `qlmd`: one QuorumLM node. See `qlmd --help`; every flag is also a `QLM_*` variable and a
//! key of the `--config` TOML file.

use std::process::ExitCode;

use clap::Parser;

use qlm_server::config::{NodeConfig, NodeFlags};

/// mimalloc, not glibc's malloc: a node allocates and frees small buffers for every request
/// from several threads, where glibc's arenas cost a tenth of the server's CPU under load
/// (docs/BENCHMARKS.md) and keep much of a freed heap resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A QuorumLM license server node: one member of a Raft cluster that serves every seat.
#[derive(Parser, Debug)]
#[command(name = "qlmd", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    flags: NodeFlags,
    /// Threads that run the node's network and Raft tasks [default: half the CPUs, at least
    /// one]. Fewer threads mean fewer hand-offs between them; nodes that share a machine
    /// (a test or demo cluster) do best with one each.
    #[arg(long, env = "QLM_WORKER_THREADS", value_name = "N")]
    worker_threads: Option<usize>,
}

/// The default of `--worker-threads`: half the CPUs, at least one. A node's hot path (the Raft
/// core, the apply, the batching proposer) is a chain of tasks, not parallel work: more
/// threads than that mostly add wake-ups of one thread by another.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QLM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: container and journal logs get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match NodeConfig::resolve(cli.flags) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("qlmd: {e}");
            return ExitCode::from(2);
        }
    };
    let workers = match cli.worker_threads {
        Some(0) => {
            eprintln!("qlmd: --worker-threads must be at least 1");
            return ExitCode::from(2);
        }
        Some(n) => n,
        None => default_worker_threads(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("qlmd: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(qlm_server::run::run_node(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped");
            eprintln!("qlmd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
