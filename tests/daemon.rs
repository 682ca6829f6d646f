//! `partwarden run` as a process: metrics, health, readiness across a database outage,
//! leadership between replicas, shutdown, configuration errors, secrets in logs.
mod support;

use std::process::Command;
use std::time::Duration;

use sqlx::Executor;
use support::daemon::{cluster_port, sample, wait_for, Daemon, Proxy};
use support::{url_for, TestDb, OWNER_ROLE};

const T: &str = "table=\"public.archon_ga4_events\"";

fn env_for(url: String) -> Vec<(&'static str, String)> {
    vec![("DATABASE_URL", url)]
}

/// Drops the three future partitions the migration made, so a maintenance run has DDL to do.
async fn make_work(db: &TestDb) -> Vec<String> {
    support::drop_future_partitions(&db.owner_pool().await).await
}

#[tokio::test]
async fn metrics_after_maintenance_and_promtool() {
    let db = TestDb::migrated("daemon_metrics").await;
    let recreated = make_work(&db).await;
    let d = Daemon::start(&env_for(db.owner_url()), None);
    let m = d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}"),
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
    // Maintenance recreated the three future partitions; a refresh follows the run.
    let m = if sample(&m, &format!("partwarden_future_partitions{{{T}}}")) == Some(3.0) {
        m
    } else {
        d.wait_metric(
            &format!("partwarden_future_partitions{{{T}}}"),
            Duration::from_secs(10),
            |v| v == 3.0,
        )
    };
    assert_eq!(
        sample(&m, &format!("partwarden_partitions{{{T}}}")),
        Some(4.0),
        "{m}"
    );
    assert_eq!(sample(&m, "partwarden_leader"), Some(1.0));
    assert_eq!(sample(&m, "partwarden_database_up"), Some(1.0));
    assert_eq!(
        sample(&m, &format!("partwarden_indexes_missing{{{T}}}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, &format!("partwarden_default_partition_rows{{{T}}}")),
        Some(0.0)
    );
    let coverage = sample(&m, &format!("partwarden_future_coverage_seconds{{{T}}}")).unwrap();
    assert!(
        coverage > 85.0 * 86400.0 && coverage < 125.0 * 86400.0,
        "{coverage}"
    );
    let last = sample(
        &m,
        &format!("partwarden_maintenance_last_success_timestamp_seconds{{{T}}}"),
    )
    .unwrap();
    assert!(
        (chrono::Utc::now().timestamp() as f64 - last).abs() < 60.0,
        "{last}"
    );
    for p in &recreated {
        assert!(
            m.contains(&format!(
                "partwarden_partition_size_bytes{{{T},partition=\"{p}\"}}"
            )),
            "{p} missing:\n{m}"
        );
    }
    assert!(m.contains("partwarden_build_info{version=\""), "{m}");
    assert!(
        m.contains("partwarden_maintenance_duration_seconds_count 1"),
        "{m}"
    );

    // /status carries the last run with each action's outcome.
    let (code, status) = d.get("/status").unwrap();
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    let created = &doc["last_runs"]["public.archon_ga4_events"]["report"]["created_partitions"];
    assert_eq!(created.as_array().map(|a| a.len()), Some(3), "{status}");

    // promtool lints the exposition.
    let scratch = support::cli::scratch_dir("metrics");
    let file = scratch.path().join("metrics.txt");
    std::fs::write(&file, &m).unwrap();
    let promtool = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", file.display()))
        .output()
        .expect("run promtool");
    assert!(
        promtool.status.success() && promtool.stderr.is_empty() && promtool.stdout.is_empty(),
        "promtool check metrics (install: scripts/check-prometheus.sh): {}{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );

    // Dropped partitions disappear from the metrics.
    let pool = db.owner_pool().await;
    let gone = &recreated[2];
    pool.execute(format!("DROP TABLE {gone}").as_str())
        .await
        .unwrap();
    d.wait_metric(
        &format!("partwarden_future_partitions{{{T}}}"),
        Duration::from_secs(10),
        |v| v == 2.0,
    );
    let m = d.metrics();
    assert!(
        !m.contains(&format!("partition=\"{gone}\"")),
        "{gone} lingers:\n{m}"
    );

    // Unknown paths and malformed requests.
    assert_eq!(d.get("/nope").unwrap().0, 404);
    for junk in [
        "\r\n\r\n",
        "GET\r\n\r\n",
        "BREW /coffee HTCPCP/1.0\r\n\r\n",
        &"A".repeat(20_000),
    ] {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", d.port)) {
            let _ = s.write_all(junk.as_bytes());
            let _ = s.set_read_timeout(Some(Duration::from_secs(6)));
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
    assert_eq!(
        d.get("/healthz").unwrap().0,
        200,
        "server down after malformed requests"
    );
}

#[tokio::test]
async fn readiness_follows_the_database_and_maintenance_runs_once_it_is_back() {
    let db = TestDb::migrated("daemon_outage").await;
    make_work(&db).await;
    let proxy = Proxy::start(cluster_port());
    proxy.cut();
    let url = format!(
        "postgres://{OWNER_ROLE}:s3cret-pw@127.0.0.1:{}/{}",
        proxy.port, db.name
    );
    let mut d = Daemon::start(
        &[
            ("DATABASE_URL", url),
            ("PARTWARDEN__DATABASE__CONNECT_TIMEOUT", "1s".into()),
        ],
        None,
    );
    // Up and serving while the database is unreachable.
    wait_for(Duration::from_secs(10), "healthz", || {
        d.get("/healthz").filter(|(c, _)| *c == 200)
    });
    let (code, _) = d.get("/readyz").unwrap();
    assert_eq!(code, 503);
    assert_eq!(sample(&d.metrics(), "partwarden_database_up"), Some(0.0));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        d.alive(),
        "daemon died while the database was down:\n{}",
        d.log()
    );

    proxy.restore();
    wait_for(
        Duration::from_secs(5),
        "readyz 200 after the database came back",
        || d.get("/readyz").filter(|(c, _)| *c == 200),
    );
    d.wait_metric(
        &format!("partwarden_future_partitions{{{T}}}"),
        Duration::from_secs(20),
        |v| v == 3.0,
    );

    proxy.cut();
    wait_for(
        Duration::from_secs(10),
        "readyz 503 after the database went away",
        || d.get("/readyz").filter(|(c, _)| *c == 503),
    );
    assert!(d.alive());
    assert_eq!(d.get("/healthz").unwrap().0, 200);
    proxy.restore();
    wait_for(Duration::from_secs(10), "readyz 200 again", || {
        d.get("/readyz").filter(|(c, _)| *c == 200)
    });
    let (code, took) = d.terminate();
    assert_eq!(code, Some(0), "{}", d.log());
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        !d.log().contains("s3cret-pw"),
        "password in the log:\n{}",
        d.log()
    );
}

#[tokio::test]
async fn two_replicas_elect_exactly_one_leader_and_do_the_ddl_once() {
    let db = TestDb::migrated("daemon_leader").await;
    make_work(&db).await;
    let a = Daemon::start(&env_for(db.owner_url()), None);
    let b = Daemon::start(&env_for(db.owner_url()), None);
    for d in [&a, &b] {
        wait_for(Duration::from_secs(20), "ready", || {
            d.get("/readyz").filter(|(c, _)| *c == 200)
        });
    }
    let leaders = wait_for(Duration::from_secs(20), "a leader", || {
        let l: Vec<f64> = [&a, &b]
            .iter()
            .map(|d| sample(&d.metrics(), "partwarden_leader").unwrap_or(-1.0))
            .collect();
        (l.iter().sum::<f64>() == 1.0).then_some(l)
    });
    let (leader, follower) = if leaders[0] == 1.0 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    leader.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}"),
        Duration::from_secs(20),
        |v| v >= 1.0,
    );
    std::thread::sleep(Duration::from_secs(2));
    let fm = follower.metrics();
    assert_eq!(
        sample(
            &fm,
            &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}")
        ),
        Some(0.0),
        "{fm}"
    );
    assert_eq!(sample(&fm, "partwarden_leader"), Some(0.0));
    // Both serve metrics of the same partitions.
    follower.wait_metric(
        &format!("partwarden_future_partitions{{{T}}}"),
        Duration::from_secs(10),
        |v| v == 3.0,
    );
    let (_, st) = leader.get("/status").unwrap();
    let doc: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(
        doc["last_runs"]["public.archon_ga4_events"]["report"]["created_partitions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (_, st) = follower.get("/status").unwrap();
    let doc: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert!(
        doc["last_runs"].as_object().unwrap().is_empty(),
        "the follower ran maintenance: {st}"
    );
    // The follower sees the leader's last success (shared through the database).
    follower.wait_metric(
        &format!("partwarden_maintenance_last_success_timestamp_seconds{{{T}}}"),
        Duration::from_secs(10),
        |v| v > 0.0,
    );
}

#[tokio::test]
async fn leadership_passes_on_when_the_leader_stops() {
    let db = TestDb::migrated("daemon_failover").await;
    let mut a = Daemon::start(&env_for(db.owner_url()), None);
    a.wait_metric("partwarden_leader", Duration::from_secs(20), |v| v == 1.0);
    let b = Daemon::start(&env_for(db.owner_url()), None);
    wait_for(Duration::from_secs(20), "b ready", || {
        b.get("/readyz").filter(|(c, _)| *c == 200)
    });
    assert_eq!(sample(&b.metrics(), "partwarden_leader"), Some(0.0));
    let (code, _) = a.terminate();
    assert_eq!(code, Some(0));
    b.wait_metric("partwarden_leader", Duration::from_secs(15), |v| v == 1.0);
}

#[tokio::test]
async fn last_success_survives_a_restart() {
    let db = TestDb::migrated("daemon_restart").await;
    let mut a = Daemon::start(&env_for(db.owner_url()), None);
    let m = a.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}"),
        Duration::from_secs(20),
        |v| v >= 1.0,
    );
    let m = if sample(
        &m,
        &format!("partwarden_maintenance_last_success_timestamp_seconds{{{T}}}"),
    )
    .is_some()
    {
        m
    } else {
        a.wait_metric(
            &format!("partwarden_maintenance_last_success_timestamp_seconds{{{T}}}"),
            Duration::from_secs(5),
            |_| true,
        )
    };
    let first = sample(
        &m,
        &format!("partwarden_maintenance_last_success_timestamp_seconds{{{T}}}"),
    )
    .unwrap();
    assert_eq!(a.terminate().0, Some(0));
    // A restarted daemon that cannot lead (someone else holds the lock) still reports it.
    let pool = db.owner_pool().await;
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(partwarden::engine::manager::MAINTENANCE_LOCK_KEY)
        .execute(&mut *holder)
        .await
        .unwrap();
    let b = Daemon::start(&env_for(db.owner_url()), None);
    let m = b.wait_metric(
        &format!("partwarden_maintenance_last_success_timestamp_seconds{{{T}}}"),
        Duration::from_secs(20),
        |_| true,
    );
    assert_eq!(
        sample(
            &m,
            &format!("partwarden_maintenance_last_success_timestamp_seconds{{{T}}}")
        ),
        Some(first)
    );
    assert_eq!(sample(&m, "partwarden_leader"), Some(0.0));
    drop(holder);
}

