//! Reading one raw value into its typed form, with its default and bounds, so that every
//! error names the key it is about.

use std::str::FromStr;
use std::time::Duration;

use super::error::{invalid, ConfigError};
use super::values::parse_duration;
use crate::ident::Ident;

/// PostgreSQL stores `lock_timeout`/`statement_timeout` as an `int` of milliseconds.
pub(super) const MAX_PG_TIMEOUT_MS: u128 = i32::MAX as u128;

pub(super) fn duration_at(
    key: &str,
    raw: Option<String>,
    default: Duration,
    max_ms: Option<u128>,
) -> Result<Duration, ConfigError> {
    let Some(s) = raw else {
        return Ok(default);
    };
    let d = parse_duration(&s).map_err(|m| invalid(key, m))?;
    if d.is_zero() {
        return Err(invalid(
            key,
            format!("must be greater than zero (got {s:?})"),
        ));
    }
    if let Some(max) = max_ms {
        if d.as_millis() > max {
            return Err(invalid(
                key,
                format!("must be at most {max}ms, PostgreSQL's limit (got {s:?})"),
            ));
        }
    }
    Ok(d)
}

pub(super) fn int_at<T: TryFrom<i64>>(
    key: &str,
    raw: Option<i64>,
    default: T,
    min: i64,
    max: i64,
) -> Result<T, ConfigError> {
    let Some(n) = raw else {
        return Ok(default);
    };
    if n < min {
        return Err(invalid(key, format!("must be at least {min} (got {n})")));
    }
    if n > max {
        return Err(invalid(key, format!("must be at most {max} (got {n})")));
    }
    T::try_from(n).map_err(|_| invalid(key, format!("out of range (got {n})")))
}

pub(super) fn ident_at(
    key: &str,
    raw: Option<String>,
    default: &str,
) -> Result<Ident, ConfigError> {
    Ident::new(raw.unwrap_or_else(|| default.to_owned())).map_err(|e| invalid(key, e.to_string()))
}

pub(super) fn parse_at<T: FromStr<Err = String>>(
    key: &str,
    raw: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match raw {
        Some(s) => s.parse().map_err(|m: String| invalid(key, m)),
        None => Ok(default),
    }
}
