//! Value syntaxes that several keys share: durations, memory sizes, keywords.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `tables[].retention_mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    #[default]
    Drop,
    Detach,
    Archive,
    /// Detached, exported to the object store as Parquet, verified, then dropped.
    Export,
}

/// `vector_index.method`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorMethod {
    #[default]
    Ivfflat,
    Hnsw,
}

/// `vector_index.lists`: `"auto"` (from the vector count) or a fixed number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ListsSetting {
    #[default]
    Auto,
    Fixed(u32),
}

macro_rules! keyword_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($s => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "unknown {} {:?}: expected {}",
                        $what,
                        s,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

keyword_enum!(LogFormat, "log format", { Text => "text", Json => "json" });
keyword_enum!(RetentionMode, "retention mode", { Drop => "drop", Detach => "detach", Archive => "archive", Export => "export" });
keyword_enum!(VectorMethod, "vector index method", { Ivfflat => "ivfflat", Hnsw => "hnsw" });

impl fmt::Display for ListsSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListsSetting::Auto => f.write_str("auto"),
            ListsSetting::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for ListsSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(ListsSetting::Auto);
        }
        match t.parse::<i64>() {
            Ok(n) if (1..=32_768).contains(&n) => Ok(ListsSetting::Fixed(n as u32)),
            Ok(n) => Err(format!(
                "must be between 1 and 32768, pgvector's limit (got {n})"
            )),
            Err(_) => Err(format!(
                "expected \"auto\" or a whole number of lists (got {s:?})"
            )),
        }
    }
}

/// Parse a duration string: a whole number, an optional space, and a unit among `ms`,
/// `s`/`sec`/`seconds`, `m`/`min`/`minutes`, `h`/`hour(s)`, `d`/`day(s)`.
/// Hand-written: it is partwarden's config syntax, with messages that name the mistake
/// (humantime-style crates accept fractions and compound forms PostgreSQL GUCs do not).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let examples = "such as \"500ms\", \"2s\", \"5min\", \"1h\" or \"1d\"";
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "{s:?} is not a duration: expected a whole number and a unit, {examples}"
        ));
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "{s:?}: fractions are not supported; use a smaller unit (\"1500ms\")"
        ));
    }
    let ms_per_unit: u64 = match unit.as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "" => return Err(format!("{s:?} has no unit: write it {examples}")),
        other => {
            return Err(format!(
                "{s:?} has an unknown unit {other:?}: use ms, s, min, h or d"
            ))
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(ms_per_unit))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Format a duration the way the config file writes it (`"500ms"`, `"2s"`, `"30min"`,
/// `"1h"`, `"1d"`), with the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// Parse a PostgreSQL memory size with a unit (`64MB`, `2GB`, `512kB`, `1TB`; units are
/// case-sensitive, as in PostgreSQL) into kB.
pub fn parse_memory_kb(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let kb_per_unit: u64 = match unit.trim_start() {
        "kB" => 1,
        "MB" => 1024,
        "GB" => 1024 * 1024,
        "TB" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "{s:?} is not a memory size: expected a whole number and kB, MB, GB or TB, such as \"64MB\" or \"2GB\""
            ))
        }
    };
    let kb = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(kb_per_unit))
        .ok_or_else(|| format!("{s:?} is not a memory size: expected a whole number and a unit"))?;
    // PostgreSQL's bounds for maintenance_work_mem.
    if !(1024..=i32::MAX as u64).contains(&kb) {
        return Err(format!(
            "{s:?} is outside PostgreSQL's range for maintenance_work_mem (1MB to 2147483647kB)"
        ));
    }
    Ok(kb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_duration_units() {
        let ok = [
            ("500ms", 500),
            ("2s", 2_000),
            ("2 s", 2_000),
            (" 5min ", 300_000),
            ("5m", 300_000),
            ("30min", 1_800_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("2 seconds", 2_000),
            ("0ms", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
        for bad in [
            "",
            "s",
            "2",
            "1.5s",
            "2 x",
            "-1s",
            "99999999999999999999d",
            "1h30min",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        for (d, s) in [
            (500, "500ms"),
            (2_000, "2s"),
            (1_800_000, "30min"),
            (3_600_000, "1h"),
            (86_400_000, "1d"),
            (1_500, "1500ms"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(d)), s);
            assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(d));
        }
    }

    #[test]
    fn enum_parsing() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(
            "archive".parse::<RetentionMode>().unwrap(),
            RetentionMode::Archive
        );
        assert_eq!("hnsw".parse::<VectorMethod>().unwrap(), VectorMethod::Hnsw);
        assert!("nope"
            .parse::<RetentionMode>()
            .unwrap_err()
            .contains("drop, detach, archive"));
        assert_eq!(ListsSetting::Fixed(7).to_string(), "7");
        assert_eq!(parse_memory_kb("2GB").unwrap(), 2 * 1024 * 1024);
        assert_eq!(parse_memory_kb("1024kB").unwrap(), 1024);
    }
}