#[tokio::test]
async fn invalid_config_exits_2_naming_the_key() {
    for (key, value) in [
        ("PARTWARDEN__SCHEDULE__MAINTENANCE", "0 2 * * *"),
        ("PARTWARDEN__HTTP__LISTEN", "not-an-address"),
        ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "forever"),
        ("PARTWARDEN__LOG__FORMAT", "xml"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_partwarden"))
            .arg("run")
            .env("DATABASE_URL", url_for(OWNER_ROLE, "postgres"))
            .env(key, value)
            .env_remove("PARTWARDEN_CONFIG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let name = key
            .trim_start_matches("PARTWARDEN__")
            .to_lowercase()
            .replace("__", ".");
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {err}");
        assert!(
            err.contains(&name),
            "{key}={value}: error does not name {name}: {err}"
        );
    }
}

#[tokio::test]
async fn json_logs_without_secrets() {
    let db = TestDb::migrated("daemon_json").await;
    let url = format!(
        "postgres://{OWNER_ROLE}:hunter2-secret@127.0.0.1:{}/{}",
        cluster_port(),
        db.name
    );
    let mut d = Daemon::start(
        &[
            ("DATABASE_URL", url),
            ("PARTWARDEN__LOG__FORMAT", "json".into()),
        ],
        None,
    );
    d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}"),
        Duration::from_secs(20),
        |v| v >= 1.0,
    );
    assert_eq!(d.terminate().0, Some(0));
    let log = d.log();
    assert!(!log.contains("hunter2-secret"), "{log}");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{l}");
    }
}

