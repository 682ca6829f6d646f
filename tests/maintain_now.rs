//! Issue 12.2, "maintenance now, while a daemon runs": the leader used to hold the
//! maintenance advisory lock all the time, so `partwarden maintain` — what the runbooks
//! and docs/operations.md tell operators to run — was always refused. Now a run (the
//! daemon's or the CLI's) holds the run lock only while it runs, and leadership has a lock
//! of its own.
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use partwarden::engine::manager::MAINTENANCE_LOCK_KEY;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use support::cli::{partwarden_async, Run};
use support::daemon::{sample, wait_for, Daemon};
use support::TestDb;

const T: &str = "table=\"public.archon_ga4_events\"";

fn series(name: &str) -> String {
    format!("{name}{{{T}}}")
}

fn runs(result: &str) -> String {
    format!("partwarden_maintenance_runs_total{{{T},result=\"{result}\"}}")
}

/// A daemon whose cron never fires during a test (1 January only): every run it makes is
/// its start run or one the test asks for.
fn start_daemon(db: &TestDb) -> Daemon {
    Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__SCHEDULE__MAINTENANCE", "0 0 0 1 1 *".into()),
        ],
        None,
    )
}

/// Started, leading, and done with its start run.
fn start_leader(db: &TestDb) -> Daemon {
    let d = start_daemon(db);
    d.wait_metric(&runs("success"), Duration::from_secs(30), |v| v == 1.0);
    d.wait_metric("partwarden_leader", Duration::from_secs(10), |v| v == 1.0);
    d
}

async fn maintain(db: &TestDb, args: &[&str]) -> Run {
    let mut all = vec!["maintain".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    partwarden_async(db, None, Vec::new(), all).await
}

async fn missing(pool: &PgPool, wanted: &[String]) -> Vec<String> {
    let have = support::partitions(pool).await;
    wanted
        .iter()
        .filter(|p| !have.contains(p))
        .cloned()
        .collect()
}

/// A session of the test holding the run lock, as a run under way elsewhere does; and its
/// pid. Taking it at all fails on a daemon that holds it while it only leads.
async fn hold_run_lock(pool: &PgPool) -> (PoolConnection<Postgres>, i32) {
    let mut conn = pool.acquire().await.unwrap();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(MAINTENANCE_LOCK_KEY)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(
        got,
        "the leading daemon holds the run lock between its runs"
    );
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (conn, pid)
}

async fn release_run_lock(mut conn: PoolConnection<Postgres>) {
    let released: bool = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(MAINTENANCE_LOCK_KEY)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(released);
}

fn sighup(d: &Daemon) {
    let sent = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn maintain_runs_now_beside_a_leading_daemon() {
    let db = TestDb::migrated("now_beside_daemon").await;
    let d = start_leader(&db);
    let pool = db.owner_pool().await;
    let dropped = support::drop_future_partitions(&pool).await;
    let before = chrono::Utc::now();

    let run = maintain(&db, &["--wait", "5s"]).await;
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(missing(&pool, &dropped).await.is_empty(), "{}", run.out);

    // The daemon still leads, did none of it, and its metrics follow the CLI's run: the
    // gauges and the last success (recorded in partwarden_state).
    d.wait_metric(
        &series("partwarden_future_partitions"),
        Duration::from_secs(10),
        |v| v == 3.0,
    );
    let m = d.wait_metric(
        &series("partwarden_maintenance_last_success_timestamp_seconds"),
        Duration::from_secs(10),
        |v| v >= before.timestamp_millis() as f64 / 1000.0,
    );
    assert_eq!(sample(&m, "partwarden_leader"), Some(1.0), "{m}");
    assert_eq!(sample(&m, &runs("success")), Some(1.0), "{m}");
}

#[tokio::test]
async fn maintain_waits_a_bounded_time_for_a_run_under_way_and_says_who_holds_it() {
    let db = TestDb::migrated("now_busy").await;
    let d = start_leader(&db);
    let pool = db.owner_pool().await;
    let dropped = support::drop_future_partitions(&pool).await;
    let (holder, pid) = hold_run_lock(&pool).await;

    let started = Instant::now();
    let run = maintain(&db, &["--wait", "1s"]).await;
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?}"
    );
    for said in [
        "another maintenance run is under way",
        "after waiting 1s",
        &format!("pid {pid}"),
        "another `partwarden maintain`",
        "--wait",
    ] {
        assert!(run.out.contains(said), "no {said:?} in: {}", run.out);
    }
    assert_eq!(
        missing(&pool, &dropped).await,
        dropped,
        "a refused run changed something"
    );

    release_run_lock(holder).await;
    let run = maintain(&db, &["--wait", "1s"]).await;
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(missing(&pool, &dropped).await.is_empty());
    assert_eq!(sample(&d.metrics(), "partwarden_leader"), Some(1.0));
}

