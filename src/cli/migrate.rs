//! `partwarden migrate`: the embedded SQL migrations (schema, RLS, SQL functions); with
//! `--citus`, then the GA4 tables distributed over the Citus cluster (on its coordinator).

use std::process::ExitCode;

use partwarden::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Then distribute the GA4 tables by tenant_id with Citus (run against the
    /// coordinator; the primary keys gain tenant_id; the daily summaries are colocated
    /// with the events). Copies existing rows to the shards under a lock that blocks
    /// writes: see docs/citus.md.
    #[arg(long)]
    citus: bool,
    /// With --citus: shards per table (Citus's citus.shard_count, 32, when not given).
    #[arg(long, requires = "citus", value_parser = clap::value_parser!(u32).range(1..=64000))]
    shard_count: Option<u32>,
}

pub async fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let pool = super::pool(config).await?;
    if args.citus {
        partwarden::engine::distribute::check_cluster(&pool).await?;
    }
    let applied = partwarden::engine::migrate::run(&pool).await?;
    if applied.is_empty() {
        println!("migrations: up to date");
    } else {
        for v in applied {
            println!("migrations: applied {v}");
        }
    }
    if args.citus {
        for line in partwarden::engine::distribute::distribute(&pool, args.shard_count).await? {
            println!("citus: {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
