//! The one backoff for everything partwarden retries: DDL that found its locks taken
//! (executor) and failed maintenance runs (daemon). backon's exponential backoff, factor 2,
//! jittered upward: the n-th wait is in `[d, 2d)` with `d = min(first · 2^(n-1), cap)`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The n-th wait (n ≥ 1) of the backoff starting at `first`, its base capped at `cap`
/// (so no wait reaches `2 · cap`).
pub(crate) fn nth_delay(first: Duration, cap: Duration, n: u32) -> Duration {
    ExponentialBuilder::new()
        .with_min_delay(first)
        .with_max_delay(cap.max(first))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(n.saturating_sub(1) as usize)
        .unwrap_or(cap.saturating_mul(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap() {
        let s = Duration::from_secs;
        for _ in 0..50 {
            for (n, lo) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 15), (9, 15), (40, 15)] {
                let d = nth_delay(s(1), s(15), n);
                assert!(d >= s(lo) && d < s(2 * lo), "attempt {n}: {d:?}");
            }
        }
        // A cap below the first wait does not shorten it.
        assert!(nth_delay(s(60), s(1), 1) >= s(60));
    }
}