#[tokio::test]
async fn the_probe_query_feeds_its_histogram() {
    let db = TestDb::migrated("daemon_probe").await;
    let d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__PROBE__ENABLED", "true".into()),
            ("PARTWARDEN__PROBE__INTERVAL", "1s".into()),
            (
                "PARTWARDEN__PROBE__TENANT_ID",
                "00000000-0000-0000-0000-00000000000a".into(),
            ),
        ],
        None,
    );
    let m = d.wait_metric(
        &format!("partwarden_probe_query_duration_seconds_count{{{T}}}"),
        Duration::from_secs(20),
        |v| v >= 2.0,
    );
    let fast = sample(
        &m,
        &format!("partwarden_probe_query_duration_seconds_bucket{{{T},le=\"0.5\"}}"),
    )
    .unwrap();
    assert!(fast >= 2.0, "{m}");
    assert!(
        !d.log().contains("probe query:"),
        "probe errors:\n{}",
        d.log()
    );
}

/// sqlx warns about every statement over 1 s with its whole text — the 4 KB catalog query
/// at every refresh of a table with 1,000+ partitions, every index build. partwarden
/// times what matters itself (histograms, the run's actions), so the driver stays quiet.
#[tokio::test]
async fn slow_statements_are_not_logged_by_the_driver() {
    let db = TestDb::migrated("daemon_slow").await;
    let d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__PROBE__ENABLED", "true".into()),
            ("PARTWARDEN__PROBE__INTERVAL", "1s".into()),
            ("PARTWARDEN__PROBE__QUERY", "SELECT pg_sleep(1.2)".into()),
            (
                "PARTWARDEN__PROBE__TENANT_ID",
                "00000000-0000-0000-0000-00000000000a".into(),
            ),
        ],
        None,
    );
    let m = d.wait_metric(
        &format!("partwarden_probe_query_duration_seconds_count{{{T}}}"),
        Duration::from_secs(30),
        |v| v >= 2.0,
    );
    let fast = sample(
        &m,
        &format!("partwarden_probe_query_duration_seconds_bucket{{{T},le=\"0.5\"}}"),
    );
    assert_eq!(fast, Some(0.0), "each probe took over a second:\n{m}");
    assert!(!d.log().contains("slow statement"), "{}", d.log());
}

