//! `titan-sim`: serves a scenario file as a local Titan Task Service on loopback.
//! Prints exactly one line, `titan-sim listening on <base url>`, to stdout once
//! listening; everything else goes to stderr. Exits 0 on SIGINT/SIGTERM.

use clap::Parser;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use titan_sim::{self as sim, Scenario};

/// Local simulator of the Titan Task Service API.
#[derive(Debug, Parser)]
#[command(name = "titan-sim", version)]
struct Args {
    /// Scenario file (TOML), e.g. examples/scenarios/demo.toml.
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    /// Address to bind; only loopback addresses are accepted.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Port to bind; 0 picks a free one (read it from the printed line).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// Exit code for bad input (arguments or scenario), as clap uses for usage errors.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    if !args.bind.is_loopback() {
        eprintln!(
            "titan-sim: refusing to bind {}: only loopback addresses (127.0.0.1, ::1) are allowed",
            args.bind
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let mut scenario = match Scenario::from_file(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("titan-sim: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match std::env::var("TITAN_SIM_TOKEN") {
        Ok(t) if !t.is_empty() => scenario.token = t,
        _ => {}
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("titan-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(scenario, SocketAddr::new(args.bind, args.port)))
}

async fn serve(scenario: Scenario, addr: SocketAddr) -> ExitCode {
    let running = match sim::start(scenario, addr).await {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("titan-sim: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("titan-sim: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "titan-sim listening on {}", running.base_url())
        .and_then(|()| out.flush())
        .is_err()
    {
        tracing::warn!("Could not write the listening line to stdout");
    }
    drop(out);

    let code = match shutdown_signal().await {
        Ok(name) => {
            tracing::info!(signal = name, "Shutting down");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot wait for signals; shutting down");
            ExitCode::FAILURE
        }
    };
    let faults = running.faults_injected();
    if faults.total() > 0 {
        tracing::info!(total = faults.total(), counts = ?faults, "Faults injected");
    }
    running.shutdown().await;
    code
}

/// Waits for SIGINT or (on Unix) SIGTERM.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "ctrl-c")
    }
}
