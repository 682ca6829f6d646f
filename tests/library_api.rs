//! The seed's Python API, in Rust: `PartitionManager`.
mod support;

use chrono::{DateTime, TimeZone, Utc};
use partwarden::calendar::{Interval, RetentionPeriod};
use partwarden::config::Config;
use partwarden::PartitionManager;
use support::TestDb;

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

async fn manager(db: &TestDb) -> PartitionManager {
    let config = Config::from_sources(None, &[("DATABASE_URL".into(), db.owner_url())]).unwrap();
    let pool = partwarden::engine::db::pool(
        config.database_url().unwrap().expose(),
        &(&config.database).into(),
    )
    .unwrap();
    PartitionManager::new(pool, config.tables[0].clone())
}

#[tokio::test]
async fn the_seed_api_works_online() {
    let db = TestDb::migrated("library").await;
    let m = manager(&db).await;

    let status = m.create_partition(utc(2032, 5, 17)).await.unwrap();
    assert_eq!(status, "Successfully created partition archon_ga4_events_2032_05 for date range 2032-05-01 to 2032-06-01");
    let status = m.create_partition(utc(2032, 5, 1)).await.unwrap();
    assert_eq!(status, "Partition archon_ga4_events_2032_05 already exists");

    let ensured = m.ensure_partitions_exist(4).await.unwrap();
    assert_eq!(ensured.len(), 5);
    let start = Interval::Month.floor(Utc::now());
    for (k, p) in ensured.iter().enumerate() {
        let name = partwarden::calendar::partition_name(
            "archon_ga4_events",
            Interval::Month,
            Interval::Month.shift(start, k as i64),
        );
        assert_eq!(p.partition_name, name);
        if k < 4 {
            assert_eq!(p.status, format!("Partition {name} already exists"));
        } else {
            assert!(
                p.status.starts_with("Successfully created partition"),
                "{}",
                p.status
            );
        }
    }

    let stats = m.get_partition_stats().await.unwrap();
    assert_eq!(stats.len(), 7, "{stats:?}");
    assert!(stats.last().unwrap().is_default);
    assert!(
        stats
            .iter()
            .all(|s| s.size_bytes > 0 && s.indexes_valid == 6 && s.rls_ok),
        "{stats:?}"
    );

    // Nothing of the current window is past a 1-month retention; 2032_05 is in the future.
    let dropped = m
        .drop_old_partitions(RetentionPeriod::Months(1))
        .await
        .unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");

    let report = m.run_partition_maintenance().await.unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert!(report.created_partitions.is_empty(), "{report:?}");
    assert_eq!(report.total_events_estimate, 0);
}

#[tokio::test]
async fn create_partition_refuses_an_overlap() {
    let db = TestDb::migrated("library_overlap").await;
    let m = manager(&db).await;
    let owner = db.owner_pool().await;
    sqlx::query(
        "CREATE TABLE odd PARTITION OF archon_ga4_events FOR VALUES FROM ('2035-01-15 00:00:00+00') TO ('2035-02-15 00:00:00+00')",
    )
    .execute(&owner)
    .await
    .unwrap();
    let err = m
        .create_partition(utc(2035, 2, 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("would overlap existing partition odd"),
        "{err}"
    );
}