#[tokio::test]
async fn overlapping_runs_are_skipped_and_counted() {
    let db = TestDb::migrated("daemon_overlap").await;
    make_work(&db).await;
    // A reader keeps the default partition locked, so each ATTACH waits lock_timeout and
    // retries: the run lasts seconds while the cron fires every second.
    let pool = db.owner_pool().await;
    let reader = support::hold_reader(&pool).await;
    let d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__SCHEDULE__MAINTENANCE", "* * * * * *".into()),
            ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "500ms".into()),
            ("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "4".into()),
            ("PARTWARDEN__DATABASE__DDL_BACKOFF", "500ms".into()),
        ],
        None,
    );
    d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"skipped\"}}"),
        Duration::from_secs(30),
        |v| v >= 2.0,
    );
    reader.rollback().await.unwrap();
    // Once the reader is gone a run succeeds and the partitions come back.
    d.wait_metric(
        &format!("partwarden_future_partitions{{{T}}}"),
        Duration::from_secs(60),
        |v| v == 3.0,
    );
    // (the run under way when the reader left succeeds on a retry)
    d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}"),
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
}

#[tokio::test]
async fn connections_killed_mid_run_leave_nothing_half_done() {
    let db = TestDb::migrated("daemon_killed").await;
    make_work(&db).await;
    let pool = db.owner_pool().await;
    // Keep the run busy retrying its first ATTACH.
    let reader = support::hold_reader(&pool).await;
    let d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__SCHEDULE__MAINTENANCE", "*/2 * * * * *".into()),
            ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "500ms".into()),
            ("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "20".into()),
            ("PARTWARDEN__DATABASE__DDL_BACKOFF", "300ms".into()),
        ],
        None,
    );
    wait_for(Duration::from_secs(20), "a retrying DDL step", || {
        d.log().contains("retrying in").then_some(())
    });
    // As if the server restarted: every partwarden session is terminated mid-run.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'partwarden' AND datname = current_database()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!killed.is_empty());
    reader.rollback().await.unwrap();
    // The next runs finish the job.
    d.wait_metric(
        &format!("partwarden_future_partitions{{{T}}}"),
        Duration::from_secs(60),
        |v| v == 3.0,
    );
    // Nothing half-done: no standalone leftovers, nothing left to plan.
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
          WHERE c.relname LIKE 'archon_ga4_events_2%' AND c.relkind = 'r' AND NOT c.relispartition",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_partwarden"))
        .args(["maintain", "--dry-run"])
        .env("DATABASE_URL", db.owner_url())
        .env_remove("PARTWARDEN_CONFIG")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("0 action(s)"), "{out}");
}

