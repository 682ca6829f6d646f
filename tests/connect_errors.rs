//! A daemon or a command that cannot connect says why, at once: the server's or the
//! network's reason and where it tried (host:port), in the log, `/readyz` and `/status`,
//! never the password. Before, the daemon logged only `partwarden starting` and the
//! commands said "pool timed out" after 10 s.
mod support;

use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

use support::cli::partwarden_at;
use support::cluster::PrivateCluster;
use support::daemon::{free_port, wait_for, Daemon};
use support::fake_pg::FakeServer;

const PASSWORD: &str = "s3cret-in-the-url";

/// A loopback port with nothing listening on it (free_port's listener is gone).
fn closed_port() -> u16 {
    free_port()
}

/// Waits until the daemon's log contains `text` (case-insensitive); returns when it saw it.
fn wait_for_log(d: &Daemon, text: &str, timeout: Duration) -> Instant {
    let text = text.to_lowercase();
    wait_for(timeout, &format!("{text:?} in the log"), || {
        d.log().to_lowercase().contains(&text).then(Instant::now)
    })
}

fn status_doc(d: &Daemon) -> serde_json::Value {
    let (code, body) = d.get("/status").expect("/status answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
}

/// Everything the daemon said, for the password check.
fn everything(d: &Daemon) -> String {
    let readyz = d.get("/readyz").map(|(_, b)| b).unwrap_or_default();
    let status = d.get("/status").map(|(_, b)| b).unwrap_or_default();
    format!("{}\n{readyz}\n{status}", d.log())
}

#[tokio::test]
async fn a_wrong_password_is_logged_and_served_at_once_and_the_password_never_shown() {
    let pg = PrivateCluster::primary("wrongpw");
    pg.require_password("pw_login", "the-right-one", "app")
        .await;
    let url = format!("postgres://pw_login:{PASSWORD}@127.0.0.1:{}/app", pg.port);
    let why = "password authentication failed for user \"pw_login\"";
    let target = format!("127.0.0.1:{}", pg.port);

    let mut d = Daemon::start(&[("DATABASE_URL", url.clone())], None);
    wait_for_log(&d, why, Duration::from_secs(5));
    let (code, body) = d.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(why) && body.contains(&target),
        "/readyz: {body}"
    );
    let doc = status_doc(&d);
    assert_eq!(doc["database_up"], false, "{doc}");
    assert_eq!(doc["database"]["up"], false, "{doc}");
    let error = doc["database"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(why) && error.contains(&target), "{doc}");
    assert!(doc["database"]["unreachable_since"].is_string(), "{doc}");

    // The command line says the same, naming where it tried.
    let run = partwarden_at(&url, None, &[], &["status"]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out.contains(why) && run.out.contains(&target),
        "{}",
        run.out
    );
    assert!(!run.out.contains(PASSWORD), "password shown: {}", run.out);

    // Once the password is right, the reason goes and the daemon says it is back.
    let mut su = PgConnection::connect(&pg.url("postgres", "postgres"))
        .await
        .unwrap();
    su.execute(format!("ALTER ROLE pw_login PASSWORD '{PASSWORD}'").as_str())
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "readyz 200", || {
        d.get("/readyz")
            .filter(|(c, b)| *c == 200 && b == "ready\n")
    });
    wait_for_log(&d, "database reachable", Duration::from_secs(5));
    let doc = status_doc(&d);
    assert_eq!(doc["database"]["up"], true, "{doc}");
    assert!(doc["database"]["error"].is_null(), "{doc}");

    let all = everything(&d);
    assert_eq!(d.terminate().0, Some(0), "{}", d.log());
    assert!(!all.contains(PASSWORD), "password shown:\n{all}");
    assert!(!all.contains("the-right-one"), "password shown:\n{all}");
}

#[tokio::test]
async fn a_closed_port_is_logged_at_once_then_only_with_backoff() {
    let port = closed_port();
    let url = format!("postgres://partwarden:{PASSWORD}@127.0.0.1:{port}/app");
    let mut d = Daemon::start(&[("DATABASE_URL", url)], None);
    let seen = wait_for_log(&d, "connection refused", Duration::from_secs(5));
    let target = format!("127.0.0.1:{port}");
    let (code, body) = d.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.to_lowercase().contains("connection refused") && body.contains(&target),
        "/readyz: {body}"
    );
    let doc = status_doc(&d);
    let error = doc["database"]["error"].as_str().unwrap_or_default();
    assert!(
        error.to_lowercase().contains("connection refused") && error.contains(&target),
        "{doc}"
    );

    // The daemon tries every second; the log says it at once, again after 5–10 s, and
    // not again before 15 s: two lines in 13 s, where one a try would be thirteen.
    std::thread::sleep(Duration::from_secs(13).saturating_sub(seen.elapsed()));
    let log = d.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("connection refused"))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "expected the first line and one repeat:\n{log}"
    );
    assert!(
        lines[0].contains("database unreachable") && lines[0].contains(&target),
        "{log}"
    );
    assert!(lines[1].contains("database still unreachable"), "{log}");
    assert!(d.alive(), "{log}");
    let all = everything(&d);
    assert_eq!(d.terminate().0, Some(0), "{}", d.log());
    assert!(!all.contains(PASSWORD), "password shown:\n{all}");
}

