//! The `partwarden` binary: a thin layer over the library. Exit codes: 0 success,
//! 1 a runtime failure (database, DDL), 2 bad usage or bad configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use partwarden::config::{Config, LogFormat};
use partwarden::error::Error;
use partwarden::engine::manager::{run_maintenance, MaintenanceLock, RunOptions, MAINTENANCE_LOCK_KEY};

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
    Maintain {
        /// Print the plan (each action and why) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this table (its `name`, or `schema.name`).
        #[arg(long, value_name = "NAME")]
        table: Option<String>,
        /// Plan as if it were this instant (RFC 3339): a preview, like --dry-run, unless
        /// --execute is given too.
        #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
        now: Option<DateTime<Utc>>,
        /// With --now: change the database as if it were that instant (a simulated clock
        /// expires and creates real partitions; meant for tests and rehearsals).
        #[arg(long, requires = "now")]
        execute: bool,
        /// How long to wait for another run (the daemon's, or a killed run's backend) to
        /// release the maintenance lock before giving up.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_wait)]
        wait: std::time::Duration,
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
        /// Check the file only; do not connect to check the tables against the database
        /// (the default when no database URL is configured).
        #[arg(long)]
        offline: bool,
    },
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    partwarden::config::parse_duration(s).or_else(|e| {
        if s.trim() == "0" {
            Ok(std::time::Duration::ZERO)
        } else {
            Err(e)
        }
    })
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant such as 2026-11-24T09:00:00Z: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    if let Command::CheckConfig { file, offline } = &cli.command {
        let path = file.clone().or(cli.config.clone());
        let config = Config::load(path.as_deref()).map_err(Error::from)?;
        for w in config.warnings() {
            eprintln!("partwarden: warning: {w}");
        }
        println!("{config:#?}");
        if !offline && config.database_url().is_ok() {
            return check_config_against_database(&config);
        }
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
            Command::Maintain {
                dry_run,
                table,
                now,
                execute,
                wait,
            } => {
                // A simulated clock only previews: executing it would create and expire
                // real partitions for a time that is not now.
                let preview_only = now.is_some() && !execute;
                if preview_only && !dry_run {
                    eprintln!(
                        "partwarden: --now only previews (nothing is changed); add --execute to apply the plan as if it were that instant"
                    );
                }
                maintain(
                    &config,
                    RunOptions {
                        now,
                        dry_run: dry_run || preview_only,
                        only_table: table,
                        stop: None,
                    },
                    wait,
                )
                .await
            }
            Command::Status { json, now } => {
                status(&config, json, now.unwrap_or_else(Utc::now)).await
            }
            Command::Run => partwarden::daemon::run(config)
                .await
                .map(|()| ExitCode::SUCCESS),
        }
    })
}

/// `check-config` with a database URL: the tables must exist with the shape the
/// configuration describes. A table that does not fit is a configuration error (exit 2,
/// naming the key); a database that cannot be asked is a runtime error (exit 1).
fn check_config_against_database(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let problems = runtime.block_on(async {
        let pool = pool(config)?;
        let mut conn = pool.acquire().await.map_err(Error::from).context(
            "cannot check the tables against the database (use --offline to check the file only)",
        )?;
        let problems = partwarden::engine::manager::check_tables(&mut conn, config).await?;
        anyhow::Ok(problems)
    })?;
    for p in &problems {
        eprintln!("partwarden: error: {p}");
    }
    if problems.is_empty() {
        println!("configuration OK (tables checked against the database)");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(2))
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},sqlx::postgres::notice=warn,tokio_cron_scheduler=warn",
            config.log.level
        ))
    });
    // Colour only for a terminal: logs collected from a pipe or a file stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn pool(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    let url = config.database_url().map_err(Error::from)?;
    Ok(partwarden::engine::db::pool(
        url.expose(),
        &partwarden::engine::db::SessionSettings::from(&config.database),
    )
    .map_err(Error::from)?)
}

