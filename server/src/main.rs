//! `sotto-relay`: create, serve and invite people to a Sotto relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sotto_relay::config::DEFAULT_PORT;
use sotto_relay::data_dir::unix_now;
use sotto_relay::db::{InviteTerms, Role};
use sotto_relay::{DataDir, InitOptions, RelayConfig, RelayHandle};

/// Sotto's relay: authenticates members and forwards their end-to-end encrypted voice. It
/// never holds a key that decrypts what they say.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: database, TLS certificate, a default server with `general` and
    /// `voice` channels; prints the owner's invite link.
    Init {
        #[command(flatten)]
        data: DataArg,
        #[command(flatten)]
        setup: SetupArgs,
    },
    /// Serve the relay (creating the data directory first if it does not exist yet).
    Serve(ServeArgs),
    /// Print a new invite link for the server.
    Invite {
        #[command(flatten)]
        data: DataArg,
        /// How long the invite stays valid, e.g. `30m`, `24h`, `7d`. Default: never expires.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// How many people may join with it. Default: unlimited.
        #[arg(long)]
        max_uses: Option<u32>,
    },
}

#[derive(Debug, Args)]
struct DataArg {
    /// Data directory. Default: the platform's data directory for sotto-relay.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SetupArgs {
    /// Name of the server created with the relay.
    #[arg(long, default_value = "Sotto")]
    name: String,
    /// The `host:port` members reach this relay at; it goes into invite links.
    #[arg(long, value_name = "HOST:PORT", default_value_t = format!("127.0.0.1:{DEFAULT_PORT}"))]
    public_addr: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    data: DataArg,
    #[command(flatten)]
    setup: SetupArgs,
    /// UDP address to listen on.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// Serve Prometheus metrics over HTTP at this address, e.g. `127.0.0.1:9878`. Off by default.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = RelayConfig::default().max_connections)]
    max_connections: usize,
    /// Media datagrams per second one connection may send on average.
    #[arg(long, default_value_t = RelayConfig::default().datagram_rate)]
    datagram_rate: u32,
    /// Media datagrams one connection may send in a burst.
    #[arg(long, default_value_t = RelayConfig::default().datagram_burst)]
    datagram_burst: u32,
    /// Requests (joining a voice channel, creating an invite) one connection may make per
    /// second on average.
    #[arg(long, default_value_t = RelayConfig::default().request_rate)]
    request_rate: u32,
    /// Requests one connection may make in a burst.
    #[arg(long, default_value_t = RelayConfig::default().request_burst)]
    request_burst: u32,
    /// Chat messages one member may post per second on average.
    #[arg(long, default_value_t = RelayConfig::default().message_rate)]
    message_rate: u32,
    /// Chat messages one member may post in a burst.
    #[arg(long, default_value_t = RelayConfig::default().message_burst)]
    message_burst: u32,
    /// Largest file a member may upload, in MiB.
    #[arg(long, default_value_t = RelayConfig::default().max_file_size / (1024 * 1024))]
    max_file_mib: u64,
    /// MiB of files one member may keep on the relay.
    #[arg(long, default_value_t = RelayConfig::default().member_storage / (1024 * 1024))]
    member_storage_mib: u64,
    /// Uploads one member may start per second on average.
    #[arg(long, default_value_t = RelayConfig::default().upload_rate)]
    upload_rate: u32,
    /// Uploads one member may start in a burst.
    #[arg(long, default_value_t = RelayConfig::default().upload_burst)]
    upload_burst: u32,
    /// Seconds a stored file that no message carries is kept before it is deleted.
    #[arg(long, default_value_t = RelayConfig::default().file_grace.as_secs())]
    file_grace_secs: u64,
    /// Most people in one voice channel (at most 1000).
    #[arg(long, default_value_t = RelayConfig::default().max_voice_participants)]
    max_voice_participants: usize,
    /// Most active invites one member may hold.
    #[arg(long, default_value_t = RelayConfig::default().max_active_invites)]
    max_active_invites: u32,
    /// Most invites one member may create per hour.
    #[arg(long, default_value_t = RelayConfig::default().invites_per_hour)]
    invites_per_hour: u32,
}