#[test]
fn commands_against_a_closed_port_fail_at_once_naming_it() {
    let port = closed_port();
    let url = format!("postgres://partwarden:{PASSWORD}@127.0.0.1:{port}/app");
    let target = format!("127.0.0.1:{port}");
    for args in [
        &["status"][..],
        &["maintain", "--dry-run"],
        &["maintain"],
        &["check-config"],
        &["migrate"],
    ] {
        let start = Instant::now();
        let run = partwarden_at(&url, None, &[], args);
        let took = start.elapsed();
        // The default connect_timeout (10 s) is what the pool used to wait out.
        assert!(
            took < Duration::from_secs(3),
            "{args:?} took {took:?}: {}",
            run.out
        );
        assert_eq!(run.code, 1, "{args:?}: {}", run.out);
        assert!(
            run.out.contains(&target) && run.out.to_lowercase().contains("connection refused"),
            "{args:?}: {}",
            run.out
        );
        assert!(
            !run.out.contains(PASSWORD),
            "{args:?}: password shown: {}",
            run.out
        );
    }
}

#[tokio::test]
async fn an_unknown_host_is_named_with_the_lookup_failure() {
    // `.invalid` never resolves (RFC 6761).
    let url = format!("postgres://partwarden:{PASSWORD}@no-such-db.invalid:5432/app");
    let why = "failed to lookup address";
    let target = "no-such-db.invalid:5432";

    let run = partwarden_at(&url, None, &[], &["status"]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out.contains(target) && run.out.contains(why),
        "{}",
        run.out
    );
    assert!(!run.out.contains(PASSWORD), "password shown: {}", run.out);

    let mut d = Daemon::start(&[("DATABASE_URL", url)], None);
    wait_for_log(&d, why, Duration::from_secs(10));
    let (code, body) = d.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(target) && body.contains(why),
        "/readyz: {body}"
    );
    let all = everything(&d);
    assert_eq!(d.terminate().0, Some(0), "{}", d.log());
    assert!(!all.contains(PASSWORD), "password shown:\n{all}");
}

/// A server older than PostgreSQL 14 (here a stand-in announcing 13.14 at startup, as a
/// real one does) is refused at connect, naming its version and the minimum: every
/// command exits 1 at once, and the daemon stays up, not ready, with that reason in the
/// log, `/readyz` and `/status`, and maintains nothing.
#[tokio::test]
async fn a_server_older_than_14_is_refused_naming_its_version_and_the_minimum() {
    let old = FakeServer::start("13.14 (Debian 13.14-0+deb11u1)");
    let url = old.url("partwarden", "app");
    let why = format!(
        "127.0.0.1:{} runs PostgreSQL 13.14, which partwarden does not support: it needs \
         PostgreSQL 14 or later",
        old.port
    );
    for args in [
        &["status"][..],
        &["maintain", "--dry-run"],
        &["maintain"],
        &["check-config"],
        &["migrate"],
    ] {
        let start = Instant::now();
        let run = partwarden_at(&url, None, &[], args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.out);
        assert!(run.out.contains(&why), "{args:?}: {}", run.out);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{args:?} took {:?}: {}",
            start.elapsed(),
            run.out
        );
    }

    let mut d = Daemon::start(&[("DATABASE_URL", url)], None);
    wait_for_log(&d, &why, Duration::from_secs(5));
    let (code, body) = d.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!("database unsupported: {why}")),
        "/readyz: {body}"
    );
    let doc = status_doc(&d);
    assert_eq!(doc["database_up"], false, "{doc}");
    let error = doc["database"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&why), "{doc}");
    // It keeps checking (a second apart) and never goes further than the handshake.
    let seen = old.handshakes.load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        old.handshakes.load(std::sync::atomic::Ordering::Relaxed) > seen,
        "the daemon stopped trying"
    );
    assert_eq!(doc["leader"], false, "{doc}");
    let log = d.log();
    assert!(log.contains("database unsupported"), "{log}");
    assert!(!log.contains("maintenance done"), "{log}");
    assert_eq!(d.terminate().0, Some(0), "{}", d.log());
}
