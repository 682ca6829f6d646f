//! What is worth a glance about a partition, and the colour it gets. The CLI's STATE
//! column (`cli/render.rs`) says the same of a `PartitionStats`; the page adds past,
//! expiring and RLS drift, which the CLI shows in columns of their own.

use chrono::{DateTime, Utc};

use super::model::PagePartition;

/// In the order of precedence: a partition is coloured by the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    InvalidIndex,
    RlsDrift,
    DetachPending,
    Default,
    /// Its upper bound is at or before the retention cutoff: the next run expires it.
    Expiring,
    Current,
    Future,
    Past,
}

impl State {
    /// Every state, for the legend.
    pub const ALL: [State; 8] = [
        State::Past,
        State::Current,
        State::Future,
        State::Expiring,
        State::Default,
        State::DetachPending,
        State::InvalidIndex,
        State::RlsDrift,
    ];

    /// The CSS class that colours it (`style.css`).
    pub fn class(self) -> &'static str {
        match self {
            State::InvalidIndex => "invalid",
            State::RlsDrift => "drift",
            State::DetachPending => "detach",
            State::Default => "default",
            State::Expiring => "expiring",
            State::Current => "current",
            State::Future => "future",
            State::Past => "past",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            State::InvalidIndex => "INVALID index",
            State::RlsDrift => "RLS drift",
            State::DetachPending => "detach pending",
            State::Default => "default",
            State::Expiring => "expiring (past retention)",
            State::Current => "current",
            State::Future => "future",
            State::Past => "past",
        }
    }
}

/// Every state of `p` at `now`, most important first (never empty for a range
/// partition).
pub fn states(p: &PagePartition, now: DateTime<Utc>, cutoff: Option<DateTime<Utc>>) -> Vec<State> {
    let mut out = Vec::new();
    if p.indexes_invalid > 0 {
        out.push(State::InvalidIndex);
    }
    if !p.rls_ok {
        out.push(State::RlsDrift);
    }
    if p.detach_pending {
        out.push(State::DetachPending);
    }
    if p.is_default {
        out.push(State::Default);
    }
    if let (Some(to), Some(cutoff)) = (p.to, cutoff) {
        if to <= cutoff && !p.is_default {
            out.push(State::Expiring);
        }
    }
    if p.contains(now) {
        out.push(State::Current);
    } else if p.from.is_some_and(|f| f > now) {
        out.push(State::Future);
    } else if p.to.is_some_and(|t| t <= now) && !out.contains(&State::Expiring) {
        out.push(State::Past);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn range(from: &str, to: &str) -> PagePartition {
        PagePartition {
            name: "p".into(),
            schema: "public".into(),
            from: Some(at(from)),
            to: Some(at(to)),
            rows: Some(1),
            bytes: Some(8192),
            size_pretty: "8192 bytes".into(),
            is_default: false,
            detach_pending: false,
            indexes_expected: 1,
            indexes_valid: 1,
            indexes_invalid: 0,
            indexes_building: 0,
            rls_ok: true,
        }
    }

    #[test]
    fn each_partition_gets_the_state_that_matters_most_first() {
        let now = at("2026-05-15T00:00:00Z");
        let cutoff = Some(at("2026-03-15T00:00:00Z"));
        let s = |p: &PagePartition| states(p, now, cutoff);
        assert_eq!(
            s(&range("2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z")),
            [State::Current]
        );
        assert_eq!(
            s(&range("2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z")),
            [State::Future]
        );
        assert_eq!(
            s(&range("2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z")),
            [State::Past]
        );
        assert_eq!(
            s(&range("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")),
            [State::Expiring]
        );
        let mut broken = range("2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z");
        broken.indexes_invalid = 1;
        broken.rls_ok = false;
        assert_eq!(
            s(&broken),
            [State::InvalidIndex, State::RlsDrift, State::Current]
        );
    }
}
