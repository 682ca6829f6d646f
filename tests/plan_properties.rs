//! Property tests of the pure planner and the calendar/catalog/status helpers it relies on.
//! No database: snapshots are built by hand.
//!
//! Properties (see the assertion messages, which name the property and its inputs):
//! 1. premake + expiry invariants over random instants, intervals, premake, retention,
//!    caps and aligned partition sets with gaps (with or without a default partition);
//! 2. idempotence: re-planning after applying a plan creates nothing and only expires
//!    what the cap held back; repeated runs reach an empty plan;
//! 3. foreign (non-aligned) existing bounds are never overlapped;
//! 4. bounds printed by PostgreSQL in any fixed UTC offset parse back to the same
//!    instants; fractional seconds round-trip;
//! 5. `status::coverage` matches a simple model;
//! 6. worked examples.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError};

use partwarden::calendar::{
    self, partition_name, sql_literal, Interval, PartitionBounds, RetentionPeriod,
};
use partwarden::catalog::{parse_range_bound, parse_timestamptz, Partition, TableSnapshot};
use partwarden::config::{Config, RetentionMode, TableConfig};
use partwarden::plan::health::coverage;
use partwarden::plan::{plan_table, Action, Plan};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// 2100-01-01T00:00:00Z.
const MAX_SECS: i64 = 4_102_444_800;

fn utc(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("in range")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn prop_config(cases: u32) -> PropConfig {
    PropConfig {
        cases,
        // Do not write proptest-regressions/ files next to the tests.
        failure_persistence: None,
        ..PropConfig::default()
    }
}

fn interval_strategy() -> impl Strategy<Value = Interval> {
    prop_oneof![
        Just(Interval::Day),
        Just(Interval::Week),
        Just(Interval::Month)
    ]
}

/// Seconds since the epoch in 1970–2100; half the time snapped to (±2 s around) the start
/// of a day, week or month, where off-by-one mistakes live.
fn instant_strategy() -> impl Strategy<Value = i64> {
    (0..=MAX_SECS, 0u8..6, -2i64..=2).prop_map(|(s, snap, d)| {
        let t = utc(s);
        match snap {
            0 => Interval::Day.floor(t).timestamp() + d,
            1 => Interval::Week.floor(t).timestamp() + d,
            2 => Interval::Month.floor(t).timestamp() + d,
            _ => s,
        }
    })
}

/// The config validation's notion of lengths (mirrors `RetentionPeriod::shorter_than`).
fn approx_days_of_interval(i: Interval) -> u32 {
    match i {
        Interval::Day => 1,
        Interval::Week => 7,
        Interval::Month => 30,
    }
}

/// The shortest valid retention in `unit` (0 days, 1 weeks, 2 months) for `premake`
/// intervals, plus `extra` units.
fn valid_retention(interval: Interval, premake: u32, unit: u8, extra: u32) -> RetentionPeriod {
    let premake_days = approx_days_of_interval(interval) * premake;
    let (unit_days, make): (u32, fn(u32) -> RetentionPeriod) = match unit % 3 {
        0 => (1, RetentionPeriod::Days),
        1 => (7, RetentionPeriod::Weeks),
        _ => (30, RetentionPeriod::Months),
    };
    let n_min = premake_days.div_ceil(unit_days).max(1);
    make(n_min + extra)
}

fn table_toml(
    name: &str,
    interval: Interval,
    premake: u32,
    retention: RetentionPeriod,
    max_expire: u32,
    default_partition: bool,
) -> String {
    format!(
        r#"
[[tables]]
name = "{name}"
interval = "{interval}"
premake = {premake}
retention = "{retention}"
max_expire_per_run = {max_expire}
default_partition = {default_partition}
"#
    )
}

/// A validated table config (goes through `Config::from_sources`, so through validation).
fn table_config(
    name: &str,
    interval: Interval,
    premake: u32,
    retention: RetentionPeriod,
    max_expire: u32,
    default_partition: bool,
) -> TableConfig {
    let toml = table_toml(
        name,
        interval,
        premake,
        retention,
        max_expire,
        default_partition,
    );
    let cfg = Config::from_sources(Some(&toml), &[])
        .unwrap_or_else(|e| panic!("config rejected: {e}\n{toml}"));
    assert_eq!(cfg.tables.len(), 1);
    let t = cfg.tables[0].clone();
    assert_eq!(
        (t.interval, t.premake, t.retention, t.max_expire_per_run),
        (interval, premake, retention, max_expire)
    );
    t
}

fn bound_expr(b: PartitionBounds) -> String {
    format!(
        "FOR VALUES FROM ('{}') TO ('{}')",
        sql_literal(b.from),
        sql_literal(b.to)
    )
}

fn partition_named(name: &str, b: PartitionBounds, oid: i64) -> Partition {
    Partition {
        oid,
        schema: "public".into(),
        name: name.into(),
        bound_expr: bound_expr(b),
        bounds: Some(b),
        is_default: false,
        detach_pending: false,
        rows_estimate: 0.0,
        heap_bytes: 8192,
        total_bytes: 8192,
        index_bytes: 0,
        size_pretty: "8192 bytes".into(),
        rls_enabled: false,
        rls_forced: false,
        policies: vec![],
        indexes: vec![],
        vector_null_frac: None,
        column_stats_hidden: false,
    }
}

/// The partition partwarden itself would have made for the aligned `b`.
fn aligned_partition(t: &TableConfig, b: PartitionBounds, oid: i64) -> Partition {
    partition_named(&partition_name(t.name.as_str(), t.interval, b.from), b, oid)
}

fn default_partition(t: &TableConfig, rows: f64) -> Partition {
    Partition {
        oid: 99,
        schema: "public".into(),
        name: t.default_partition_name(),
        bound_expr: "DEFAULT".into(),
        bounds: None,
        is_default: true,
        detach_pending: false,
        rows_estimate: rows,
        heap_bytes: 8192,
        total_bytes: 8192,
        index_bytes: 0,
        size_pretty: "8192 bytes".into(),
        rls_enabled: false,
        rls_forced: false,
        policies: vec![],
        indexes: vec![],
        vector_null_frac: None,
        column_stats_hidden: false,
    }
}

fn snapshot(
    t: &TableConfig,
    mut partitions: Vec<Partition>,
    default: Option<Partition>,
) -> TableSnapshot {
    partitions.sort_by(|a, b| {
        a.bounds
            .map(|x| x.from)
            .cmp(&b.bounds.map(|x| x.from))
            .then(a.name.cmp(&b.name))
    });
    TableSnapshot {
        schema: t.schema.to_string(),
        name: t.name.to_string(),
        oid: 1,
        key_column: t.column.to_string(),
        key_type: "timestamp with time zone".into(),
        columns: vec!["\"id\"".into(), t.column.to_string()],
        rls_enabled: false,
        rls_forced: false,
        policies: vec![],
        parent_indexes: vec![],
        partitions,
        default_partition: default,
        in_recovery: false,
        journal: Vec::new(),
        default_census: None,
        citus: None,
    }
}

fn creates(plan: &Plan) -> Vec<(String, PartitionBounds)> {
    plan.actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::CreatePartition { partition, bounds } => Some((partition.clone(), *bounds)),
            _ => None,
        })
        .collect()
}

