//! partwarden processes against a trial database, and the application's writers.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::lab::{month, TrialDb, TENANTS};

pub struct Run {
    pub code: i32,
    pub out: String,
    pub took: Duration,
}

fn command(db: &TrialDb, env: &[(&str, &str)], args: &[&str]) -> Command {
    // One file for every trial of the run, at a fixed path (overwritten, not accumulated).
    static CONFIG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults-lab.toml");
        std::fs::write(&path, crate::lab::CONFIG).unwrap();
        path
    });
    let store = store_dir(db);
    std::fs::create_dir_all(&store).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partwarden"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("DATABASE_URL", db.url("partwarden"))
        .env(
            "PARTWARDEN__EXPORT__URL",
            format!("file://{}", store.display()),
        )
        .env("RUST_LOG", "warn")
        .env_remove("PARTWARDEN_CONFIG")
        .env_remove("FAILPOINTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The export store (a directory) of a trial database's `events_export`.
pub fn store_dir(db: &TrialDb) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("faults-store")
        .join(&db.name)
}

/// One `partwarden` command to completion.
pub async fn maintain(db: &TrialDb, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = command(db, env, args);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run partwarden");
    Run {
        code: out.status.code().unwrap_or(-1),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        took: started.elapsed(),
    }
}

/// A running partwarden whose stderr lines arrive on a channel.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: String,
}

pub fn start(db: &TrialDb, env: &[(&str, &str)], args: &[&str]) -> Running {
    let mut cmd = command(db, env, args);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start partwarden");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
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
    Running {
        child,
        lines,
        seen: String::new(),
    }
}

impl Running {
    /// Waits for a line containing `marker`; false when the process ended or `timeout`
    /// passed first.
    pub async fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.lines.try_recv() {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line.contains(marker) {
                        return true;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        false
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    /// Waits up to `timeout` for the process to exit; kills it after that.
    pub async fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                return status.code();
            }
            if Instant::now() >= deadline {
                self.kill9();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn kill9(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }
}

/// Polls for an active partwarden statement whose text matches `pattern` (LIKE); its pid.
pub async fn wait_for_statement(pool: &PgPool, pattern: &str, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'partwarden' AND state = 'active'
                AND query LIKE $1 LIMIT 1",
        )
        .bind(pattern)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten();
        if pid.is_some() {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// What the application's writers saw.
#[derive(Debug, Default)]
pub struct Written {
    /// (table, tenant) → ids of acknowledged inserts.
    pub acknowledged: std::collections::BTreeMap<(String, String), Vec<i64>>,
    /// Inserts the database refused (a constraint, an error): must be none.
    pub rejected: Vec<String>,
    /// Inserts cut off by an unavailable server (restart trials): their outcome is
    /// unknown, so the table may hold up to this many rows more than acknowledged.
    pub unavailable: usize,
}

/// When the k-th insert of a writer happens (its event_timestamp).
type EventTime = fn(u64) -> DateTime<Utc>;

/// Writers as the application role: one per table writing the current month, and one
/// per table with a default partition writing next month (rows that wait there and move).
pub struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Written>>,
}

impl Writers {
    pub async fn start(db: &TrialDb) -> Writers {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&db.url("app_user"))
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut jobs: Vec<(&'static str, EventTime)> = crate::lab::TABLES
            .iter()
            .map(|t| (*t, (|_k| Utc::now()) as EventTime))
            .collect();
        for t in crate::lab::WITH_DEFAULT {
            jobs.push((t, |k| {
                month(1) + chrono::Duration::seconds((k % 86_400) as i64 * 17)
            }));
        }
        let tasks = jobs
            .into_iter()
            .enumerate()
            .map(|(w, (table, at))| {
                let (pool, stop) = (pool.clone(), stop.clone());
                tokio::spawn(
                    async move { write_until(pool, stop, table, TENANTS[w % 2], at).await },
                )
            })
            .collect();
        Writers { stop, tasks }
    }

    pub async fn stop(self) -> Written {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Written::default();
        for t in self.tasks {
            let w = t.await.unwrap();
            for (k, v) in w.acknowledged {
                all.acknowledged.entry(k).or_default().extend(v);
            }
            all.rejected.extend(w.rejected);
            all.unavailable += w.unavailable;
        }
        all
    }
}

async fn write_until(
    pool: PgPool,
    stop: Arc<AtomicBool>,
    table: &'static str,
    tenant: &'static str,
    at: fn(u64) -> DateTime<Utc>,
) -> Written {
    let mut w = Written::default();
    let sql = format!(
        "INSERT INTO {table} (tenant_id, property_id, event_name, event_timestamp) VALUES ($1::uuid, 'p', 'w', $2) RETURNING id"
    );
    let ids = Mutex::new(Vec::new());
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let result: Result<i64, sqlx::Error> = async {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            let id = sqlx::query_scalar(&sql)
                .bind(tenant)
                .bind(at(k))
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id)
        }
        .await;
        match result {
            Ok(id) => ids.lock().unwrap().push(id),
            Err(e) if unavailable(&e) => {
                w.unavailable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => w.rejected.push(format!("{table}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    w.acknowledged.insert(
        (table.to_string(), tenant.to_string()),
        ids.into_inner().unwrap(),
    );
    w
}

/// The server was not there (restarting), as opposed to refusing the row.
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            code.starts_with("08") || code.starts_with("57P")
        }
        other => {
            let t = other.to_string();
            t.contains("connection") || t.contains("closed")
        }
    }
}
