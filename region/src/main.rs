//! `ferrinet-region`: the region route server and its tools.
//!
//! - `serve`: run a route server (TLS listener, optional plaintext listener, HTTP status);
//! - `client`: connect to servers, subscribe, announce, print received routes;
//! - `certs`: create a development CA, server and node certificates;
//! - `bench`: load tool that prints ingest, dump, fan-out and memory figures.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrinet-region",
    version,
    about = "ferrinet region route server and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a region route server.
    Serve(cmd::serve::Args),
    /// Connect to route servers, subscribe to VNIs, announce routes, print what arrives.
    Client(cmd::client::Args),
    /// Create a development PKI: region CA, server certificate, node certificates.
    Certs(cmd::certs::Args),
    /// Measure ingest, dump, fan-out and memory of a route server.
    Bench(cmd::bench::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => cmd::serve::run(a),
        Command::Client(a) => cmd::client::run(a),
        Command::Certs(a) => cmd::certs::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrinet-region: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