/// The daemon's own run holds the run lock: `maintain` meanwhile is refused, naming it.
#[tokio::test]
async fn maintain_during_the_daemons_run_is_refused_naming_that_run() {
    let db = TestDb::migrated("now_during_daemon_run").await;
    let pool = db.owner_pool().await;
    support::drop_future_partitions(&pool).await;
    // A reader keeps the daemon's first ATTACH retrying: its run lasts seconds.
    let reader = support::hold_reader(&pool).await;
    let d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__SCHEDULE__MAINTENANCE", "0 0 0 1 1 *".into()),
            ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "500ms".into()),
            ("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "20".into()),
            ("PARTWARDEN__DATABASE__DDL_BACKOFF", "300ms".into()),
        ],
        None,
    );
    wait_for(Duration::from_secs(20), "a retrying DDL step", || {
        d.log().contains("retrying in").then_some(())
    });
    let run = maintain(&db, &["--wait", "1s"]).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out.contains("the daemon's maintenance run") && run.out.contains("leading replica"),
        "{}",
        run.out
    );
    reader.rollback().await.unwrap();
    d.wait_metric(
        &series("partwarden_future_partitions"),
        Duration::from_secs(60),
        |v| v == 3.0,
    );
}

/// While a run elsewhere holds the run lock, the daemon's run waits for it (no overlap), a
/// trigger meanwhile is skipped and counted, and the waiting run follows the other one.
#[tokio::test]
async fn a_daemon_run_waits_for_a_run_elsewhere_and_later_triggers_are_skipped() {
    let db = TestDb::migrated("now_daemon_waits").await;
    let d = start_leader(&db);
    let pool = db.owner_pool().await;
    let dropped = support::drop_future_partitions(&pool).await;
    let (holder, pid) = hold_run_lock(&pool).await;

    sighup(&d);
    wait_for(Duration::from_secs(10), "the run waiting", || {
        d.log()
            .contains("maintenance waits for the run under way elsewhere to end")
            .then_some(())
    });
    assert!(d.log().contains(&format!("pid {pid}")), "{}", d.log());
    sighup(&d);
    d.wait_metric(&runs("skipped"), Duration::from_secs(10), |v| v == 1.0);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        missing(&pool, &dropped).await,
        dropped,
        "the daemon ran beside it"
    );
    let m = d.metrics();
    assert_eq!(sample(&m, &runs("success")), Some(1.0), "{m}");
    assert_eq!(sample(&m, "partwarden_leader"), Some(1.0), "{m}");

    release_run_lock(holder).await;
    d.wait_metric(&runs("success"), Duration::from_secs(20), |v| v == 2.0);
    assert!(missing(&pool, &dropped).await.is_empty());
    assert_eq!(sample(&d.metrics(), &runs("skipped")), Some(1.0));
}

/// Two daemons: exactly one leads, before, during and after a `maintain` beside them.
#[tokio::test]
async fn two_daemons_keep_exactly_one_leader_while_maintain_runs() {
    let db = TestDb::migrated("now_two_daemons").await;
    let a = start_daemon(&db);
    let b = start_daemon(&db);
    let leaders = || -> Vec<f64> {
        [&a, &b]
            .iter()
            .map(|d| sample(&d.metrics(), "partwarden_leader").unwrap_or(-1.0))
            .collect()
    };
    let first = wait_for(Duration::from_secs(30), "one leader", || {
        let l = leaders();
        (l.iter().sum::<f64>() == 1.0 && !l.contains(&-1.0)).then_some(l)
    });
    let leader = if first[0] == 1.0 { &a } else { &b };
    leader.wait_metric(&runs("success"), Duration::from_secs(30), |v| v == 1.0);
    let pool = db.owner_pool().await;
    let dropped = support::drop_future_partitions(&pool).await;

    let run = maintain(&db, &["--wait", "5s"]).await;
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(missing(&pool, &dropped).await.is_empty());
    for _ in 0..10 {
        assert_eq!(leaders(), first, "leadership moved or doubled");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Rolling upgrade: a daemon from before the split holds the run lock for as long as it
/// leads (a test session stands in for it). A new daemon does not claim leadership beside
/// it, and leads once it lets go. (This held before too; it must keep holding.)
#[tokio::test]
async fn a_session_holding_the_run_lock_for_good_keeps_a_new_daemon_from_leading() {
    let db = TestDb::migrated("now_old_daemon").await;
    let pool = db.owner_pool().await;
    let (old_daemon, _) = hold_run_lock(&pool).await;
    let d = start_daemon(&db);
    wait_for(Duration::from_secs(20), "ready", || {
        d.get("/readyz").filter(|(c, _)| *c == 200)
    });
    std::thread::sleep(Duration::from_secs(3));
    let m = d.metrics();
    assert_eq!(sample(&m, "partwarden_leader"), Some(0.0), "{m}");
    assert_eq!(sample(&m, &runs("success")), Some(0.0), "{m}");
    release_run_lock(old_daemon).await;
    d.wait_metric("partwarden_leader", Duration::from_secs(15), |v| v == 1.0);
    d.wait_metric(&runs("success"), Duration::from_secs(20), |v| v == 1.0);
}
