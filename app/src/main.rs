//! `sotto`: the Sotto client. Today: `sotto demo`, the whole system on one machine.

mod demo;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Sotto: end-to-end encrypted voice through a relay that cannot hear you.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a relay on this machine, let two members talk through it with recorded speech, and
    /// report what the listener heard and how long it took.
    Demo(demo::DemoArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result: Result<()> = match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
