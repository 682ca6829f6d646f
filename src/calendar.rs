//! UTC interval arithmetic: where partitions start and end, what they are called, and
//! where the retention cutoff falls. Pure: no I/O, no session time zone.
//!
//! Every instant here is a `DateTime<Utc>`. PostgreSQL reads a bare `'2026-01-01'` for a
//! `timestamptz` key in the session's `TimeZone`, so bounds leave this module only through
//! [`sql_literal`], which always carries an explicit `+00` offset.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The span one partition covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    /// Start of the interval that contains `t` (weeks start on ISO Monday).
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let d = t.date_naive();
        let start = match self {
            Interval::Day => d,
            Interval::Week => d
                .checked_sub_signed(Duration::days(i64::from(
                    d.weekday().num_days_from_monday(),
                )))
                .unwrap_or(d),
            Interval::Month => {
                NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("day 1 exists")
            }
        };
        midnight(start)
    }

    /// `start` moved by `n` intervals (negative moves back). `start` should be aligned
    /// (a value returned by [`Interval::floor`]); the result then is too. Saturates at the
    /// ends of chrono's range instead of panicking (callers treat an empty range as none).
    pub fn shift(self, start: DateTime<Utc>, n: i64) -> DateTime<Utc> {
        let moved = match self {
            Interval::Day => Duration::try_days(n).and_then(|d| start.checked_add_signed(d)),
            Interval::Week => Duration::try_weeks(n).and_then(|d| start.checked_add_signed(d)),
            Interval::Month => {
                let months = Months::new(n.unsigned_abs().min(u64::from(u32::MAX)) as u32);
                if n >= 0 {
                    start.checked_add_months(months)
                } else {
                    start.checked_sub_months(months)
                }
            }
        };
        moved.unwrap_or(if n >= 0 {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
    }

    /// Bounds of the interval containing `t`.
    pub fn bounds_containing(self, t: DateTime<Utc>) -> PartitionBounds {
        let from = self.floor(t);
        PartitionBounds {
            from,
            to: self.shift(from, 1),
        }
    }

    /// Bounds of the interval starting at aligned `from`.
    pub fn bounds_from(self, from: DateTime<Utc>) -> PartitionBounds {
        PartitionBounds {
            from,
            to: self.shift(from, 1),
        }
    }

    /// The partition-name suffix for the interval starting at `from`
    /// (`_2026_05`, `_2026_w19`, `_2026_05_04`).
    pub fn suffix(self, from: DateTime<Utc>) -> String {
        match self {
            Interval::Month => format!("_{:04}_{:02}", from.year(), from.month()),
            Interval::Week => {
                let w = from.iso_week();
                format!("_{:04}_w{:02}", w.year(), w.week())
            }
            Interval::Day => format!("_{:04}_{:02}_{:02}", from.year(), from.month(), from.day()),
        }
    }

    /// The longest suffix this interval produces (for the 63-byte identifier limit).
    pub const fn max_suffix_len(self) -> usize {
        match self {
            Interval::Month => "_YYYY_MM".len(),
            Interval::Week => "_YYYY_wWW".len(),
            Interval::Day => "_YYYY_MM_DD".len(),
        }
    }

    /// A nominal length in seconds, for metrics and alert thresholds only.
    pub const fn nominal_seconds(self) -> i64 {
        match self {
            Interval::Day => 86_400,
            Interval::Week => 7 * 86_400,
            Interval::Month => 28 * 86_400,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" | "daily" => Ok(Interval::Day),
            "week" | "weekly" => Ok(Interval::Week),
            "month" | "monthly" => Ok(Interval::Month),
            other => Err(format!(
                "unknown interval {other:?}: expected month, week or day"
            )),
        }
    }
}

/// A half-open range `[from, to)` of a range partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionBounds {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl PartitionBounds {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }

    pub fn overlaps(&self, other: &PartitionBounds) -> bool {
        self.from < other.to && other.from < self.to
    }

    /// True when these are exactly the bounds `interval` gives for their start.
    pub fn is_aligned(&self, interval: Interval) -> bool {
        interval.floor(self.from) == self.from && interval.shift(self.from, 1) == self.to
    }
}