/// Issue 10.6: a panic in a run used to kill only the worker task: `/metrics` kept
/// `partwarden_leader 1`, `/status` said a run was in progress forever, no failure was
/// counted, and the advisory lock was gone. The reproduction: a parent index with a long
/// non-ASCII name (fitting `<partition>_<index>` into 63 bytes cut a character in two:
/// a panic on byte slicing). Now the
/// name is fitted and the run succeeds.
#[tokio::test]
async fn a_long_non_ascii_index_name_is_maintained_not_a_dead_worker() {
    let db = TestDb::migrated("daemon_unicode_index").await;
    let pool = db.owner_pool().await;
    pool.execute(
        "CREATE INDEX \"xxxxxxxxxxxxxxxxxxxxxxxxxxxééééééééééééééé\" ON ONLY archon_ga4_events (page_title)",
    )
    .await
    .unwrap();
    let d = Daemon::start(&env_for(db.owner_url()), None);
    d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}"),
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
    // (the statistics refresh that follows the run)
    d.wait_metric(
        &format!("partwarden_indexes_missing{{{T}}}"),
        Duration::from_secs(10),
        |v| v == 0.0,
    );
    let (_, st) = d.get("/status").unwrap();
    let doc: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(doc["maintenance_running"], false, "{st}");
    let built: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'public.\"xxxxxxxxxxxxxxxxxxxxxxxxxxxééééééééééééééé\"'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        built, 5,
        "every partition (4 months + default) has the index"
    );
}

