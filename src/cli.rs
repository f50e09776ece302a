//! Command line (clap). Exit codes: 0 fine, 1 runtime failure, 2 bad configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app;
use crate::config::{Config, LogFormat};
use crate::view::web_config;

#[derive(Parser, Debug)]
#[command(
    name = "jans-exporter",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (revision ",
        env!("JANSX_BUILD_REVISION"),
        ", rustc ",
        env!("JANSX_BUILD_RUSTC"),
        ")"
    ),
    about = "Prometheus exporter sidecar for the Janssen auth server"
)]
struct Cli {
    /// TOML configuration file. Without one, the embedded default runs: the bundled
    /// example logs, served on 127.0.0.1:9781.
    #[arg(
        long,
        visible_alias = "config.file",
        global = true,
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Address to serve on; wins over `server.listen` in the file and the environment.
    #[arg(long = "web.listen-address", global = true, value_name = "HOST:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// exporter-toolkit web config file (TLS, basic auth); wins over
    /// `server.web_config_file`.
    #[arg(long = "web.config.file", global = true, value_name = "FILE")]
    web_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Follow the logs and serve /metrics (the default).
    Run,
    /// Read files once from start to end, print the OpenMetrics exposition, exit.
    Replay {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Validate and print the effective configuration, secrets redacted.
    CheckConfig,
    /// Read a token on standard input and print its line for `api.static_tokens_file`.
    HashToken,
    /// Ask a running exporter's /healthz; exit 0 on 200, 1 otherwise (for Docker's
    /// HEALTHCHECK: the image has no shell and no curl).
    Healthcheck {
        /// The exporter's address; by default `server.listen` of the configuration,
        /// with 0.0.0.0 or :: asked on loopback.
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<std::net::SocketAddr>,
        /// Limit for each of connect, send and answer.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

/// Logs to standard error, as `log.format` says; `RUST_LOG` sets the level.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashToken) = cli.command {
        let mut token = String::new();
        if std::io::stdin().read_line(&mut token).is_err() || token.trim().is_empty() {
            eprintln!("jans-exporter: give the token on standard input");
            return ExitCode::from(2);
        }
        println!(
            "{}",
            crate::view::auth::StaticTokens::hash_line(token.trim())
        );
        return ExitCode::SUCCESS;
    }
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jans-exporter: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = cli.listen {
        config.server.listen = listen;
    }
    if let Some(web) = cli.web_config {
        config.server.web_config_file = Some(web);
    }
    let web = match config
        .server
        .web_config_file
        .as_deref()
        .map(web_config::load)
    {
        None => None,
        Some(Ok((web, _))) => Some(web),
        Some(Err(e)) => {
            eprintln!("jans-exporter: invalid web config: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log.format);
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            print!("{}", config.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Command::HashToken => ExitCode::SUCCESS,
        Command::Healthcheck { address, timeout } => {
            let addr = address.unwrap_or_else(|| crate::healthcheck::target(config.server.listen));
            let tls = web.is_some_and(|w| w.tls.is_some());
            match crate::healthcheck::check(addr, timeout, tls) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("jans-exporter: unhealthy: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Replay { files } => match app::replay(&config, &files) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("jans-exporter: {e}");
                ExitCode::from(1)
            }
        },
        Command::Run => match app::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jans-exporter: {e}");
                ExitCode::from(1)
            }
        },
    }
}
