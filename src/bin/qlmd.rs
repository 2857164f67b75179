//! `qlmd`: one QuorumLM node. See `qlmd --help`; every flag is also a `QLM_*` variable and a
//! key of the `--config` TOML file.

use std::process::ExitCode;

use clap::Parser;

use quorumlm::server::config::{NodeConfig, NodeFlags};

/// A QuorumLM license server node: one member of a Raft cluster that serves every seat.
#[derive(Parser, Debug)]
#[command(name = "qlmd", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    flags: NodeFlags,
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("qlmd: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(quorumlm::server::run::run_node(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped");
            eprintln!("qlmd: {e}");
            ExitCode::from(2)
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