/// A run that panics anyway (a fault point) is a failed run: counted, leadership given
/// up with the lock and taken again, `/status` not stuck, the daemon alive; the next run
/// (SIGHUP) succeeds.
#[tokio::test]
async fn a_panicking_run_is_a_counted_failure_and_the_daemon_goes_on() {
    let db = TestDb::migrated("daemon_panic").await;
    make_work(&db).await;
    let mut d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("FAILPOINTS", "maintain_table=1*panic(injected)".into()),
        ],
        None,
    );
    d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"failure\"}}"),
        Duration::from_secs(30),
        |v| v == 1.0,
    );
    assert!(d.log().contains("injected"), "{}", d.log());
    assert!(d.log().contains("maintenance run panicked"), "{}", d.log());
    wait_for(Duration::from_secs(10), "/status not stuck", || {
        let (_, st) = d.get("/status")?;
        st.contains("\"maintenance_running\": false").then_some(())
    });
    // The lock was released with the task (leadership given up) and is taken again.
    wait_for(Duration::from_secs(10), "leadership given up", || {
        d.log()
            .contains("leadership changed leader=false")
            .then_some(())
    });
    d.wait_metric("partwarden_leader", Duration::from_secs(15), |v| v == 1.0);
    assert!(d.alive());
    let _ = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status();
    d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}"),
        Duration::from_secs(30),
        |v| v == 1.0,
    );
    d.wait_metric(
        &format!("partwarden_future_partitions{{{T}}}"),
        Duration::from_secs(10),
        |v| v == 3.0,
    );
}

/// Issue 11: the HTTP server keeps connections alive, and 2,000 idle connections (never
/// sending a byte) do not keep `/healthz` from answering (the hand-written server timed
/// out with about 50 under `ulimit -n 64`).
#[tokio::test]
async fn healthz_answers_beside_two_thousand_idle_connections_and_keeps_alive() {
    use std::io::{BufRead, BufReader, Read, Write};
    let d = Daemon::start(
        &[(
            "DATABASE_URL",
            "postgres://partwarden@127.0.0.1:1/none".to_string(),
        )],
        None,
    );
    wait_for(Duration::from_secs(20), "the daemon listens", || {
        d.get("/healthz").filter(|(c, _)| *c == 200)
    });
    let idle: Vec<std::net::TcpStream> = (0..2000)
        .map(|i| {
            std::net::TcpStream::connect(("127.0.0.1", d.port))
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    let started = std::time::Instant::now();
    let (code, body) = d.get("/healthz").expect("/healthz answers");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "/healthz took {:?}",
        started.elapsed()
    );
    drop(idle);

    // Two requests on one connection (keep-alive).
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for path in ["/healthz", "/readyz"] {
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let want = if path == "/healthz" {
            "HTTP/1.1 200"
        } else {
            "HTTP/1.1 503"
        };
        assert!(status.starts_with(want), "{path}: {status}");
    }
}

/// Issue 13.4: `http.per_partition_metrics = false` keeps only per-table series (table
/// size and rows among them); the statistics refresh reports what it cost.
#[tokio::test]
async fn per_table_metrics_only_when_asked_and_the_refresh_cost_is_reported() {
    let db = TestDb::migrated("daemon_per_table_metrics").await;
    let mut d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__HTTP__PER_PARTITION_METRICS", "false".into()),
        ],
        None,
    );
    let m = d.wait_metric(
        &format!("partwarden_partitions{{{T}}}"),
        Duration::from_secs(30),
        |v| v >= 4.0,
    );
    assert!(!m.contains("partwarden_partition_size_bytes{"), "{m}");
    assert!(!m.contains("partwarden_partition_rows{"), "{m}");
    let bytes = sample(&m, &format!("partwarden_table_size_bytes{{{T}}}")).unwrap_or(0.0);
    assert!(bytes > 0.0, "{m}");
    let pool = db.owner_pool().await;
    let expected: i64 = sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(inhrelid))::int8 FROM pg_inherits
          WHERE inhparent = 'archon_ga4_events'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(bytes as i64, expected, "{m}");
    assert!(
        sample(&m, &format!("partwarden_table_rows{{{T}}}")).is_some(),
        "{m}"
    );
    let cost = sample(&m, "partwarden_statistics_refresh_seconds").unwrap_or(-1.0);
    assert!((0.0..5.0).contains(&cost), "{cost}\n{m}");
    d.terminate();

    // The default keeps them.
    let d = Daemon::start(&env_for(db.owner_url()), None);
    let m = d.wait_metric(
        &format!("partwarden_partitions{{{T}}}"),
        Duration::from_secs(30),
        |v| v >= 4.0,
    );
    assert!(m.contains("partwarden_partition_size_bytes{"), "{m}");
}
