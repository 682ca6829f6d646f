//! What must hold after every trial, checked against the database. Each returns the
//! violations it found (empty: the invariant holds).

use std::collections::BTreeSet;

use partwarden::calendar::{partition_name, Interval};
use partwarden::catalog::parse_range_bound;
use sqlx::PgPool;

use crate::lab::{month, Seeded, TABLES, TENANTS};
use crate::run::Written;

pub async fn check_all(
    owner: &PgPool,
    seeded: &Seeded,
    written: &Written,
    restarts: bool,
    store: &std::path::Path,
) -> Vec<String> {
    let mut v = Vec::new();
    v.extend(writes(written, restarts));
    v.extend(rows(owner, seeded, written).await);
    v.extend(indexes_valid(owner).await);
    v.extend(no_detach_pending(owner).await);
    v.extend(contiguous(owner).await);
    v.extend(nothing_unreported(owner).await);
    v.extend(rls_everywhere(owner).await);
    v.extend(retired_rows(owner, seeded).await);
    v.extend(exported_rows(owner, seeded, store).await);
    v
}

/// Exported partitions: every seeded row in exactly one verified export, the store holding
/// what each manifest names, and nothing else (what interrupted exports left is deleted by
/// the export that succeeds after them).
async fn exported_rows(owner: &PgPool, seeded: &Seeded, store: &std::path::Path) -> Vec<String> {
    let mut v = Vec::new();
    let recorded: Vec<(String, i64, serde_json::Value)> = sqlx::query_as(
        "SELECT partition_name, row_count, manifest FROM partwarden_exports WHERE table_name = 'public.events_export'",
    )
    .fetch_all(owner)
    .await
    .unwrap_or_default();
    let mut kept = BTreeSet::new();
    for back in [30, 29] {
        let p = partition_name("events_export", Interval::Month, month(-back));
        let want: i64 = TENANTS
            .iter()
            .map(|t| seeded.expiring[&("events_export".to_string(), p.clone(), t.to_string())])
            .sum();
        let runs: Vec<_> = recorded.iter().filter(|r| r.0 == p).collect();
        match runs.as_slice() {
            [(_, rows, manifest)] => {
                if *rows != want {
                    v.push(format!("{p}: exported {rows} rows, seeded {want}"));
                }
                let dir = manifest["directory"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                kept.insert(store.join(&dir).join("manifest.json"));
                for o in manifest["objects"].as_array().into_iter().flatten() {
                    let path = store
                        .join(&dir)
                        .join(o["name"].as_str().unwrap_or_default());
                    let len = std::fs::metadata(&path).map(|m| m.len()).ok();
                    if len != o["bytes"].as_u64() {
                        v.push(format!(
                            "{}: {len:?} bytes, its manifest says {}",
                            path.display(),
                            o["bytes"]
                        ));
                    }
                    kept.insert(path);
                }
            }
            other => v.push(format!(
                "{p}: {} verified export(s) recorded, expected 1",
                other.len()
            )),
        }
    }
    let mut stack = vec![store.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if !kept.contains(&path) {
                v.push(format!(
                    "{} is in the store but no verified export names it",
                    path.display()
                ));
            }
        }
    }
    v
}

/// No write rejected; none cut off unless the server was restarted.
fn writes(w: &Written, restarts: bool) -> Vec<String> {
    let mut v: Vec<String> = w
        .rejected
        .iter()
        .take(3)
        .map(|e| format!("rejected write: {e}"))
        .collect();
    if w.rejected.len() > 3 {
        v.push(format!("… {} rejected writes in all", w.rejected.len()));
    }
    if !restarts && w.unavailable > 0 {
        v.push(format!(
            "{} writes found no server (no restart in this trial)",
            w.unavailable
        ));
    }
    v
}

/// Every acknowledged row is there, with every seeded row outside the expiring
/// partitions; nothing else (beyond writes whose outcome the writer could not know).
async fn rows(owner: &PgPool, seeded: &Seeded, w: &Written) -> Vec<String> {
    let mut v = Vec::new();
    for t in TABLES {
        for tenant in TENANTS {
            let ack: Vec<i64> = w
                .acknowledged
                .get(&(t.to_string(), tenant.to_string()))
                .cloned()
                .unwrap_or_default();
            let mut tx = owner.begin().await.unwrap();
            sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .unwrap();
            let (total, found): (i64, i64) = sqlx::query_as(&format!(
                "SELECT count(*), count(*) FILTER (WHERE id = ANY($2))
                   FROM {t} WHERE event_timestamp >= $1 AND tenant_id = $3::uuid"
            ))
            .bind(month(-28))
            .bind(&ack)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let live = seeded.live[&(t.to_string(), tenant.to_string())];
            if found != ack.len() as i64 {
                v.push(format!(
                    "{t}/{tenant}: {} of {} acknowledged rows missing",
                    ack.len() as i64 - found,
                    ack.len()
                ));
            }
            let extra = total - live - ack.len() as i64;
            if extra < 0 || extra > w.unavailable as i64 {
                v.push(format!(
                    "{t}/{tenant}: {total} rows, expected {live} seeded + {} acknowledged (+ at most {} unknown)",
                    ack.len(),
                    w.unavailable
                ));
            }
        }
    }
    v
}

async fn indexes_valid(owner: &PgPool) -> Vec<String> {
    let bad: Vec<String> = sqlx::query_scalar(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid OR NOT indisready ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .unwrap();
    bad.into_iter()
        .map(|i| format!("INVALID index {i}"))
        .collect()
}

async fn no_detach_pending(owner: &PgPool) -> Vec<String> {
    let bad: Vec<String> = sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhdetachpending",
    )
    .fetch_all(owner)
    .await
    .unwrap();
    bad.into_iter()
        .map(|p| format!("{p} is detach pending"))
        .collect()
}

