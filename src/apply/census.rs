//! Counting the default partition's rows per interval, for `maintain --backfill`.
//!
//! Under forced row-level security the owner sees none of the rows (no tenant is set), so
//! the count lifts FORCE inside a transaction that holds the default partition's ACCESS
//! EXCLUSIVE lock — taken the polite way, as a row move takes it — and rolls back, which
//! restores FORCE: no other session ever sees the table unforced. Readers of the default
//! partition wait for the one scan; a role that row-level security does not apply to
//! (superuser, BYPASSRLS, or no forced RLS) counts without any lock.

use sqlx::{Connection, PgConnection};
use tracing::warn;

use super::locks::{self, LockError, LockMode, LockRequest};
use super::{exec, Names, RetryPolicy};
use crate::calendar::Interval;
use crate::catalog::{CountedRange, DefaultCensus, TableSnapshot};
use crate::config::TableConfig;
use crate::error::Error;

/// The census of `snap`'s default partition; `None` when the table has none.
pub async fn count_default_partition(
    conn: &mut PgConnection,
    table: &TableConfig,
    snap: &TableSnapshot,
    retry: &RetryPolicy,
) -> Result<Option<DefaultCensus>, Error> {
    let Some(default) = &snap.default_partition else {
        return Ok(None);
    };
    let names = Names::new(table);
    let drel = names.rel(&default.name);
    let attempts = retry.attempts.max(1);
    let mut n = 0;
    loop {
        n += 1;
        match count_once(conn, &names, &drel, table.interval, retry).await {
            Ok(census) => return Ok(Some(census)),
            Err(LockError::Busy(why)) if n < attempts => {
                let delay = retry.delay(n);
                warn!(
                    attempt = n,
                    "counting the rows of {}: {why}; retrying in {:.1}s",
                    default.name,
                    delay.as_secs_f64()
                );
                tokio::time::sleep(delay).await;
            }
            Err(LockError::Busy(why)) => {
                return Err(Error::Ddl {
                    table: table.label(),
                    action: format!("counting the rows of {}", default.name),
                    message: format!("gave up after {n} attempt(s): {why}"),
                })
            }
            Err(LockError::Database(e)) if is_lock_timeout(&e) && n < attempts => {
                tokio::time::sleep(retry.delay(n)).await;
            }
            Err(LockError::Database(e)) => return Err(e.into()),
        }
    }
}

fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "55P03")
}

async fn count_once(
    conn: &mut PgConnection,
    names: &Names,
    drel: &str,
    interval: Interval,
    retry: &RetryPolicy,
) -> Result<DefaultCensus, LockError> {
    let mut tx = conn.begin().await?;
    let hidden: bool = sqlx::query_scalar("SELECT row_security_active($1::regclass)")
        .bind(drel)
        .fetch_one(&mut *tx)
        .await?;
    if hidden {
        locks::take(
            &mut tx,
            &[LockRequest::table(drel, LockMode::AccessExclusive)],
            retry.lock_wait,
        )
        .await?;
        exec(
            &mut tx,
            &format!("ALTER TABLE {drel} NO FORCE ROW LEVEL SECURITY"),
        )
        .await?;
    }
    let col = &names.column;
    // Epoch seconds, not timestamps: NULL and ±infinity keys (which only the default
    // partition can hold) come back as NULL and ±Infinity instead of failing to decode.
    let rows: Vec<(Option<f64>, i64)> = sqlx::query_as(&format!(
        "SELECT extract(epoch FROM date_trunc($1, {col}, 'UTC'))::float8, count(*)
           FROM {drel} GROUP BY 1 ORDER BY 1"
    ))
    .bind(interval.as_str())
    .fetch_all(&mut *tx)
    .await?;
    // Rolling back restores FORCE ROW LEVEL SECURITY.
    tx.rollback().await?;
    Ok(census_of(interval, rows))
}

/// Groups the counted rows by interval; keys no partition can hold are `unplaceable`.
fn census_of(interval: Interval, rows: Vec<(Option<f64>, i64)>) -> DefaultCensus {
    let mut census = DefaultCensus::default();
    for (epoch, count) in rows {
        let count = u64::try_from(count).unwrap_or(0);
        let from = epoch
            .filter(|e| e.is_finite())
            .and_then(|e| chrono::DateTime::from_timestamp(e as i64, 0));
        match from {
            Some(from) => {
                let bounds = interval.bounds_from(from);
                if bounds.from < bounds.to {
                    census.ranges.push(CountedRange {
                        bounds,
                        rows: count,
                    });
                } else {
                    census.unplaceable += count;
                }
            }
            None => census.unplaceable += count,
        }
    }
    census
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_infinite_keys_have_no_place() {
        let c = census_of(
            Interval::Month,
            vec![
                (Some(1_793_491_200.0), 3), // 2026-11-01
                (Some(f64::INFINITY), 2),
                (Some(f64::NEG_INFINITY), 1),
                (None, 4),
            ],
        );
        assert_eq!(c.ranges.len(), 1);
        assert_eq!(c.ranges[0].rows, 3);
        assert_eq!(
            crate::calendar::sql_literal(c.ranges[0].bounds.to),
            "2026-12-01 00:00:00+00"
        );
        assert_eq!(c.unplaceable, 7);
        assert_eq!(c.total(), 10);
    }
}
