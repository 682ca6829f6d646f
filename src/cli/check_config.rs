//! `partwarden check-config`: load and validate a configuration file, print the effective
//! configuration, and check the tables against the database when one is configured.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use partwarden::config::Config;
use partwarden::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to check (default: --config).
    file: Option<PathBuf>,
    /// Check the file only; do not connect to check the tables against the database
    /// (the default when no database URL is configured).
    #[arg(long)]
    offline: bool,
}

/// `global_config` is `--config`, used when no FILE is given.
pub fn run(args: &Args, global_config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let path = args.file.as_deref().or(global_config);
    let (config, effective) = Config::load_effective(path).map_err(Error::from)?;
    for w in config.warnings() {
        eprintln!("partwarden: warning: {w}");
    }
    // Comments, so that the whole output is still a TOML file one can load.
    match path {
        Some(p) => println!("# read {}, then the environment", p.display()),
        None => println!(
            "# no configuration file given (--config or FILE): built-in defaults, then the environment"
        ),
    }
    println!("# the configuration in force:\n{effective}");
    if !args.offline && config.database_url().is_ok() {
        return check_against_database(&config);
    }
    println!("# configuration OK");
    Ok(ExitCode::SUCCESS)
}

/// Every export store a table in export mode uses takes a write (a probe object, then
/// deleted): what fails names the store and the object. Checked with the database, as the
/// stores are only used by maintenance.
async fn check_stores(config: &Config) -> Vec<String> {
    use partwarden::config::RetentionMode;
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    for t in config
        .tables
        .iter()
        .filter(|t| t.retention_mode == RetentionMode::Export)
    {
        let Some(e) = &t.export else { continue };
        if seen.contains(&e.url) {
            continue;
        }
        seen.push(e.url.clone());
        let checked = match partwarden::archive::Store::open(e, &e.url) {
            Ok(store) => store.check_writable().await,
            Err(err) => Err(err),
        };
        match checked {
            Ok(()) => println!("# export store {} of {}: writable", e.url, t.label()),
            Err(err) => problems.push(format!("{} (table {})", err, t.label())),
        }
    }
    problems
}

/// With a database URL: the tables must exist with the shape the configuration
/// describes. A table that does not fit is a configuration error (exit 2, naming the
/// key); a database that cannot be asked, or is not migrated, is a runtime error (exit 1).
fn check_against_database(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let problems = runtime.block_on(async {
        const OFFLINE: &str =
            "cannot check the tables against the database (use --offline to check the file only)";
        let pool = super::pool(config).await.context(OFFLINE)?;
        let mut conn = pool.acquire().await.map_err(Error::from).context(OFFLINE)?;
        let problems = partwarden::engine::manager::check_tables(&mut conn, config).await?;
        anyhow::Ok((problems, check_stores(config).await))
    })?;
    let (problems, stores) = problems;
    for p in &problems {
        eprintln!("partwarden: error: {p}");
    }
    for s in &stores {
        eprintln!("partwarden: error: {s}");
    }
    if problems.is_empty() && !stores.is_empty() {
        return Ok(ExitCode::from(1));
    }
    if problems.is_empty() {
        println!("# configuration OK (tables checked against the database)");
        Ok(ExitCode::SUCCESS)
    } else if problems.iter().any(Error::is_usage) {
        Ok(ExitCode::from(2))
    } else {
        // The configuration fits; the database is not ready (not migrated).
        Ok(ExitCode::from(1))
    }
}
