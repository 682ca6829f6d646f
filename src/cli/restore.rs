//! `partwarden restore`: an exported partition back from the object store into the
//! table, online, under the run lock (the daemon's runs wait for it, and it for them).

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};

use partwarden::config::Config;
use partwarden::engine::manager::MaintenanceLock;
use partwarden::engine::restore::{restore_partition, RestoreRequest};
use partwarden::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table (its `name`, or `schema.name`).
    #[arg(long, value_name = "NAME")]
    table: String,
    /// The exported partition, by name.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "at",
        required_unless_present = "at"
    )]
    partition: Option<String>,
    /// Or by an instant inside its range (RFC 3339, or a date).
    #[arg(long, value_name = "INSTANT", value_parser = super::parse_instant)]
    at: Option<DateTime<Utc>>,
    /// The export's run id (`partwarden_exports.run_id`); the latest when not given.
    #[arg(long, value_name = "UUID")]
    run: Option<String>,
    /// How long the restored partition is kept from expiry (then retention exports it
    /// again).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = partwarden::config::parse_duration)]
    hold: Duration,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for a maintenance run under way to release the run lock.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = partwarden::config::parse_duration)]
    wait: Duration,
    /// The plan and the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    config.find_table(&args.table).map_err(Error::from)?;
    if let Some(run) = &args.run {
        uuid::Uuid::parse_str(run).map_err(|e| {
            Error::from(partwarden::config::ConfigError::Invalid {
                key: "--run".into(),
                message: format!("{run:?} is not a run id (a UUID): {e}"),
            })
        })?;
    }
    let hold = chrono::Duration::from_std(args.hold).map_err(|e| {
        Error::from(partwarden::config::ConfigError::Invalid {
            key: "--hold".into(),
            message: e.to_string(),
        })
    })?;
    let req = RestoreRequest {
        table: args.table,
        partition: args.partition,
        at: args.at,
        run: args.run,
        hold,
        dry_run: args.dry_run,
    };
    let pool = super::pool(config).await?;
    let report = if args.dry_run {
        let mut conn = pool.acquire().await.map_err(Error::from)?;
        restore_partition(&pool, &mut conn, config, &req).await?
    } else {
        let Some(mut lock) = MaintenanceLock::acquire_within(&pool, args.wait).await? else {
            anyhow::bail!(
                "a maintenance run holds the run lock (waited {:?}); try again, or raise --wait",
                args.wait
            );
        };
        let report = restore_partition(&pool, lock.conn(), config, &req).await;
        lock.release().await?;
        report?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.plan);
        for o in &report.outcomes {
            println!("  {:?}: {}", o.status, o.detail);
        }
    }
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
