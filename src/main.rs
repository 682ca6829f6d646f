//! The `partwarden` binary: a thin layer over the library. Exit codes: 0 success,
//! 1 a runtime failure (database, DDL), 2 bad usage or bad configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use partwarden::config::{Config, LogFormat};
use partwarden::error::Error;

mod cli;

#[derive(Debug, Parser)]
#[command(
    name = "partwarden",
    version,
    about = "Keeps PostgreSQL time-partitioned tables healthy"
)]
struct Cli {
    /// Configuration file (TOML). Environment variables PARTWARDEN__SECTION__KEY override it.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "PARTWARDEN_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run as a daemon: maintenance on start and on the cron schedule, metrics over HTTP.
    Run,
    /// One maintenance run over every configured table (or one).
    Maintain(cli::maintain::Args),
    /// Bring an exported partition back from the object store (retention_mode = "export").
    Restore(cli::restore::Args),
    /// Show the partitions of every configured table.
    Status(cli::status::Args),
    /// Apply the embedded SQL migrations (schema, RLS, SQL functions).
    Migrate(cli::migrate::Args),
    /// Load and validate a configuration file, then print the effective configuration.
    CheckConfig(cli::check_config::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the runtime's threads exist (see the module's note): the daemon's idle
    // memory, and an export's or restore's peak (batches of megabytes handed between
    // threads left the per-thread arenas at 2-3x what was live).
    partwarden::daemon::use_one_allocator_arena();
    partwarden::fault::setup();
    match real_main(cli) {
        Ok(code) => code,
        Err(err) => {
            let usage = err.downcast_ref::<Error>().is_some_and(Error::is_usage)
                || err
                    .downcast_ref::<partwarden::config::ConfigError>()
                    .is_some();
            eprintln!("partwarden: error: {}", error_chain(&err));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the previous message
/// already contains (sqlx repeats its sources in its own messages).
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    // `check-config` loads the file itself: its positional FILE wins over --config.
    if let Command::CheckConfig(args) = &cli.command {
        return cli::check_config::run(args, cli.config.as_deref());
    }
    let config = Config::load(cli.config.as_deref()).map_err(Error::from)?;
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run => cli::run::run(config).await,
            Command::Maintain(args) => cli::maintain::run(&config, args).await,
            Command::Restore(args) => cli::restore::run(&config, args).await,
            Command::Status(args) => cli::status::run(&config, args).await,
            Command::Migrate(args) => cli::migrate::run(&config, args).await,
            Command::CheckConfig(_) => unreachable!("handled above"),
        }
    })
}

fn init_logging(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    // Notices below WARNING stay out of the log by default: most are "… does not exist,
    // skipping" of idempotent DDL. Those raised during a vector index build (pgvector's
    // "little data") reach it all the same, as warnings about the partition: the notice
    // layer collects them for the build whatever this filter keeps.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},sqlx::postgres::notice=warn,tokio_cron_scheduler=warn",
            config.log.level
        ))
    });
    // Colour only for a terminal: logs collected from a pipe or a file stay plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt = match config.log.format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(partwarden::notice::layer())
        .init();
}