async fn maintain(
    config: &Config,
    opts: RunOptions,
    wait: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    if let Some(t) = &opts.only_table {
        config.find_table(t).map_err(Error::from)?;
    }
    let pool = pool(config)?;
    let report = if opts.dry_run {
        let mut conn = pool.acquire().await.map_err(Error::from)?;
        run_maintenance(&pool, &mut conn, config, &opts).await?
    } else {
        let mut lock = MaintenanceLock::acquire_within(&pool, wait)
            .await?
            .ok_or(Error::Busy(MAINTENANCE_LOCK_KEY))?;
        let report = run_maintenance(&pool, lock.conn(), config, &opts).await?;
        lock.release().await?;
        report
    };
    print!("{}", cli::render::run_report(&report));
    Ok(ExitCode::from(report.exit_code()))
}

async fn status(config: &Config, json: bool, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    use partwarden::{catalog, plan, plan::health};
    let pool = pool(config)?;
    let mut conn = pool.acquire().await.map_err(Error::from)?;
    let mut ok = true;
    let mut tables = Vec::new();
    let mut text = String::new();
    for table in &config.tables {
        match catalog::read_table(&mut conn, table).await {
            Ok(snap) => {
                let stats = health::all_stats(&snap);
                let coverage = health::coverage(&snap, now);
                let plan = plan::plan_table(table, &snap, now);
                let (missing, invalid) = health::index_health(&snap);
                let vector = partwarden::plan::vector::health(table, &snap);
                let builds: Vec<_> = partwarden::catalog::vector::progress(&mut conn)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|b| snap.find(&b.partition).is_some())
                    .collect();
                text.push_str(&cli::render::status_table(
                    &table.label(),
                    &stats,
                    &coverage,
                    now,
                ));
                if !plan.is_empty() {
                    text.push_str(&format!(
                        "  {} maintenance action(s) pending: `partwarden maintain --dry-run` shows them\n",
                        plan.actions.len()
                    ));
                }
                for b in &builds {
                    text.push_str(&format!(
                        "  index build in progress on {}: {} {}{}\n",
                        b.partition,
                        b.index.as_deref().unwrap_or("(index)"),
                        b.phase,
                        b.percent.map(|p| format!(", {p}%")).unwrap_or_default()
                    ));
                }
                if vector.missing + vector.invalid > 0 {
                    text.push_str(&format!(
                        "  vector indexes: {} partition(s) qualify but have none, {} INVALID\n",
                        vector.missing, vector.invalid
                    ));
                }
                for e in &snap.journal {
                    let at = partwarden::calendar::sql_literal(e.started_at);
                    let line = match (&e.what, e.state.as_str(), &e.relation) {
                        (_, "retired", Some(r)) => {
                            format!("retired (watched): {}.{}", r.schema, r.name)
                        }
                        (w, state, _) => format!(
                            "unfinished since {at}: {} {} ({state})",
                            w.kind(),
                            w.object()
                        ),
                    };
                    text.push_str(&format!("  {line}\n"));
                }
                for n in &plan.notes {
                    text.push_str(&format!("  note: {n}\n"));
                }
                tables.push(serde_json::json!({
                    "table": table.label(),
                    "interval": table.interval,
                    "premake": table.premake,
                    "retention": table.retention.to_string(),
                    "retention_mode": table.retention_mode,
                    "partitions": stats,
                    "partition_count": snap.partitions.len(),
                    "future_partitions": coverage.future_partitions,
                    "covered_until": coverage.covered_until,
                    "future_coverage_seconds": coverage.seconds_ahead,
                    "default_partition_rows": snap.default_partition.as_ref().map(|d| d.rows()),
                    "indexes_missing": missing,
                    "indexes_invalid": invalid,
                    "vector_indexes_missing": vector.missing,
                    "vector_indexes_invalid": vector.invalid,
                    "vector_index_bytes": vector.sizes,
                    "index_builds": builds,
                    "estimated_rows": snap.rows_estimate(),
                    "pending_actions": plan.actions,
                    "journal": snap.journal,
                    "notes": plan.notes,
                }));
            }
            Err(e) => {
                ok = false;
                text.push_str(&format!("{}: ERROR: {e}\n", table.label()));
                tables.push(serde_json::json!({ "table": table.label(), "error": e.to_string() }));
            }
        }
    }
    if json {
        let doc = serde_json::json!({ "now": now, "tables": tables });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("rendering JSON")?
        );
    } else {
        print!("{text}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    let pool = pool(config)?;
    let applied = partwarden::engine::migrate::run(&pool).await?;
    if applied.is_empty() {
        println!("migrations: up to date");
    } else {
        for v in applied {
            println!("migrations: applied {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