/// Attached range partitions: none past retention, and the premake window (the current
/// month through +3) covered without a gap.
async fn contiguous(owner: &PgPool) -> Vec<String> {
    let mut v = Vec::new();
    for t in TABLES {
        let exprs: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
        )
        .bind(t)
        .fetch_all(owner)
        .await
        .unwrap();
        let mut bounds: Vec<(
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
            String,
        )> = exprs
            .into_iter()
            .filter(|(_, e)| e != "DEFAULT")
            .filter_map(|(n, e)| parse_range_bound(&e).map(|b| (b.from, b.to, n)))
            .collect();
        bounds.sort();
        let Some(first) = bounds.first() else {
            v.push(format!("{t}: no partitions"));
            continue;
        };
        if first.0 < month(-24) {
            v.push(format!(
                "{t}: {} is past retention and still attached",
                first.2
            ));
        }
        let window: Vec<_> = bounds.iter().filter(|b| b.1 > month(0)).collect();
        for pair in window.windows(2) {
            if pair[0].1 != pair[1].0 {
                v.push(format!("{t}: gap between {} and {}", pair[0].2, pair[1].2));
            }
        }
        let last = bounds.last().unwrap();
        if last.1 < month(4) || window.first().is_none_or(|b| b.0 > month(0)) {
            v.push(format!(
                "{t}: partitions cover {} .. {}, not the current month through +3",
                first.2, last.2
            ));
        }
    }
    v
}

/// Every table named like a partition that is not one is a retired table partwarden
/// watches (journal), and nothing is left half done in the journal.
async fn nothing_unreported(owner: &PgPool) -> Vec<String> {
    let mut v = Vec::new();
    let loose: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND NOT c.relispartition AND n.nspname IN ('public', 'partwarden_archive')
            AND c.relname ~ '_[0-9]{4}_[0-9]{2}$'",
    )
    .fetch_all(owner)
    .await
    .unwrap();
    let retired: BTreeSet<String> = sqlx::query_scalar(
        "SELECT object FROM partwarden_journal WHERE kind = 'expire' AND state = 'retired'",
    )
    .fetch_all(owner)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for (schema, name) in loose {
        if !retired.contains(&name) {
            v.push(format!(
                "{schema}.{name} is detached and nothing reports it"
            ));
        }
    }
    let open: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT kind, object, state FROM partwarden_journal WHERE state <> 'retired'",
    )
    .fetch_all(owner)
    .await
    .unwrap();
    for (kind, object, state) in open {
        v.push(format!("journal: {kind} {object} still {state}"));
    }
    v
}

/// Every partition and every retired table: RLS enabled, forced, the parent's policies.
async fn rls_everywhere(owner: &PgPool) -> Vec<String> {
    let rows: Vec<(String, String, bool, bool, bool)> = sqlx::query_as(
        "WITH parent AS (SELECT c.oid, c.relname FROM pg_class c WHERE c.relname = ANY($1) AND c.relkind = 'p'),
              pol AS (SELECT polrelid, array_agg(polname::text || polcmd::text || polpermissive::text || polroles::text || coalesce(pg_get_expr(polqual, polrelid), '')
                                                  || coalesce(pg_get_expr(polwithcheck, polrelid), '') ORDER BY polname) AS p
                        FROM pg_policy GROUP BY polrelid),
              rel AS (SELECT p.relname AS parent, p.oid AS poid, i.inhrelid AS oid FROM parent p JOIN pg_inherits i ON i.inhparent = p.oid
                      UNION ALL
                      SELECT p.relname, p.oid, c.oid FROM parent p
                        JOIN partwarden_journal j ON j.table_name = 'public.' || p.relname AND j.state = 'retired'
                        JOIN pg_class c ON c.oid = (j.details->>'oid')::bigint::oid)
         SELECT r.parent, c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity,
                coalesce((SELECT p FROM pol WHERE polrelid = c.oid), '{}') = coalesce((SELECT p FROM pol WHERE polrelid = r.poid), '{}')
           FROM rel r JOIN pg_class c ON c.oid = r.oid",
    )
    .bind(TABLES.map(String::from).to_vec())
    .fetch_all(owner)
    .await
    .unwrap();
    rows.into_iter()
        .filter(|(_, _, e, f, p)| !(*e && *f && *p))
        .map(|(parent, rel, e, f, p)| {
            format!("{rel} (of {parent}): rls enabled={e} forced={f} parent's policies={p}")
        })
        .collect()
}

/// Archived and detached tables keep their rows.
async fn retired_rows(owner: &PgPool, seeded: &Seeded) -> Vec<String> {
    let mut v = Vec::new();
    for (t, schema) in [
        ("events_archive", "partwarden_archive"),
        ("events_detach", "public"),
    ] {
        for back in [30, 29] {
            let p = partition_name(t, Interval::Month, month(-back));
            for tenant in TENANTS {
                let mut tx = owner.begin().await.unwrap();
                sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
                    .bind(tenant)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let n: Result<i64, _> =
                    sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.{p}"))
                        .fetch_one(&mut *tx)
                        .await;
                let _ = tx.rollback().await;
                let want = seeded.expiring[&(t.to_string(), p.clone(), tenant.to_string())];
                match n {
                    Ok(n) if n == want => {}
                    Ok(n) => v.push(format!("{schema}.{p}/{tenant}: {n} rows, seeded {want}")),
                    Err(e) => v.push(format!("{schema}.{p}: {e}")),
                }
            }
        }
    }
    v
}