impl fmt::Display for PartitionBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", sql_literal(self.from), sql_literal(self.to))
    }
}

/// How long partitions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionPeriod {
    Days(u32),
    Weeks(u32),
    Months(u32),
}

impl RetentionPeriod {
    /// The instant before which a partition must lie entirely (upper bound ≤ cutoff)
    /// to expire. Calendar months: 31 March minus one month is 28/29 February, the same
    /// as PostgreSQL's `timestamp - interval '1 month'`.
    /// A retention reaching before chrono's range gives its earliest instant: nothing expires.
    pub fn cutoff(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            RetentionPeriod::Days(n) => now.checked_sub_signed(Duration::days(i64::from(n))),
            RetentionPeriod::Weeks(n) => now.checked_sub_signed(Duration::weeks(i64::from(n))),
            RetentionPeriod::Months(n) => now.checked_sub_months(Months::new(n)),
        }
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The longest retention partwarden accepts (100 years), when this is longer: beyond
    /// it calendar arithmetic leaves chrono's range, and nobody means it.
    pub fn over_cap(self) -> Option<RetentionPeriod> {
        let cap = match self {
            RetentionPeriod::Days(_) => RetentionPeriod::Days(36_525),
            RetentionPeriod::Weeks(_) => RetentionPeriod::Weeks(5_218),
            RetentionPeriod::Months(_) => RetentionPeriod::Months(1_200),
        };
        (self.count() > cap.count()).then_some(cap)
    }

    fn count(self) -> u32 {
        match self {
            RetentionPeriod::Days(n) | RetentionPeriod::Weeks(n) | RetentionPeriod::Months(n) => n,
        }
    }

    /// Is this period strictly shorter than `n` intervals? (Used to reject a retention
    /// that would expire partitions premake just created.)
    pub fn shorter_than(self, interval: Interval, n: u32) -> bool {
        let approx_days = |r: RetentionPeriod| -> i64 {
            match r {
                RetentionPeriod::Days(d) => i64::from(d),
                RetentionPeriod::Weeks(w) => 7 * i64::from(w),
                RetentionPeriod::Months(m) => 30 * i64::from(m),
            }
        };
        let premake_days = match interval {
            Interval::Day => i64::from(n),
            Interval::Week => 7 * i64::from(n),
            Interval::Month => 30 * i64::from(n),
        };
        approx_days(self) < premake_days
    }
}

impl fmt::Display for RetentionPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionPeriod::Days(n) => write!(f, "{n} days"),
            RetentionPeriod::Weeks(n) => write!(f, "{n} weeks"),
            RetentionPeriod::Months(n) => write!(f, "{n} months"),
        }
    }
}

impl FromStr for RetentionPeriod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            format!("invalid retention {s:?}: expected \"N months\", \"N weeks\" or \"N days\" with N ≥ 1")
        };
        let mut parts = s.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err());
        };
        let n: u32 = n.parse().map_err(|_| err())?;
        if n == 0 {
            return Err(err());
        }
        match unit.to_ascii_lowercase().as_str() {
            "day" | "days" => Ok(RetentionPeriod::Days(n)),
            "week" | "weeks" => Ok(RetentionPeriod::Weeks(n)),
            "month" | "months" => Ok(RetentionPeriod::Months(n)),
            _ => Err(err()),
        }
    }
}

/// Midnight UTC of a calendar date.
pub fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// A `timestamptz` literal with an explicit UTC offset, safe whatever the session
/// `TimeZone` is: `2026-05-01 00:00:00+00`.
pub fn sql_literal(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S+00").to_string()
}

/// Partition name for `table` and the interval starting at `from`.
pub fn partition_name(table: &str, interval: Interval, from: DateTime<Utc>) -> String {
    format!("{table}{}", interval.suffix(from))
}

