//! Maintenance is online: no application write is rejected, and none waits behind
//! partwarden for long, while partitions are created and expired under concurrent load
//! (issue 10, items 1 and 10). Writers run as the application role with RLS.
mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Months, Utc};
use partwarden::calendar::{partition_name, Interval};
use sqlx::{Executor, PgPool};
use support::cli::{events_of, grant_app, partwarden_async, Writers};
use support::{pool_sized, TestDb};

const TENANTS: [&str; 4] = [
    "00000000-0000-0000-0000-00000000000a",
    "00000000-0000-0000-0000-00000000000b",
    "00000000-0000-0000-0000-00000000000c",
    "00000000-0000-0000-0000-00000000000d",
];

fn month(k: u32) -> DateTime<Utc> {
    Interval::Month.shift(Interval::Month.floor(Utc::now()), i64::from(k))
}

/// An instant inside `[from, from + 1 month)`, spread by `k`.
fn inside(from: DateTime<Utc>, k: u64) -> DateTime<Utc> {
    from + chrono::Duration::seconds((k * 7919 % (27 * 86_400)) as i64)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Issue 10.1: 32 writers insert into a month that has no partition (their rows land in
/// the default partition) while `maintain` creates it, moving the waiting rows. Every
/// insert used to fail at commit with `new row for relation "archon_ga4_events_default"
/// violates partition constraint` (23514): an insert routes its row before it waits for
/// the lock on the default partition. Now writers are held before routing while rows
/// move and the ATTACH commits: none is rejected, and every acknowledged row is in the
/// new partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_insert_is_rejected_while_a_partition_is_created_with_rls() {
    let db = TestDb::migrated("online_create_rls").await;
    let owner = db.owner_pool().await;
    grant_app(&owner, "public").await;
    let app = pool_sized(&db.app_url(), 40).await;
    for round in 0..2 {
        let from = month(1);
        let to = month(2);
        let name = partition_name("archon_ga4_events", Interval::Month, from);
        owner
            .execute(format!("DROP TABLE IF EXISTS {name}").as_str())
            .await
            .unwrap();
        let writers = Writers::start(&app, &TENANTS, 32, move |k| inside(from, k));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let run = partwarden_async(
            &db,
            None,
            env(&[("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "20")]),
            args(&["maintain"]),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let report = writers.stop().await;
        assert_eq!(run.code, 0, "round {round}: {}", run.out);
        assert!(
            report.rejected.is_empty(),
            "round {round}: {} of {} inserts rejected, e.g. {:?}",
            report.rejected.len(),
            report.rejected.len() + report.acknowledged.len(),
            report.rejected.first()
        );
        assert!(
            report.acknowledged.len() > 100,
            "round {round}: only {} inserts",
            report.acknowledged.len()
        );
        assert_all_in(&owner, &report.acknowledged, from, to, &name).await;
    }
}

/// Every acknowledged insert is in `partition`, nothing of the range in another.
async fn assert_all_in(
    pool: &PgPool,
    acknowledged: &[(String, i64)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    partition: &str,
) {
    for t in TENANTS {
        let mut want: Vec<i64> = acknowledged
            .iter()
            .filter(|(x, _)| x == t)
            .map(|(_, id)| *id)
            .collect();
        want.sort();
        let rows = events_of(pool, t, from, to).await;
        let elsewhere: Vec<&(i64, String)> = rows.iter().filter(|(_, p)| p != partition).collect();
        assert!(
            elsewhere.is_empty(),
            "rows outside {partition}: {elsewhere:?}"
        );
        let mut got: Vec<i64> = rows.into_iter().map(|(id, _)| id).collect();
        got.sort();
        assert_eq!(
            got, want,
            "tenant {t}: the table holds exactly the acknowledged rows"
        );
    }
}

/// Issue 10.1, without RLS: with a default partition that is not FORCE RLS nothing held
/// writers back during the move, and rows landing in the default partition between the
/// move and the ATTACH's scan made the ATTACH itself fail. Three rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_insert_is_rejected_and_the_attach_succeeds_without_rls() {
    let db = TestDb::migrated("online_create_plain").await;
    let owner = db.owner_pool().await;
    owner
        .execute(
            "CREATE TABLE plain_events (id bigserial, ts timestamptz NOT NULL, v int,
                                        PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)",
        )
        .await
        .unwrap();
    grant_app(&owner, "public").await;
    let toml = "[[tables]]\nname = \"plain_events\"\ncolumn = \"ts\"\n".to_string();
    let run = partwarden_async(&db, Some(toml.clone()), vec![], args(&["maintain"])).await;
    assert_eq!(run.code, 0, "{}", run.out);
    let app = pool_sized(&db.app_url(), 40).await;
    for round in 0..3 {
        let from = month(1);
        let name = partition_name("plain_events", Interval::Month, from);
        owner
            .execute(format!("DROP TABLE {name}").as_str())
            .await
            .unwrap();
        let writers = Writers::start_sql(
            &app,
            "INSERT INTO plain_events (ts, v) VALUES ($2, length($1)) RETURNING id",
            &TENANTS,
            32,
            move |k| inside(from, k),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let run = partwarden_async(
            &db,
            Some(toml.clone()),
            env(&[("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "20")]),
            args(&["maintain"]),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let report = writers.stop().await;
        assert_eq!(run.code, 0, "round {round}: the ATTACH failed: {}", run.out);
        assert!(
            report.rejected.is_empty(),
            "round {round}: {:?}",
            report.rejected.first()
        );
        let (in_partition, in_default): (i64, i64) = sqlx::query_as(&format!(
            "SELECT (SELECT count(*) FROM {name}), (SELECT count(*) FROM plain_events_default)"
        ))
        .fetch_one(&owner)
        .await
        .unwrap();
        assert_eq!(in_default, 0, "round {round}");
        assert_eq!(
            in_partition as usize,
            report.acknowledged.len(),
            "round {round}"
        );
    }
}

/// Issue 10.10: with a default partition, expiry needs ACCESS EXCLUSIVE on the parent.
/// Under a reader holding the current month (4 s here), each DETACH attempt used to queue
/// for the whole lock_timeout with every insert waiting behind it (stalls of
/// lock_timeout, one per attempt). Now partwarden sees the reader in pg_locks and does
/// not queue; the partition to create is created at once (it needs no lock the reader
/// holds), and the expiry completes in the same run once the reader is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_insert_waits_behind_maintenance_while_a_reader_holds_the_current_month() {
    let db = TestDb::migrated("online_reader").await;
    let owner = db.owner_pool().await;
    grant_app(&owner, "public").await;
    let app = pool_sized(&db.app_url(), 8).await;
    let next = partition_name("archon_ga4_events", Interval::Month, month(1));
    owner
        .execute(format!("DROP TABLE {next}").as_str())
        .await
        .unwrap();
    let old_from = Interval::Month.floor(Utc::now().checked_sub_months(Months::new(30)).unwrap());
    let old = partition_name("archon_ga4_events", Interval::Month, old_from);
    let _: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1)")
        .bind(old_from.date_naive())
        .fetch_one(&owner)
        .await
        .unwrap();

    // The reader: the current month only (pruned at plan time: ACCESS SHARE on the parent
    // and that partition).
    let (cur, nxt) = (month(0), month(1));
    let mut reader = support::tenant_tx(&app, TENANTS[0]).await;
    let _: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM archon_ga4_events WHERE event_timestamp >= $1 AND event_timestamp < $2",
    )
    .bind(cur)
    .bind(nxt)
    .fetch_one(&mut *reader)
    .await
    .unwrap();

    let writers = Writers::start(&app, &TENANTS, 2, |_| Utc::now());
    let watch = LockQueueWatch::start(owner.clone());
    let started = Instant::now();
    let run = tokio::spawn({
        let db = TestDb {
            name: db.name.clone(),
        };
        async move {
            partwarden_async(
                &db,
                None,
                env(&[
                    ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "1s"),
                    ("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "8"),
                    ("PARTWARDEN__DATABASE__DDL_BACKOFF", "500ms"),
                ]),
                args(&["maintain"]),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    reader.commit().await.unwrap();
    let run = run.await.unwrap();
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = writers.stop().await;
    let longest_queue = watch.stop().await;

    assert_eq!(
        run.code, 0,
        "the expiry completes once the reader is gone: {}",
        run.out
    );
    assert!(run.out.contains("not queueing behind it"), "{}", run.out);
    assert!(
        took > Duration::from_secs(4),
        "the expiry waited for the reader ({took:?})"
    );
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'archon_ga4_events'::regclass",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(parts.contains(&next), "{parts:?}");
    assert!(!parts.contains(&old), "{parts:?}");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected.first());
    assert!(
        report.acknowledged.len() > 50,
        "{}",
        report.acknowledged.len()
    );
    assert!(
        longest_queue < Duration::from_millis(300),
        "partwarden waited in the lock queue for {longest_queue:?} (lock_wait is 50ms)"
    );
    assert!(
        report.slowest < Duration::from_millis(500),
        "an insert took {:?}: it waited behind maintenance",
        report.slowest
    );
}

/// Samples `pg_locks` every 10 ms: the longest time a partwarden session was seen
/// waiting for a relation lock.
struct LockQueueWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl LockQueueWatch {
    fn start(pool: PgPool) -> LockQueueWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut longest = Duration::ZERO;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let waited: Option<f64> = sqlx::query_scalar(
                    "SELECT max(extract(epoch FROM clock_timestamp() - l.waitstart))::float8
                       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE NOT l.granted AND l.locktype = 'relation' AND a.application_name = 'partwarden'",
                )
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
                if let Some(w) = waited {
                    longest = longest.max(Duration::from_secs_f64(w.max(0.0)));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            longest
        });
        LockQueueWatch { stop, task }
    }

    async fn stop(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}
