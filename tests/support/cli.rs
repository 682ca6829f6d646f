//! Running the `partwarden` binary against a test database, and the application's side:
//! inserts as a tenant, and a pool of concurrent writers that count what was acknowledged
//! and what was rejected.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::TestDb;

pub struct Run {
    pub code: i32,
    pub out: String,
}

/// A config file under cargo's per-target temporary directory, removed when the returned
/// path is dropped (nothing is left behind, in /tmp or in `target/`).
pub fn write_config(toml: &str) -> tempfile::TempPath {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = tempfile::Builder::new()
        .prefix("partwarden-test-")
        .suffix(".toml")
        .tempfile_in(&dir)
        .unwrap();
    std::fs::write(file.path(), toml).unwrap();
    file.into_temp_path()
}

/// A scratch directory under cargo's per-target temporary directory, removed on drop.
pub fn scratch_dir(label: &str) -> tempfile::TempDir {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    tempfile::Builder::new()
        .prefix(&format!("pw-{label}-"))
        .tempdir_in(&dir)
        .unwrap()
}

/// `partwarden ARGS` as the table owner against `db`, with `config` as its file.
pub fn partwarden(db: &TestDb, config: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Run {
    partwarden_at(&db.owner_url(), config, env, args)
}

/// `partwarden ARGS` as the table owner with `toml` as its config: (exit code, output).
pub fn run_with_config(db: &TestDb, toml: &str, args: &[&str]) -> (i32, String) {
    let run = partwarden(db, Some(toml), &[], args);
    (run.code, run.out)
}

/// `partwarden ARGS` with `DATABASE_URL=url`, `config` as its file (if any), warnings only
/// in the log and a short DDL backoff.
pub fn partwarden_at(url: &str, config: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partwarden"));
    cmd.env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .env_remove("PARTWARDEN_CONFIG")
        .env("PARTWARDEN__DATABASE__DDL_BACKOFF", "100ms");
    let config = config.map(write_config);
    if let Some(path) = &config {
        cmd.arg("--config").arg(path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.args(args).output().expect("run partwarden");
    Run {
        code: status.code().unwrap_or(-1),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// The same, on a blocking thread (for tests that keep the async runtime busy meanwhile).
pub async fn partwarden_async(
    db: &TestDb,
    config: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
) -> Run {
    let db = TestDb {
        name: db.name.clone(),
    };
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        partwarden(&db, config.as_deref(), &env, &args)
    })
    .await
    .unwrap()
}

/// Grants the application role what an application has: DML on the tables (partitions
/// included, so that reading one directly is a real test of its RLS) and the sequences.
pub async fn grant_app(pool: &PgPool, schema: &str) {
    sqlx::raw_sql(&format!(
        "GRANT USAGE ON SCHEMA {schema} TO app_user;
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO app_user;
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO app_user;"
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// The application's insert of one GA4 event: `$1` tenant, `$2` timestamp.
pub const INSERT_EVENT: &str =
    "INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp)
     VALUES ($1::uuid, 'p', 'e', $2) RETURNING id";

/// One event of `tenant` at `at`, committed; returns its id.
pub async fn insert_event(
    pool: &PgPool,
    tenant: &str,
    at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    insert_with(pool, INSERT_EVENT, tenant, at).await
}

/// Runs `sql` (`$1` tenant, `$2` timestamp, returning a bigint) in a transaction with
/// the tenant set, as the application does.
pub async fn insert_with(
    pool: &PgPool,
    sql: &str,
    tenant: &str,
    at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let id: i64 = sqlx::query_scalar(sql)
        .bind(tenant)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// What concurrent writers saw.
#[derive(Debug, Default, Clone)]
pub struct WriterReport {
    /// (tenant, id) of every acknowledged insert.
    pub acknowledged: Vec<(String, i64)>,
    /// Every rejected insert's error.
    pub rejected: Vec<String>,
    /// The slowest acknowledged insert.
    pub slowest: Duration,
}

/// Writers as the application role, each inserting events of its tenant at instants from
/// `at` (called with a counter) as fast as it can, until stopped.
pub struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<WriterReport>>,
}

impl Writers {
    pub fn start(
        pool: &PgPool,
        tenants: &[&str],
        writers: usize,
        at: impl Fn(u64) -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Writers {
        Writers::start_sql(pool, INSERT_EVENT, tenants, writers, at)
    }

    /// Writers running `sql` (see [`insert_with`]).
    pub fn start_sql(
        pool: &PgPool,
        sql: &str,
        tenants: &[&str],
        writers: usize,
        at: impl Fn(u64) -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Writers {
        let sql: Arc<str> = sql.into();
        let stop = Arc::new(AtomicBool::new(false));
        let at = Arc::new(at);
        let counter = Arc::new(Mutex::new(0u64));
        let tasks = (0..writers)
            .map(|w| {
                let (pool, stop, at, counter) =
                    (pool.clone(), stop.clone(), at.clone(), counter.clone());
                let sql = sql.clone();
                let tenant = tenants[w % tenants.len()].to_string();
                tokio::spawn(async move {
                    let mut r = WriterReport::default();
                    while !stop.load(Ordering::Relaxed) {
                        let k = {
                            let mut c = counter.lock().unwrap();
                            *c += 1;
                            *c
                        };
                        let t = Instant::now();
                        match insert_with(&pool, &sql, &tenant, at(k)).await {
                            Ok(id) => {
                                r.slowest = r.slowest.max(t.elapsed());
                                r.acknowledged.push((tenant.clone(), id));
                            }
                            Err(e) => r.rejected.push(e.to_string()),
                        }
                    }
                    r
                })
            })
            .collect();
        Writers { stop, tasks }
    }

    pub async fn stop(self) -> WriterReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = WriterReport::default();
        for t in self.tasks {
            let r = t.await.unwrap();
            all.acknowledged.extend(r.acknowledged);
            all.rejected.extend(r.rejected);
            all.slowest = all.slowest.max(r.slowest);
        }
        all
    }
}

/// Ids of `tenant`'s events in `[from, to)`, and the partition each is in, read as the
/// tenant (RLS is forced).
pub async fn events_of(
    pool: &PgPool,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(i64, String)> {
    let mut tx = super::tenant_tx(pool, tenant).await;
    let rows = sqlx::query_as(
        "SELECT id, tableoid::regclass::text FROM archon_ga4_events
          WHERE event_timestamp >= $1 AND event_timestamp < $2 ORDER BY id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    rows
}

/// Starts `partwarden ARGS` in the background (output discarded).
pub fn spawn(db: &TestDb, config: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Spawned {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partwarden"));
    cmd.env("DATABASE_URL", db.owner_url())
        .env("RUST_LOG", "warn")
        .env_remove("PARTWARDEN_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let config = config.map(write_config);
    if let Some(path) = &config {
        cmd.arg("--config").arg(path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Spawned {
        child: cmd.args(args).spawn().expect("start partwarden"),
        _config: config,
    }
}

/// A running `partwarden` and its config file, which lives as long as the process handle.
pub struct Spawned {
    pub child: std::process::Child,
    _config: Option<tempfile::TempPath>,
}

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.child
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.child
    }
}

/// Polls (every 20 ms, up to `timeout`) for an active partwarden statement starting with
/// `prefix`; returns its backend pid.
pub async fn wait_for_statement(pool: &PgPool, prefix: &str, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'partwarden'
                AND state = 'active' AND query LIKE $1 || '%' LIMIT 1",
        )
        .bind(prefix)
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(pid) = pid {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no partwarden statement {prefix:?} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `partwarden ARGS` and waits until it prints `marker` on stderr (a fault point
/// reached: see `src/fault.rs`); returns the running child, for the caller to kill or
/// signal, and what it printed so far. Panics after `timeout`, or when the binary was
/// built without fault points.
pub fn start_until(
    db: &TestDb,
    config: Option<&str>,
    env: &[(&str, &str)],
    args: &[&str],
    marker: &str,
    timeout: Duration,
) -> (Spawned, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partwarden"));
    cmd.env("DATABASE_URL", db.owner_url())
        .env("RUST_LOG", "warn")
        .env_remove("PARTWARDEN_CONFIG")
        .env("PARTWARDEN__DATABASE__DDL_BACKOFF", "100ms")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let config = config.map(write_config);
    if let Some(path) = &config {
        cmd.arg("--config").arg(path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = Spawned {
        child: cmd.args(args).spawn().expect("start partwarden"),
        _config: config,
    };
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(marker) {
                    return (child, seen);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{marker:?} not reached within {timeout:?} (fault points need `cargo test --features \
                     failpoints`, which scripts/test.sh uses); partwarden printed:\n{seen}"
                );
            }
        }
    }
}

/// kill -9, and wait for the process to be gone.
pub fn kill9(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The rows of `partwarden_journal`: (table, kind, object, state).
pub async fn journal(pool: &PgPool) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT table_name, kind, object, state FROM partwarden_journal ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default()
}

/// Attached partitions of `parent` (qualified text).
pub async fn attached(pool: &PgPool, parent: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = $1::regclass ORDER BY 1",
    )
    .bind(parent)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Creates the monthly partition `months_back` months before the current one with the
/// SQL function; returns its name.
pub async fn old_partition(pool: &PgPool, months_back: u32) -> String {
    use partwarden::calendar::{partition_name, Interval};
    let from = Interval::Month.shift(Interval::Month.floor(Utc::now()), -i64::from(months_back));
    let _: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1)")
        .bind(from.date_naive())
        .fetch_one(pool)
        .await
        .unwrap();
    partition_name("archon_ga4_events", Interval::Month, from)
}
