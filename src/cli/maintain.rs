//! `partwarden maintain`: one maintenance run over every configured table (or one), or
//! its plan.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};

use partwarden::config::Config;
use partwarden::engine::advisory::describe_run_lock_holder;
use partwarden::engine::manager::{
    record_runs, run_maintenance, MaintenanceLock, RunOptions, MAINTENANCE_LOCK_KEY,
};
use partwarden::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the plan (each action and why) and change nothing (with --backfill, the
    /// default partition's rows are counted all the same).
    #[arg(long)]
    dry_run: bool,
    /// Only this table (its `name`, or `schema.name`).
    #[arg(long, value_name = "NAME")]
    table: Option<String>,
    /// Plan as if it were this instant (RFC 3339, or a date: its midnight UTC): a preview,
    /// like --dry-run, unless
    /// --execute is given too.
    #[arg(long, value_name = "INSTANT", value_parser = super::parse_instant)]
    now: Option<DateTime<Utc>>,
    /// With --now: change the database as if it were that instant (a simulated clock
    /// expires and creates real partitions; meant for tests and rehearsals).
    #[arg(long, requires = "now")]
    execute: bool,
    /// Also create the partitions of past ranges whose rows wait in the default partition
    /// (moving the rows, online, like premake) and of gaps between partitions, back to the
    /// retention cutoff. Counts the default partition's rows first: under forced row-level
    /// security that scan holds the default partition's lock (readers of it wait for it).
    #[arg(long)]
    backfill: bool,
    /// How long to wait for a run under way elsewhere (the daemon's, another maintain's,
    /// or a killed run's backend) to release the run lock before giving up (exit 1).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_wait)]
    wait: Duration,
    /// Print the plan and what was done as one JSON document (the report `/status` shows
    /// under `last_runs`) instead of text.
    #[arg(long)]
    json: bool,
}

/// `--wait`: a duration, or a bare 0 for "do not wait".
fn parse_wait(s: &str) -> Result<Duration, String> {
    partwarden::config::parse_duration(s).or_else(|e| {
        if s.trim() == "0" {
            Ok(Duration::ZERO)
        } else {
            Err(e)
        }
    })
}

pub async fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    // A simulated clock only previews: executing it would create and expire real
    // partitions for a time that is not now.
    let preview_only = args.now.is_some() && !args.execute;
    if preview_only && !args.dry_run {
        eprintln!(
            "partwarden: --now only previews (nothing is changed); add --execute to apply the plan as if it were that instant"
        );
    }
    let opts = RunOptions {
        now: args.now,
        dry_run: args.dry_run || preview_only,
        backfill: args.backfill,
        only_table: args.table,
        stop: None,
    };
    maintain(config, opts, args.wait, args.json).await
}

/// A dry run only reads, so it needs no lock; a real one waits up to `wait` for the run
/// lock, which the daemon's leader takes for each of its runs (and only then).
async fn maintain(
    config: &Config,
    opts: RunOptions,
    wait: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(t) = &opts.only_table {
        config.find_table(t).map_err(Error::from)?;
    }
    let pool = super::pool(config).await?;
    let report = if opts.dry_run {
        let mut conn = pool.acquire().await.map_err(Error::from)?;
        run_maintenance(&pool, &mut conn, config, &opts).await?
    } else {
        let Some(mut lock) = MaintenanceLock::acquire_within(&pool, wait).await? else {
            return Err(busy(&pool, wait).await.into());
        };
        let report = run_maintenance(&pool, lock.conn(), config, &opts).await?;
        // A simulated clock's run is no success of today's maintenance.
        if opts.now.is_none() {
            if let Err(e) = record_runs(lock.conn(), &report).await {
                tracing::warn!("recording the run in partwarden_state: {e}");
            }
        }
        lock.release().await?;
        report
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", super::render::run_report(&report));
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// The refusal after `waited`, naming the run lock's holder when the database says.
async fn busy(pool: &sqlx::PgPool, waited: Duration) -> Error {
    let holder = match pool.acquire().await {
        Ok(mut conn) => describe_run_lock_holder(&mut conn).await,
        Err(e) => Err(e.into()),
    };
    let holder = match holder {
        Ok(Some(h)) => h,
        Ok(None) => "a session that let go just now".to_string(),
        Err(e) => format!("a session the database did not name ({e})"),
    };
    Error::Busy {
        key: MAINTENANCE_LOCK_KEY,
        waited,
        holder,
    }
}