fn data_dir(arg: &DataArg) -> DataDir {
    let path = arg.data.clone().unwrap_or_else(|| {
        directories::ProjectDirs::from("org", "Sotto", "sotto-relay").map_or_else(
            || PathBuf::from("sotto-relay-data"),
            |dirs| dirs.data_dir().to_owned(),
        )
    });
    DataDir::new(path)
}

fn validate_public_addr(address: &str) -> Result<()> {
    let Some((host, port)) = address.rsplit_once(':') else {
        bail!("--public-addr must be HOST:PORT, e.g. relay.example.org:{DEFAULT_PORT}");
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |port| port == 0) {
        bail!("--public-addr must be HOST:PORT with a port from 1 to 65535, got `{address}`");
    }
    Ok(())
}

fn initialize(data: &DataDir, setup: &SetupArgs) -> Result<()> {
    validate_public_addr(&setup.public_addr)?;
    let options = InitOptions {
        server_name: setup.name.clone(),
        public_address: setup.public_addr.clone(),
    };
    let report = data.initialize(&options)?;
    println!(
        "Created a relay for server \"{}\" in {}",
        setup.name,
        data.root().display()
    );
    println!();
    println!("Owner invite (single use; whoever joins with it owns the server):");
    println!("  {}", report.owner_link);
    println!();
    println!(
        "Whoever joins first creates the server's encryption group; the relay holds no key and"
    );
    println!("cannot read voice or messages. Members then share invites made with `sotto invite`.");
    Ok(())
}

fn invite(data: &DataDir, expires: Option<Duration>, max_uses: Option<u32>) -> Result<()> {
    let opened = data.open()?;
    let (store, certificate) = (&opened.store, &opened.certificate);
    let server = store.default_server()?;
    let now = unix_now();
    let terms = InviteTerms {
        expires_at: expires.map(|duration| now + duration.as_secs()),
        max_uses,
        role: Role::Member,
    };
    let token = store.create_invite(server.id, None, terms, now)?;
    let link = data.invite_link(store, certificate, token, None)?;
    println!("{link}");
    eprintln!(
        "note: this link lets its holder onto the relay, not into the server's encryption group: \
         only a member can vouch for a newcomer. Ask a member for a link made with `sotto invite`."
    );
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<()> {
    let data = data_dir(&args.data);
    if !data.is_initialized() {
        initialize(&data, &args.setup)?;
        println!();
    }
    let config = RelayConfig {
        listen: args.listen,
        metrics: args.metrics,
        max_connections: args.max_connections,
        datagram_rate: args.datagram_rate,
        datagram_burst: args.datagram_burst,
        request_rate: args.request_rate,
        request_burst: args.request_burst,
        message_rate: args.message_rate,
        message_burst: args.message_burst,
        max_file_size: args.max_file_mib.saturating_mul(1024 * 1024),
        member_storage: args.member_storage_mib.saturating_mul(1024 * 1024),
        upload_rate: args.upload_rate,
        upload_burst: args.upload_burst,
        file_grace: std::time::Duration::from_secs(args.file_grace_secs),
        max_voice_participants: args.max_voice_participants,
        max_active_invites: args.max_active_invites,
        invites_per_hour: args.invites_per_hour,
        ..RelayConfig::default()
    };
    let relay = RelayHandle::spawn(&data, config).await?;
    println!(
        "Relay listening on udp://{} (data in {})",
        relay.local_addr(),
        data.root().display()
    );
    println!(
        "Certificate fingerprint: {}",
        sotto_net::invite::encode_b64(&relay.fingerprint())
    );
    if let Some(metrics) = relay.metrics_addr() {
        println!("Metrics: http://{metrics}/metrics");
    }
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    relay.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,quinn=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Init { data, setup } => initialize(&data_dir(&data), &setup),
        Command::Invite {
            data,
            expires,
            max_uses,
        } => invite(&data_dir(&data), expires, max_uses),
        Command::Serve(args) => tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(serve(args)),
    }
}
