//! On a hot standby partwarden only reports: it plans, changes nothing, and says why.
mod support;

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};
use support::cluster::PrivateCluster;
use support::daemon::{sample, Daemon};

fn partwarden(url: &str, args: &[&str]) -> (i32, String) {
    let run = support::cli::partwarden_at(url, None, &[], args);
    (run.code, run.out)
}

/// Database `app` owned by the non-superuser `partwarden`, with pgvector (a superuser step).
async fn create_app_database(pg: &PrivateCluster) {
    let mut su = PgConnection::connect(&pg.url("postgres", "postgres"))
        .await
        .unwrap();
    su.execute("CREATE ROLE partwarden LOGIN").await.unwrap();
    su.execute("CREATE DATABASE app OWNER partwarden")
        .await
        .unwrap();
    let mut su = PgConnection::connect(&pg.url("postgres", "app"))
        .await
        .unwrap();
    su.execute("CREATE EXTENSION vector").await.unwrap();
}

#[tokio::test]
async fn a_hot_standby_is_only_reported_on() {
    let primary = PrivateCluster::primary("primary");
    create_app_database(&primary).await;
    let (code, out) = partwarden(&primary.url("partwarden", "app"), &["migrate"]);
    assert_eq!(code, 0, "{out}");
    let standby = PrivateCluster::standby_of(&primary, "standby");
    let url = standby.url("partwarden", "app");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(in_recovery);

    // Ten years on, the standby's catalog needs work; partwarden plans it and does none.
    let (code, out) = partwarden(
        &url,
        &["maintain", "--execute", "--now", "2036-06-01T00:00:00Z"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("hot standby"), "{out}");
    let parts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'archon_ga4_events'::regclass",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(parts, 5, "the standby changed");

    // The daemon on a standby serves metrics and stays up.
    let mut d = Daemon::start(&[("DATABASE_URL", url.clone())], None);
    let m = d.wait_metric(
        "partwarden_future_partitions{table=\"public.archon_ga4_events\"}",
        Duration::from_secs(20),
        |v| v == 3.0,
    );
    assert_eq!(sample(&m, "partwarden_database_up"), Some(1.0));
    assert_eq!(d.terminate().0, Some(0), "{}", d.log());
    assert!(!d.log().contains("ERROR"), "{}", d.log());
}

#[tokio::test]
async fn readiness_follows_a_database_that_is_stopped_and_started() {
    let pg = PrivateCluster::primary("restart");
    create_app_database(&pg).await;
    let url = pg.url("partwarden", "app");
    let (code, out) = partwarden(&url, &["migrate"]);
    assert_eq!(code, 0, "{out}");
    let mut d = Daemon::start(
        &[
            ("DATABASE_URL", url),
            // The default connect_timeout (10 s) stays; a long stats_interval: readiness
            // must depend on neither.
            ("PARTWARDEN__SCHEDULE__STATS_INTERVAL", "60s".into()),
        ],
        None,
    );
    support::daemon::wait_for(Duration::from_secs(10), "ready", || {
        d.get("/readyz").filter(|(c, _)| *c == 200)
    });
    pg.stop();
    support::daemon::wait_for(
        Duration::from_secs(10),
        "readyz 503 with the database stopped",
        || d.get("/readyz").filter(|(c, _)| *c == 503),
    );
    assert_eq!(sample(&d.metrics(), "partwarden_database_up"), Some(0.0));
    assert_eq!(d.get("/healthz").unwrap().0, 200);
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.alive(), "{}", d.log());
    pg.start();
    let back = std::time::Instant::now();
    support::daemon::wait_for(
        Duration::from_secs(10),
        "readyz 200 after the database started",
        || d.get("/readyz").filter(|(c, _)| *c == 200),
    );
    // SPEC §8: ready within a second of the database being reachable (+ slack for 2 cores).
    let took = back.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "ready {took:?} after the database came back"
    );
    assert_eq!(d.terminate().0, Some(0), "{}", d.log());
}