/// Bounds of the partitions from the one containing `now` through `premake` intervals
/// ahead, in order: `premake + 1` partitions.
pub fn premake_window(
    interval: Interval,
    now: DateTime<Utc>,
    premake: u32,
) -> Vec<PartitionBounds> {
    let start = interval.floor(now);
    (0..=i64::from(premake))
        .map(|k| interval.bounds_from(interval.shift(start, k)))
        // Near the end of chrono's range the window stops instead of overflowing.
        .take_while(|b| b.from < b.to)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn month_floor_and_names() {
        let b = Interval::Month.bounds_containing(at("2026-05-31T23:59:59Z"));
        assert_eq!(b.from, at("2026-05-01T00:00:00Z"));
        assert_eq!(b.to, at("2026-06-01T00:00:00Z"));
        assert_eq!(
            partition_name("archon_ga4_events", Interval::Month, b.from),
            "archon_ga4_events_2026_05"
        );
        assert_eq!(sql_literal(b.from), "2026-05-01 00:00:00+00");
    }

    #[test]
    fn december_rolls_over() {
        let b = Interval::Month.bounds_containing(at("2026-12-15T00:00:00Z"));
        assert_eq!(b.to, at("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn week_starts_monday_and_iso_names() {
        // 2027-01-01 is a Friday; its ISO week is 2026-W53, starting Monday 2026-12-28.
        let b = Interval::Week.bounds_containing(at("2027-01-01T12:00:00Z"));
        assert_eq!(b.from, at("2026-12-28T00:00:00Z"));
        assert_eq!(b.to, at("2027-01-04T00:00:00Z"));
        assert_eq!(Interval::Week.suffix(b.from), "_2026_w53");
    }

    #[test]
    fn day_bounds() {
        let b = Interval::Day.bounds_containing(at("2024-02-29T05:00:00Z"));
        assert_eq!(b.from, at("2024-02-29T00:00:00Z"));
        assert_eq!(Interval::Day.suffix(b.from), "_2024_02_29");
    }

    #[test]
    fn cutoff_clamps_like_postgres() {
        assert_eq!(
            RetentionPeriod::Months(1).cutoff(at("2026-03-31T10:00:00Z")),
            at("2026-02-28T10:00:00Z")
        );
        assert_eq!(
            RetentionPeriod::Months(24).cutoff(at("2026-11-24T00:00:00Z")),
            at("2024-11-24T00:00:00Z")
        );
    }

    #[test]
    fn retention_parsing() {
        assert_eq!(
            "24 months".parse::<RetentionPeriod>().unwrap(),
            RetentionPeriod::Months(24)
        );
        assert_eq!(
            "1 week".parse::<RetentionPeriod>().unwrap(),
            RetentionPeriod::Weeks(1)
        );
        for bad in [
            "",
            "24",
            "0 days",
            "-1 days",
            "3 fortnights",
            "3 months extra",
        ] {
            assert!(bad.parse::<RetentionPeriod>().is_err(), "{bad:?} accepted");
        }
    }

    /// Issue 10.6: calendar arithmetic at the ends of chrono's range never panics.
    #[test]
    fn extremes_do_not_panic() {
        let now = at("2026-11-24T09:00:00Z");
        assert_eq!(
            RetentionPeriod::Months(u32::MAX).cutoff(now),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            RetentionPeriod::Days(u32::MAX).cutoff(now),
            DateTime::<Utc>::MIN_UTC
        );
        let end = DateTime::<Utc>::MAX_UTC;
        for i in [Interval::Day, Interval::Week, Interval::Month] {
            let w = premake_window(i, end, 3);
            assert!(w.len() <= 4);
            assert!(w.iter().all(|b| b.from < b.to));
            assert_eq!(i.shift(now, i64::MAX), end);
            assert_eq!(i.shift(now, i64::MIN), DateTime::<Utc>::MIN_UTC);
        }
    }

    #[test]
    fn premake_window_is_contiguous() {
        let w = premake_window(Interval::Month, at("2026-11-24T09:00:00Z"), 3);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0].from, at("2026-11-01T00:00:00Z"));
        assert_eq!(w[3].to, at("2027-03-01T00:00:00Z"));
        for pair in w.windows(2) {
            assert_eq!(pair[0].to, pair[1].from);
        }
    }
}