fn expires(plan: &Plan) -> Vec<(String, PartitionBounds, RetentionMode)> {
    plan.actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::ExpirePartition {
                partition,
                bounds,
                mode,
                ..
            } => Some((partition.clone(), *bounds, *mode)),
            _ => None,
        })
        .collect()
}

fn creates_default(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a.action, Action::CreateDefaultPartition { .. }))
}

fn names(v: &[(String, PartitionBounds)]) -> Vec<&str> {
    v.iter().map(|(n, _)| n.as_str()).collect()
}

fn fmt_bounds(v: &[PartitionBounds]) -> String {
    v.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The snapshot after `plan` ran: created partitions added, expired ones gone, the default
/// partition created when planned.
fn apply(t: &TableConfig, snap: &TableSnapshot, plan: &Plan) -> TableSnapshot {
    let expired: Vec<String> = expires(plan).into_iter().map(|(n, _, _)| n).collect();
    let mut parts: Vec<Partition> = snap
        .partitions
        .iter()
        .filter(|p| !expired.contains(&p.name))
        .cloned()
        .collect();
    for (i, (name, b)) in creates(plan).into_iter().enumerate() {
        parts.push(partition_named(&name, b, 10_000 + i as i64));
    }
    let default = match (&snap.default_partition, creates_default(plan)) {
        (Some(d), _) => Some(d.clone()),
        (None, true) => Some(default_partition(t, 0.0)),
        (None, false) => None,
    };
    snapshot(t, parts, default)
}

/// The first pair of overlapping ranges in `bounds`, if any (all pairs are checked).
fn first_overlap(bounds: &[PartitionBounds]) -> Option<(PartitionBounds, PartitionBounds)> {
    for (i, a) in bounds.iter().enumerate() {
        for b in &bounds[i + 1..] {
            if a.overlaps(b) {
                return Some((*a, *b));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Property 1 (+2): premake and expiry invariants, then idempotence
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Case {
    now_secs: i64,
    interval: Interval,
    premake: u32,
    retention_unit: u8,
    retention_extra: u32,
    max_expire: u32,
    /// Which of the intervals −60..=+60 around `now` have a partition.
    present: Vec<bool>,
    /// `None`: no default partition in the snapshot; `Some(rows)`: one with that estimate.
    default_rows: Option<f64>,
    default_partition_cfg: bool,
    name: &'static str,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let present = (0u32..=100)
        .prop_flat_map(|density| vec(prop::bool::weighted(f64::from(density) / 100.0), 121));
    (
        instant_strategy(),
        interval_strategy(),
        1u32..=36,
        0u8..3,
        0u32..=40,
        1u32..=10,
        present,
        prop_oneof![
            Just(None),
            Just(Some(0.0)),
            Just(Some(-1.0)),
            (1u32..10_000_000).prop_map(|r| Some(f64::from(r)))
        ],
        any::<bool>(),
        prop_oneof![Just("archon_ga4_events"), Just("t"), Just("metrics_daily")],
    )
        .prop_map(
            |(
                now_secs,
                interval,
                premake,
                retention_unit,
                retention_extra,
                max_expire,
                present,
                default_rows,
                default_partition_cfg,
                name,
            )| Case {
                now_secs,
                interval,
                premake,
                retention_unit,
                retention_extra,
                max_expire,
                present,
                default_rows,
                default_partition_cfg,
                name,
            },
        )
}

struct Built {
    table: TableConfig,
    now: DateTime<Utc>,
    floor: DateTime<Utc>,
    window: Vec<PartitionBounds>,
    snap: TableSnapshot,
    ctx: String,
}

fn build(case: &Case) -> Result<Built, TestCaseError> {
    let now = utc(case.now_secs);
    let interval = case.interval;
    let retention = valid_retention(
        interval,
        case.premake,
        case.retention_unit,
        case.retention_extra,
    );
    prop_assert!(
        !retention.shorter_than(interval, case.premake),
        "test generator: retention {retention} is shorter than premake {} {interval}",
        case.premake
    );
    let table = table_config(
        case.name,
        interval,
        case.premake,
        retention,
        case.max_expire,
        case.default_partition_cfg,
    );
    let floor = interval.floor(now);
    let window = calendar::premake_window(interval, now, case.premake);
    let offsets: Vec<i64> = (-60i64..=60)
        .filter(|k| case.present[(k + 60) as usize])
        .collect();
    let parts: Vec<Partition> = offsets
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            aligned_partition(
                &table,
                interval.bounds_from(interval.shift(floor, k)),
                i as i64 + 100,
            )
        })
        .collect();
    let default = case.default_rows.map(|r| default_partition(&table, r));
    let snap = snapshot(&table, parts, default);
    let ctx = format!(
        "inputs: now = {now} ({}), interval = {interval}, premake = {}, retention = {retention}, \
         max_expire_per_run = {}, default_partition cfg = {}, default in snapshot = {:?}, \
         existing offsets = {offsets:?}",
        case.now_secs, case.premake, case.max_expire, case.default_partition_cfg, case.default_rows
    );
    Ok(Built {
        table,
        now,
        floor,
        window,
        snap,
        ctx,
    })
}

fn check_plan_invariants(case: &Case) -> Result<(), TestCaseError> {
    let Built {
        table,
        now,
        floor,
        window,
        snap,
        ctx,
    } = build(case)?;
    let interval = table.interval;
    let premake = i64::from(table.premake);
    let horizon = interval.shift(floor, premake + 1);
    let plan = plan_table(&table, &snap, now);
    let created = creates(&plan);
    let expired = expires(&plan);
    let existing: Vec<PartitionBounds> = snap.partitions.iter().filter_map(|p| p.bounds).collect();

    prop_assert_eq!(
        window.len() as i64,
        premake + 1,
        "property 1: premake_window has premake + 1 intervals; {}",
        ctx
    );
    prop_assert_eq!(
        plan.cutoff,
        table.retention.cutoff(now),
        "property 1: plan.cutoff; {}",
        ctx
    );

    // (d) names and alignment of every planned partition; (c) nothing outside the window.
    for (name, b) in &created {
        prop_assert_eq!(
            name,
            &partition_name(table.name.as_str(), interval, b.from),
            "property 1(d): planned name for {}; {}",
            b,
            ctx
        );
        prop_assert!(
            b.is_aligned(interval),
            "property 1(d): planned bounds {} are not aligned to {}; {}",
            b,
            interval,
            ctx
        );
        prop_assert!(
            b.from >= floor && b.to <= horizon,
            "property 1(c): planned {} lies outside [{}, {}) (floor(now) .. +premake+1); {}",
            b,
            sql_literal(floor),
            sql_literal(horizon),
            ctx
        );
        prop_assert!(
            snap.partitions.iter().all(|p| &p.name != name),
            "property 1(d): planned name {} already exists; {}",
            name,
            ctx
        );
    }
    // Exactly the missing window intervals are created, in order.
    let missing: Vec<PartitionBounds> = window
        .iter()
        .copied()
        .filter(|w| !existing.contains(w))
        .collect();
    let created_bounds: Vec<PartitionBounds> = created.iter().map(|(_, b)| *b).collect();
    prop_assert_eq!(
        &created_bounds,
        &missing,
        "property 1(b,c): created [{}] but missing window intervals are [{}]; {}",
        fmt_bounds(&created_bounds),
        fmt_bounds(&missing),
        ctx
    );

    // (a) no overlap once created.
    let mut union: Vec<PartitionBounds> = existing.clone();
    union.extend(created_bounds.iter().copied());
    if let Some((a, b)) = first_overlap(&union) {
        prop_assert!(
            false,
            "property 1(a): {} overlaps {} after the plan; {}",
            a,
            b,
            ctx
        );
    }
    // (b) the window is covered, contiguously.
    for w in &window {
        prop_assert!(
            union.contains(w),
            "property 1(b): window interval {} not covered after the plan; {}",
            w,
            ctx
        );
    }
    for pair in window.windows(2) {
        prop_assert_eq!(
            pair[0].to,
            pair[1].from,
            "property 1(b): window not contiguous; {}",
            ctx
        );
    }
    prop_assert_eq!(
        window[0].from,
        floor,
        "property 1(b): window starts at floor(now); {}",
        ctx
    );
    prop_assert_eq!(
        window[window.len() - 1].to,
        horizon,
        "property 1(b): window ends at floor(now)+premake+1; {}",
        ctx
    );
    let after = apply(&table, &snap, &plan);
    let cov = coverage(&after, now);
    prop_assert!(
        cov.covered_until.is_some_and(|c| c >= horizon),
        "property 1(b): coverage after the plan is {:?}, expected at least {}; {}",
        cov.covered_until,
        sql_literal(horizon),
        ctx
    );

    // (e) expiry: upper bound ≤ cutoff, at most the cap, oldest eligible first, not in
    // the window.
    let cutoff = table.retention.cutoff(now);
    let mut eligible: Vec<&Partition> = snap
        .partitions
        .iter()
        .filter(|p| p.bounds.is_some_and(|b| b.to <= cutoff))
        .collect();
    eligible.sort_by_key(|p| p.bounds.map(|b| b.from));
    let cap = table.max_expire_per_run as usize;
    prop_assert!(
        expired.len() <= cap,
        "property 1(e): {} expirations exceed max_expire_per_run = {}; {}",
        expired.len(),
        cap,
        ctx
    );
    let want: Vec<(String, PartitionBounds)> = eligible
        .iter()
        .take(cap)
        .map(|p| (p.name.clone(), p.bounds.unwrap()))
        .collect();
    let got: Vec<(String, PartitionBounds)> =
        expired.iter().map(|(n, b, _)| (n.clone(), *b)).collect();
    prop_assert_eq!(
        &got,
        &want,
        "property 1(e): expirations are not the oldest eligible (cutoff {}); {}",
        sql_literal(cutoff),
        ctx
    );
    for (name, b, mode) in &expired {
        prop_assert!(
            b.to <= cutoff,
            "property 1(e): {} {} expires but its upper bound is after the cutoff {}; {}",
            name,
            b,
            sql_literal(cutoff),
            ctx
        );
        prop_assert!(
            !(b.from < horizon && floor < b.to),
            "property 1(e): {} {} expires but lies in the premake window; {}",
            name,
            b,
            ctx
        );
        prop_assert_eq!(*mode, table.retention_mode, "property 1(e): mode; {}", ctx);
        // (f) the default partition is never expired.
        prop_assert!(
            name != &table.default_partition_name(),
            "property 1(f): the default partition is expired; {}",
            ctx
        );
    }
    let held_back_note = plan.notes.iter().any(|n| n.contains("past retention"));
    prop_assert_eq!(
        held_back_note,
        eligible.len() > cap,
        "property 1(e): the 'held back' note is shown iff more than the cap is eligible \
         ({} eligible); {}",
        eligible.len(),
        ctx
    );
    // (f) the default partition is created iff configured and absent, never touched
    // otherwise.
    prop_assert_eq!(
        creates_default(&plan),
        table.default_partition && snap.default_partition.is_none(),
        "property 1(f): CreateDefaultPartition; {}",
        ctx
    );
    for a in &plan.actions {
        if snap.default_partition.is_some() {
            prop_assert!(
                !matches!(
                    a.action,
                    Action::ExpirePartition { .. } | Action::FinalizeDetach { .. }
                ) || a.action.partition() != table.default_partition_name(),
                "property 1(f): {} touches the default partition; {}",
                a.action,
                ctx
            );
        }
    }
    // Nothing but default/create/expire actions for this bare snapshot.
    for a in &plan.actions {
        prop_assert!(
            matches!(
                a.action,
                Action::CreateDefaultPartition { .. }
                    | Action::CreatePartition { .. }
                    | Action::ExpirePartition { .. }
            ),
            "property 1: unexpected action {}; {}",
            a.action,
            ctx
        );
    }
    Ok(())
}

fn check_idempotence(case: &Case) -> Result<(), TestCaseError> {
    let Built {
        table,
        now,
        snap,
        ctx,
        ..
    } = build(case)?;
    let cap = table.max_expire_per_run as usize;
    let cutoff = table.retention.cutoff(now);
    let plan1 = plan_table(&table, &snap, now);
    let mut eligible: Vec<(String, PartitionBounds)> = snap
        .partitions
        .iter()
        .filter(|p| p.bounds.is_some_and(|b| b.to <= cutoff))
        .map(|p| (p.name.clone(), p.bounds.unwrap()))
        .collect();
    eligible.sort_by_key(|(_, b)| b.from);

    let mut current = apply(&table, &snap, &plan1);
    let mut held_back: Vec<(String, PartitionBounds)> =
        eligible.iter().skip(cap).cloned().collect();
    // Re-plan until nothing is left: every run creates nothing and expires only the next
    // batch of what the cap held back.
    let mut runs = 0;
    loop {
        runs += 1;
        let plan = plan_table(&table, &current, now);
        prop_assert!(
            creates(&plan).is_empty() && !creates_default(&plan),
            "property 2: run {} after the first still creates {:?} (default: {}); {}",
            runs,
            names(&creates(&plan)),
            creates_default(&plan),
            ctx
        );
        let got: Vec<(String, PartitionBounds)> =
            expires(&plan).into_iter().map(|(n, b, _)| (n, b)).collect();
        let want: Vec<(String, PartitionBounds)> = held_back.iter().take(cap).cloned().collect();
        prop_assert_eq!(
            &got,
            &want,
            "property 2: run {} after the first expires {:?}, the cap held back {:?}; {}",
            runs,
            names(&got),
            names(&held_back),
            ctx
        );
        prop_assert_eq!(
            plan.actions.len(),
            got.len(),
            "property 2: run {} after the first plans more than the held-back expirations: {}; {}",
            runs,
            plan,
            ctx
        );
        if plan.is_empty() {
            prop_assert!(held_back.is_empty(), "property 2: stopped early; {}", ctx);
            break;
        }
        held_back.drain(..got.len());
        current = apply(&table, &current, &plan);
        prop_assert!(
            runs <= 1 + eligible.len() / cap.max(1),
            "property 2: no fixpoint after {} runs; {}",
            runs,
            ctx
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(prop_config(512))]

    #[test]
    fn prop1_premake_and_expiry_invariants(case in case_strategy()) {
        check_plan_invariants(&case)?;
    }

    #[test]
    fn prop2_replanning_is_idempotent(case in case_strategy()) {
        check_idempotence(&case)?;
    }
}

// ---------------------------------------------------------------------------------------
// Property 1 (detach pending): an interrupted expiry is finished, not forgotten
// ---------------------------------------------------------------------------------------

fn check_detach_pending(case: &Case, k: i64) -> Result<(), TestCaseError> {
    let Built {
        table,
        now,
        floor,
        window,
        mut snap,
        ctx,
    } = build(case)?;
    let interval = table.interval;
    let premake = i64::from(table.premake);
    // Outside the window: a pending detach there is an expiry (or an operator's) that
    // was interrupted, never premake's business.
    let k = if (0..=premake).contains(&k) {
        -1 - k
    } else {
        k
    };
    let pb = interval.bounds_from(interval.shift(floor, k));
    snap.partitions.retain(|p| p.bounds != Some(pb));
    let mut pending = aligned_partition(&table, pb, 7);
    pending.detach_pending = true;
    let pending_name = pending.name.clone();
    snap.partitions.push(pending);
    snap.partitions.sort_by_key(|p| p.bounds.map(|b| b.from));
    let ctx = format!("{ctx}, detach pending at offset {k} ({pending_name} {pb})");

    let plan = plan_table(&table, &snap, now);
    let cutoff = table.retention.cutoff(now);
    let cap = table.max_expire_per_run as usize;
    let finalize_at: Vec<usize> = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(&a.action, Action::FinalizeDetach { partition } if *partition == pending_name))
        .map(|(i, _)| i)
        .collect();
    prop_assert_eq!(
        finalize_at.len(),
        1,
        "property 1 (detach pending): FinalizeDetach planned once; {}",
        ctx
    );
    let first_expire = plan
        .actions
        .iter()
        .position(|a| matches!(a.action, Action::ExpirePartition { .. }));
    prop_assert!(
        first_expire.is_none_or(|e| e > finalize_at[0]),
        "property 1 (detach pending): finalize runs before any expiry; {}",
        ctx
    );
    let got: Vec<String> = expires(&plan).into_iter().map(|(n, _, _)| n).collect();
    let past = pb.to <= cutoff;
    let mut want: Vec<String> = Vec::new();
    if past {
        want.push(pending_name.clone());
    }
    let mut eligible: Vec<&Partition> = snap
        .partitions
        .iter()
        .filter(|p| !p.detach_pending && p.bounds.is_some_and(|b| b.to <= cutoff))
        .collect();
    eligible.sort_by_key(|p| p.bounds.map(|b| b.from));
    want.extend(eligible.iter().map(|p| p.name.clone()));
    want.truncate(cap);
    prop_assert_eq!(
        &got,
        &want,
        "property 1 (detach pending): past retention = {}, cutoff {}; expected the pending one \
         first, then the oldest attached ones; {}",
        past,
        sql_literal(cutoff),
        ctx
    );
    // Premake is unaffected: exactly the window intervals without an attached partition.
    let attached: Vec<PartitionBounds> = snap
        .partitions
        .iter()
        .filter(|p| !p.detach_pending)
        .filter_map(|p| p.bounds)
        .collect();
    let missing: Vec<PartitionBounds> = window
        .iter()
        .copied()
        .filter(|w| !attached.contains(w))
        .collect();
    let created: Vec<PartitionBounds> = creates(&plan).into_iter().map(|(_, b)| b).collect();
    prop_assert_eq!(
        &created,
        &missing,
        "property 1 (detach pending): creates; {}",
        ctx
    );
    Ok(())
}

proptest! {
    #![proptest_config(prop_config(256))]

    #[test]
    fn prop1_detach_pending_past_retention_is_expired_first(case in case_strategy(), k in -60i64..=60) {
        check_detach_pending(&case, k)?;
    }
}

// ---------------------------------------------------------------------------------------
// Property 1 (config side): the validation boundary the generator mirrors
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(prop_config(256))]

    /// The config accepts the shortest retention `valid_retention` yields and rejects one
    /// unit less (naming the key), i.e. the generator of property 1 mirrors
    /// `RetentionPeriod::shorter_than` exactly.
    #[test]
    fn prop1_retention_validation_boundary(
        interval in interval_strategy(),
        premake in 1u32..=36,
        unit in 0u8..3,
    ) {
        let r = valid_retention(interval, premake, unit, 0);
        let ok = Config::from_sources(Some(&table_toml("t", interval, premake, r, 3, true)), &[]);
        prop_assert!(ok.is_ok(), "property 1 (config): {r} with premake {premake} {interval} rejected: {:?}", ok.err());
        let one_less = match r {
            RetentionPeriod::Days(n) => (n > 1).then(|| RetentionPeriod::Days(n - 1)),
            RetentionPeriod::Weeks(n) => (n > 1).then(|| RetentionPeriod::Weeks(n - 1)),
            RetentionPeriod::Months(n) => (n > 1).then(|| RetentionPeriod::Months(n - 1)),
        };
        if let Some(short) = one_less {
            prop_assert!(short.shorter_than(interval, premake));
            let err = Config::from_sources(Some(&table_toml("t", interval, premake, short, 3, true)), &[]);
            match err {
                Ok(_) => prop_assert!(false, "property 1 (config): {short} with premake {premake} {interval} accepted"),
                Err(e) => prop_assert!(
                    e.to_string().contains("tables[0].retention"),
                    "property 1 (config): error does not name the key: {e}"
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Property 3: foreign / non-aligned existing bounds are never overlapped
// ---------------------------------------------------------------------------------------

/// A non-aligned partition near window interval `k`: shifted by some hours (bounds written
/// in a session time zone), half an interval, two intervals, an interval of another
/// length, or arbitrary seconds.
fn foreign_bounds(
    interval: Interval,
    floor: DateTime<Utc>,
    kind: u8,
    k: i64,
    a: u32,
    b: u32,
) -> PartitionBounds {
    let base = interval.bounds_from(interval.shift(floor, k));
    let len = base.to - base.from;
    match kind {
        0 => {
            let mut h = i64::from(a % 29) - 14;
            if h == 0 {
                h = 1;
            }
            PartitionBounds {
                from: base.from + Duration::hours(h),
                to: base.to + Duration::hours(h),
            }
        }
        1 => {
            let mid = base.from + len / 2;
            if b.is_multiple_of(2) {
                PartitionBounds {
                    from: base.from,
                    to: mid,
                }
            } else {
                PartitionBounds {
                    from: mid,
                    to: base.to,
                }
            }
        }
        2 => PartitionBounds {
            from: base.from,
            to: interval.shift(base.from, 2),
        },
        3 => {
            let others: Vec<Interval> = [Interval::Day, Interval::Week, Interval::Month]
                .into_iter()
                .filter(|i| *i != interval)
                .collect();
            let other = others[(a % 2) as usize];
            other.bounds_containing(base.from + len / 2)
        }
        _ => {
            let nominal = interval.nominal_seconds();
            let from = base.from + Duration::seconds(i64::from(a) % (2 * nominal));
            PartitionBounds {
                from,
                to: from + Duration::seconds(1 + i64::from(b) % (3 * nominal)),
            }
        }
    }
}

proptest! {
    #![proptest_config(prop_config(512))]

    #[test]
    fn prop3_foreign_bounds_are_never_overlapped(
        now_secs in instant_strategy(),
        interval in interval_strategy(),
        premake in 1u32..=12,
        foreign in vec((0u8..5, -2i64..=14, any::<u32>(), any::<u32>()), 1..6),
        aligned in vec(any::<bool>(), 17),
        default_rows in prop_oneof![Just(None), (0u32..1000).prop_map(|r| Some(f64::from(r)))],
    ) {
        let now = utc(now_secs);
        let retention = valid_retention(interval, premake, 2, 1);
        let table = table_config("events", interval, premake, retention, 3, true);
        let floor = interval.floor(now);
        let window = calendar::premake_window(interval, now, premake);

        // Non-overlapping among themselves, as PostgreSQL would insist.
        let mut existing: Vec<Partition> = Vec::new();
        for (i, &(kind, k, a, b)) in foreign.iter().enumerate() {
            let k = k.min(i64::from(premake) + 2);
            let fb = foreign_bounds(interval, floor, kind, k, a, b);
            if existing.iter().all(|p| !p.bounds.unwrap().overlaps(&fb)) {
                existing.push(partition_named(&format!("foreign_{i}"), fb, 200 + i as i64));
            }
        }
        for (j, &want) in aligned.iter().enumerate() {
            let k = j as i64 - 2;
            if !want || k > i64::from(premake) + 2 {
                continue;
            }
            let ab = interval.bounds_from(interval.shift(floor, k));
            if existing.iter().all(|p| !p.bounds.unwrap().overlaps(&ab)) {
                existing.push(aligned_partition(&table, ab, 300 + j as i64));
            }
        }
        let bounds: Vec<PartitionBounds> = existing.iter().map(|p| p.bounds.unwrap()).collect();
        let ctx = format!(
            "inputs: now = {now} ({now_secs}), interval = {interval}, premake = {premake}, \
             existing = [{}]",
            existing.iter().map(|p| format!("{} {}", p.name, p.bounds.unwrap())).collect::<Vec<_>>().join(", ")
        );
        let snap = snapshot(&table, existing, default_rows.map(|r| default_partition(&table, r)));
        let plan = plan_table(&table, &snap, now);
        let created = creates(&plan);

        for (name, b) in &created {
            for e in &bounds {
                prop_assert!(
                    !b.overlaps(e),
                    "property 3: planned {} {} overlaps existing {}; {}", name, b, e, ctx
                );
            }
            prop_assert!(window.contains(b), "property 3: planned {} is not a window interval; {}", b, ctx);
            prop_assert!(b.is_aligned(interval), "property 3: planned {} not aligned; {}", b, ctx);
            prop_assert_eq!(
                name, &partition_name(table.name.as_str(), interval, b.from),
                "property 3: planned name; {}", ctx
            );
        }
        let created_bounds: Vec<PartitionBounds> = created.iter().map(|(_, b)| *b).collect();
        if let Some((a, b)) = first_overlap(&created_bounds) {
            prop_assert!(false, "property 3: planned {} and {} overlap; {}", a, b, ctx);
        }
        // Model: a window interval is created iff nothing existing touches it; one that is
        // overlapped (not equal) gets a note instead.
        for w in &window {
            let exact = bounds.contains(w);
            let overlapped = !exact && bounds.iter().any(|e| e.overlaps(w));
            let is_created = created_bounds.contains(w);
            prop_assert_eq!(
                is_created, !exact && !overlapped,
                "property 3: window interval {} created = {} (exact: {}, overlapped: {}); {}",
                w, is_created, exact, overlapped, ctx
            );
            let noted = plan.notes.iter().any(|n| n.starts_with(&format!("{w} is not created: it overlaps")));
            prop_assert_eq!(
                noted, overlapped,
                "property 3: note for {} (overlapped: {}), notes = {:?}; {}", w, overlapped, plan.notes, ctx
            );
        }
        // Whatever expires is entirely before the cutoff.
        for (name, b, _) in expires(&plan) {
            prop_assert!(b.to <= plan.cutoff, "property 3: {} {} expires after the cutoff; {}", name, b, ctx);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Property 4: bounds printed in any UTC offset parse back to the same instants
// ---------------------------------------------------------------------------------------

/// How PostgreSQL (DateStyle ISO) prints a `timestamptz` in a session whose zone is at
/// `offset_secs` east of UTC: `2026-04-30 20:00:00.5-04`, `… +05:30`, `… +00:09:21`.
fn pg_timestamptz(t: DateTime<Utc>, offset_secs: i32) -> String {
    let off = FixedOffset::east_opt(offset_secs).expect("valid offset");
    let local = t.with_timezone(&off);
    let mut s = local.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = local.timestamp_subsec_micros();
    if micros > 0 {
        let frac = format!("{micros:06}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let abs = offset_secs.unsigned_abs();
    let (h, m, sec) = (abs / 3600, (abs % 3600) / 60, abs % 60);
    s.push_str(&format!("{sign}{h:02}"));
    if m != 0 || sec != 0 {
        s.push_str(&format!(":{m:02}"));
    }
    if sec != 0 {
        s.push_str(&format!(":{sec:02}"));
    }
    s
}

/// Offsets −12:00 … +14:00 in minutes; a third of the time a whole hour, a third a real
/// half/quarter-hour zone.
fn offset_minutes_strategy() -> impl Strategy<Value = i32> {
    prop_oneof![
        (-12i32..=14).prop_map(|h| h * 60),
        prop::sample::select(vec![
            -570, -330, -210, 210, 270, 330, 345, 390, 525, 570, 630, 765, 825
        ]),
        -720i32..=840,
    ]
}

proptest! {
    #![proptest_config(prop_config(512))]

    #[test]
    fn prop4_range_bounds_parse_in_any_offset(
        a in 0..=MAX_SECS,
        b in 0..=MAX_SECS,
        off_from in offset_minutes_strategy(),
        off_to in offset_minutes_strategy(),
    ) {
        prop_assume!(a != b);
        let (from, to) = (utc(a.min(b)), utc(a.max(b)));
        let expr = format!(
            "FOR VALUES FROM ('{}') TO ('{}')",
            pg_timestamptz(from, off_from * 60),
            pg_timestamptz(to, off_to * 60)
        );
        let parsed = parse_range_bound(&expr);
        prop_assert_eq!(
            parsed,
            Some(PartitionBounds { from, to }),
            "property 4: {:?} (from {}, to {}) parsed wrong", expr, from, to
        );
        // And the reversed range is refused.
        let reversed = format!(
            "FOR VALUES FROM ('{}') TO ('{}')",
            pg_timestamptz(to, off_to * 60),
            pg_timestamptz(from, off_from * 60)
        );
        prop_assert_eq!(parse_range_bound(&reversed), None, "property 4: reversed {:?} accepted", reversed);
        // What partwarden itself writes parses back too.
        let ours = bound_expr(PartitionBounds { from, to });
        prop_assert_eq!(parse_range_bound(&ours), Some(PartitionBounds { from, to }), "property 4: own literal {:?}", ours);
    }

    #[test]
    fn prop4_timestamptz_fractional_seconds_round_trip(
        secs in 0..=MAX_SECS,
        micros in prop_oneof![Just(0u32), 0u32..1_000_000, (1u32..10).prop_map(|d| d * 100_000)],
        off_min in offset_minutes_strategy(),
        off_extra_secs in prop_oneof![3 => Just(0i32), 1 => 1i32..60],
    ) {
        let t = Utc.timestamp_opt(secs, micros * 1000).single().unwrap();
        // LMT-style offsets carry seconds (e.g. +00:09:21); keep them in range.
        let off = if off_min >= 0 { off_min * 60 + off_extra_secs } else { off_min * 60 - off_extra_secs };
        prop_assume!(off.abs() < 86_400);
        let s = pg_timestamptz(t, off);
        prop_assert_eq!(parse_timestamptz(&s), Some(t), "property 4: {:?} (expected {:?})", s, t);
    }
}

// ---------------------------------------------------------------------------------------
// Property 5: status::coverage
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(prop_config(512))]

    #[test]
    fn prop5_coverage(
        now_secs in instant_strategy(),
        interval in interval_strategy(),
        premake in 1u32..=36,
        present in vec(any::<bool>(), 121),
        far_future_gap in prop::option::of(1i64..=12),
        detach_pending_current in any::<bool>(),
    ) {
        let now = utc(now_secs);
        let retention = valid_retention(interval, premake, 2, 0);
        let table = table_config("events", interval, premake, retention, 3, true);
        let floor = interval.floor(now);
        let horizon = interval.shift(floor, i64::from(premake) + 1);
        let at_k = |k: i64| interval.bounds_from(interval.shift(floor, k));
        let ctx = format!(
            "inputs: now = {now} ({now_secs}), interval = {interval}, premake = {premake}, \
             far future gap = {far_future_gap:?}"
        );

        // (a) full window + random past + maybe a partition beyond a gap.
        let mut parts: Vec<Partition> = Vec::new();
        for k in -60i64..0 {
            if present[(k + 60) as usize] {
                parts.push(aligned_partition(&table, at_k(k), k + 1000));
            }
        }
        for b in calendar::premake_window(interval, now, premake) {
            parts.push(aligned_partition(&table, b, parts.len() as i64 + 2000));
        }
        if let Some(gap) = far_future_gap {
            parts.push(aligned_partition(&table, at_k(i64::from(premake) + 1 + gap), 3000));
        }
        let snap = snapshot(&table, parts.clone(), Some(default_partition(&table, 5.0)));
        let c = coverage(&snap, now);
        prop_assert_eq!(c.covered_until, Some(horizon), "property 5: full window; {}", ctx);
        prop_assert_eq!(c.seconds_ahead, (horizon - now).num_seconds(), "property 5: seconds_ahead; {}", ctx);
        prop_assert!(c.seconds_ahead > 0, "property 5: seconds_ahead = {}; {}", c.seconds_ahead, ctx);
        prop_assert_eq!(
            c.future_partitions,
            premake as usize + usize::from(far_future_gap.is_some()),
            "property 5: future_partitions; {}", ctx
        );

        // (b) the current interval missing (or only detach pending): not covered.
        let current = at_k(0);
        let mut without: Vec<Partition> = parts
            .iter()
            .filter(|p| p.bounds != Some(current))
            .cloned()
            .collect();
        if detach_pending_current {
            let mut p = aligned_partition(&table, current, 4000);
            p.detach_pending = true;
            without.push(p);
        }
        let snap = snapshot(&table, without, None);
        let c = coverage(&snap, now);
        prop_assert_eq!(c.covered_until, None, "property 5: current interval missing; {}", ctx);
        prop_assert_eq!(c.seconds_ahead, 0, "property 5: seconds_ahead when uncovered; {}", ctx);

        // (c) any aligned subset: covered_until is the end of the run of present intervals
        // starting at the current one.
        let has = |k: i64| (-60..=60).contains(&k) && present[(k + 60) as usize];
        let parts: Vec<Partition> = (-60i64..=60)
            .filter(|&k| has(k))
            .map(|k| aligned_partition(&table, at_k(k), k + 5000))
            .collect();
        let snap = snapshot(&table, parts, None);
        let c = coverage(&snap, now);
        let want = if has(0) {
            let mut j = 1;
            while has(j) {
                j += 1;
            }
            Some(interval.shift(floor, j))
        } else {
            None
        };
        prop_assert_eq!(c.covered_until, want, "property 5: model, present = {:?}; {}", present, ctx);
        prop_assert_eq!(
            c.future_partitions,
            (1..=60).filter(|&k| has(k)).count(),
            "property 5: future_partitions model; {}", ctx
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Worked examples
// ---------------------------------------------------------------------------------------

fn monthly(premake: u32, retention: &str, max_expire: u32) -> TableConfig {
    table_config(
        "archon_ga4_events",
        Interval::Month,
        premake,
        retention.parse().unwrap(),
        max_expire,
        true,
    )
}

#[test]
fn example_empty_monthly_table_gets_current_plus_three() {
    let t = monthly(3, "24 months", 3);
    let now = at("2026-11-24T09:00:00Z");
    let plan = plan_table(&t, &snapshot(&t, vec![], None), now);
    let created = creates(&plan);
    assert_eq!(
        names(&created),
        [
            "archon_ga4_events_2026_11",
            "archon_ga4_events_2026_12",
            "archon_ga4_events_2027_01",
            "archon_ga4_events_2027_02"
        ],
        "example: empty monthly table at {now}: {plan}"
    );
    let literals: Vec<(String, String)> = created
        .iter()
        .map(|(_, b)| (sql_literal(b.from), sql_literal(b.to)))
        .collect();
    assert_eq!(
        literals,
        [
            ("2026-11-01 00:00:00+00", "2026-12-01 00:00:00+00"),
            ("2026-12-01 00:00:00+00", "2027-01-01 00:00:00+00"),
            ("2027-01-01 00:00:00+00", "2027-02-01 00:00:00+00"),
            ("2027-02-01 00:00:00+00", "2027-03-01 00:00:00+00"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
        "example: bounds carry +00"
    );
    assert!(
        creates_default(&plan),
        "example: default partition planned: {plan}"
    );
    assert!(
        expires(&plan).is_empty(),
        "example: nothing to expire: {plan}"
    );
    // The plan's text shows the +00 bounds too.
    assert!(
        plan.to_string()
            .contains("[2026-11-01 00:00:00+00, 2026-12-01 00:00:00+00)"),
        "example: plan text: {plan}"
    );
}

/// Monthly partitions 2024-01 … 2027-02 at 2026-11-24T09:00Z with 24 months' retention:
/// the cutoff is 2024-11-24T09:00Z, so 2024_01 … 2024_10 (upper bound ≤ 2024-11-01) are
/// past retention and 2024_11 (upper bound 2024-12-01) is not.
#[test]
fn example_retention_24_months_oldest_first_capped() {
    let now = at("2026-11-24T09:00:00Z");
    let eligible: Vec<String> = (1..=10)
        .map(|m| format!("archon_ga4_events_2024_{m:02}"))
        .collect();
    for cap in [1u32, 3, 4, 10] {
        let t = monthly(3, "24 months", cap);
        let start = at("2024-01-01T00:00:00Z");
        let parts: Vec<Partition> = (0..38)
            .map(|k| {
                aligned_partition(
                    &t,
                    Interval::Month.bounds_from(Interval::Month.shift(start, k)),
                    k,
                )
            })
            .collect();
        assert_eq!(
            parts.last().unwrap().name,
            "archon_ga4_events_2027_02",
            "example setup"
        );
        let mut snap = snapshot(&t, parts, Some(default_partition(&t, 0.0)));
        assert_eq!(snap.partitions[0].bounds.unwrap().from, start);
        let plan = plan_table(&t, &snap, now);
        assert_eq!(plan.cutoff, at("2024-11-24T09:00:00Z"), "example: cutoff");
        assert!(
            creates(&plan).is_empty(),
            "example: window complete: {plan}"
        );
        let got: Vec<String> = expires(&plan).into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(
            got,
            eligible[..cap as usize],
            "example: cap {cap}: oldest first: {plan}"
        );
        // Running until done expires exactly 2024_01 … 2024_10, in order, at most `cap`
        // per run.
        let mut all: Vec<String> = Vec::new();
        for _ in 0..20 {
            let plan = plan_table(&t, &snap, now);
            let batch: Vec<String> = expires(&plan).into_iter().map(|(n, _, _)| n).collect();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= cap as usize, "example: cap {cap}: {plan}");
            all.extend(batch);
            snap = apply(&t, &snap, &plan);
        }
        assert_eq!(
            all, eligible,
            "example: cap {cap}: every eligible one, in order"
        );
        assert_eq!(
            snap.partitions[0].name, "archon_ga4_events_2024_11",
            "example: cap {cap}: 2024_11 stays"
        );
    }
}

#[test]
fn example_far_future_partition_and_default_rows_never_extend_premake() {
    let t = monthly(3, "24 months", 3);
    let now = at("2026-11-24T09:00:00Z");
    let far = Interval::Month.bounds_from(at("2028-06-01T00:00:00Z"));
    let snap = snapshot(
        &t,
        vec![aligned_partition(&t, far, 1)],
        Some(default_partition(&t, 2_500_000.0)),
    );
    let plan = plan_table(&t, &snap, now);
    let created = creates(&plan);
    assert_eq!(
        names(&created),
        [
            "archon_ga4_events_2026_11",
            "archon_ga4_events_2026_12",
            "archon_ga4_events_2027_01",
            "archon_ga4_events_2027_02"
        ],
        "example: far-future partition and default rows: {plan}"
    );
    assert!(
        created
            .iter()
            .all(|(_, b)| b.to <= at("2027-03-01T00:00:00Z")),
        "example: nothing beyond premake: {plan}"
    );
    assert!(!creates_default(&plan));
    // Without a count, no reason claims that rows move (an estimate cannot say which
    // months they are in); the note gives the estimate as one.
    assert!(
        plan.actions
            .iter()
            .filter(|a| matches!(a.action, Action::CreatePartition { .. }))
            .all(|a| !a.reason.contains("default partition")),
        "example: no claim without a count: {plan}"
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.starts_with("about 2500000 row(s)") && n.contains("--backfill")),
        "example: note about the default partition's rows: {plan}"
    );
    // With a count (`--backfill`), the month that has rows says how many move with it.
    let mut counted = snap.clone();
    counted.default_census = Some(partwarden::catalog::DefaultCensus {
        ranges: vec![partwarden::catalog::CountedRange {
            bounds: Interval::Month.bounds_from(at("2026-12-01T00:00:00Z")),
            rows: 2_500_000,
        }],
        unplaceable: 0,
    });
    let plan = plan_table(&t, &counted, now);
    let reasons: Vec<(&str, &str)> = plan
        .actions
        .iter()
        .filter(|a| matches!(a.action, Action::CreatePartition { .. }))
        .map(|a| (a.action.partition(), a.reason.as_str()))
        .collect();
    for (p, r) in &reasons {
        assert_eq!(
            r.contains("its 2500000 row(s) waiting in the default partition move into it"),
            *p == "archon_ga4_events_2026_12",
            "{p}: {r}"
        );
    }
    assert!(
        plan.notes.iter().any(|n| n
            == "2500000 row(s) in the default partition archon_ga4_events_default (counted): \
                2500000 move into the partitions this run creates"),
        "{plan}"
    );
    // The far-future partition is not expired, nor the default one.
    assert!(expires(&plan).is_empty(), "{plan}");
}

/// An expiry interrupted after `DETACH … CONCURRENTLY` left 2024_05 "detach pending":
/// the next run finalizes it and expires it (drops it) before anything else, even with
/// max_expire_per_run = 1 and older partitions waiting. Finalizing alone would leave a
/// standalone table no later run sees.
#[test]
fn example_interrupted_expiry_is_finished() {
    let t = monthly(3, "24 months", 1);
    let now = at("2026-11-24T09:00:00Z");
    let start = at("2024-01-01T00:00:00Z");
    let parts: Vec<Partition> = (0..38)
        .map(|k| {
            let mut p = aligned_partition(
                &t,
                Interval::Month.bounds_from(Interval::Month.shift(start, k)),
                k,
            );
            p.detach_pending = p.name == "archon_ga4_events_2024_05";
            p
        })
        .collect();
    let plan = plan_table(&t, &snapshot(&t, parts, None), now);
    let kinds: Vec<(String, String)> = plan
        .actions
        .iter()
        .filter(|a| {
            a.action.partition() == "archon_ga4_events_2024_05"
                || matches!(a.action, Action::ExpirePartition { .. })
        })
        .map(|a| {
            (
                a.action.kind().to_string(),
                a.action.partition().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("finalize_detach", "archon_ga4_events_2024_05"),
            ("expire_partition", "archon_ga4_events_2024_05"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
        "{plan}"
    );
    // A pending detach that is not past retention (an operator's) is only finalized.
    let t = monthly(3, "24 months", 1);
    let mut p = aligned_partition(
        &t,
        Interval::Month.bounds_from(at("2026-06-01T00:00:00Z")),
        1,
    );
    p.detach_pending = true;
    let plan = plan_table(&t, &snapshot(&t, vec![p], None), now);
    assert!(expires(&plan).is_empty(), "{plan}");
    assert_eq!(plan.actions[0].action.kind(), "finalize_detach", "{plan}");
}

#[test]
fn example_weekly_names_cross_the_iso_year() {
    // 2027-01-01 is a Friday in ISO week 2026-W53.
    let t = table_config(
        "clicks",
        Interval::Week,
        2,
        RetentionPeriod::Weeks(8),
        3,
        false,
    );
    let now = at("2027-01-01T12:00:00Z");
    let plan = plan_table(&t, &snapshot(&t, vec![], None), now);
    assert_eq!(
        names(&creates(&plan)),
        ["clicks_2026_w53", "clicks_2027_w01", "clicks_2027_w02"],
        "{plan}"
    );
    assert_eq!(creates(&plan)[0].1.from, at("2026-12-28T00:00:00Z"));
    assert!(!creates_default(&plan), "default_partition = false: {plan}");
}

#[test]
fn example_shortest_retention_never_expires_the_current_interval() {
    // "30 days" is the shortest retention config accepts with premake = 1 month; at the
    // end of a 31-day month the cutoff falls inside the current month, and still only the
    // previous months go.
    let t = monthly(1, "30 days", 10);
    let now = at("2026-03-31T23:59:59Z");
    let parts: Vec<Partition> = (-3..=1)
        .map(|k| {
            aligned_partition(
                &t,
                Interval::Month.bounds_from(Interval::Month.shift(at("2026-03-01T00:00:00Z"), k)),
                k + 10,
            )
        })
        .collect();
    let plan = plan_table(&t, &snapshot(&t, parts, None), now);
    assert_eq!(plan.cutoff, at("2026-03-01T23:59:59Z"));
    let got: Vec<String> = expires(&plan).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        got,
        [
            "archon_ga4_events_2025_12",
            "archon_ga4_events_2026_01",
            "archon_ga4_events_2026_02"
        ],
        "{plan}"
    );
}

#[test]
fn example_half_month_partition_is_reported_not_overlapped() {
    let t = monthly(2, "24 months", 3);
    let now = at("2026-05-10T00:00:00Z");
    let half = PartitionBounds {
        from: at("2026-05-01T00:00:00Z"),
        to: at("2026-05-16T00:00:00Z"),
    };
    // Bounds written in a +02 session: 2026-06-01 00:00+02 is 2026-05-31 22:00Z.
    let shifted = parse_range_bound(
        "FOR VALUES FROM ('2026-06-01 00:00:00+02') TO ('2026-07-01 00:00:00+02')",
    )
    .unwrap();
    let snap = snapshot(
        &t,
        vec![
            partition_named("events_may_a", half, 1),
            partition_named("events_june_local", shifted, 2),
        ],
        None,
    );
    let plan = plan_table(&t, &snap, now);
    assert_eq!(
        names(&creates(&plan)),
        ["archon_ga4_events_2026_07"],
        "only July is free: {plan}"
    );
    assert_eq!(plan.notes.len(), 2, "{plan}");
    assert!(plan.notes[0].contains("events_may_a"), "{plan}");
    assert!(plan.notes[1].contains("events_june_local"), "{plan}");
}

#[test]
fn example_offsets_postgres_prints() {
    let utc_month = |y, m| at(&format!("{y:04}-{m:02}-01T00:00:00Z"));
    for (expr, from, to) in [
        (
            "FOR VALUES FROM ('2026-04-30 20:00:00-04') TO ('2026-05-31 20:00:00-04')",
            utc_month(2026, 5),
            utc_month(2026, 6),
        ),
        (
            "FOR VALUES FROM ('2026-01-01 05:30:00+05:30') TO ('2026-02-01 05:30:00+05:30')",
            utc_month(2026, 1),
            utc_month(2026, 2),
        ),
        (
            "FOR VALUES FROM ('2026-01-01 12:45:00+12:45') TO ('2026-02-01 13:45:00+13:45')",
            utc_month(2026, 1),
            utc_month(2026, 2),
        ),
        (
            "FOR VALUES FROM ('2025-12-31 20:30:00-03:30') TO ('2026-01-31 20:30:00-03:30')",
            utc_month(2026, 1),
            utc_month(2026, 2),
        ),
        (
            "FOR VALUES FROM ('1970-01-01 00:19:32+00:19:32') TO ('1970-02-01 00:00:00+00')",
            utc_month(1970, 1),
            utc_month(1970, 2),
        ),
    ] {
        assert_eq!(
            parse_range_bound(expr),
            Some(PartitionBounds { from, to }),
            "example: {expr}"
        );
        assert_eq!(pg_timestamptz(from, 0), sql_literal(from));
    }
    assert_eq!(
        pg_timestamptz(at("2026-05-01T00:00:00.5Z"), -(3 * 3600 + 30 * 60)),
        "2026-04-30 20:30:00.5-03:30"
    );
}
