//! The `partwarden` binary: a thin layer over the library. Exit codes: 0 success,
//! 1 a runtime failure (database, DDL), 2 bad usage or bad configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use partwarden::config::{Config, LogFormat};
use partwarden::error::Error;

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
    Maintain {
        /// Print the plan (each action and why) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this table (its `name`, or `schema.name`).
        #[arg(long, value_name = "NAME")]
        table: Option<String>,
        /// Plan as if it were this instant (RFC 3339), for previews and tests.
        #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Show the partitions of every configured table.
    Status {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// Evaluate as if it were this instant (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Apply the embedded SQL migrations (schema, RLS, SQL functions).
    Migrate,
    /// Load and validate a configuration file, then print the effective configuration.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant such as 2026-11-24T09:00:00Z: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

/// The error and its causes on one line, skipping a cause whose text the previous message
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
    if let Command::CheckConfig { file } = &cli.command {
        let path = file.clone().or(cli.config.clone());
        let config = Config::load(path.as_deref()).map_err(Error::from)?;
        for w in config.warnings() {
            eprintln!("partwarden: warning: {w}");
        }
        println!("{config:#?}");
        println!("configuration OK");
        return Ok(ExitCode::SUCCESS);
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
            Command::Migrate => migrate(&config).await,
            Command::CheckConfig { .. } => unreachable!("handled above"),
            Command::Run | Command::Maintain { .. } | Command::Status { .. } => {
                anyhow::bail!("this command is not implemented yet")
            }
        }
    })
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{},sqlx::postgres::notice=warn", config.log.level))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    let url = config.database_url().map_err(Error::from)?;
    let pool = partwarden::db::pool(
        url.expose(),
        &partwarden::db::SessionSettings::from(&config.database),
    )
    .map_err(Error::from)?;
    let applied = partwarden::migrate::run(&pool).await?;
    if applied.is_empty() {
        println!("migrations: up to date");
    } else {
        for v in applied {
            println!("migrations: applied {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
