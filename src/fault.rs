//! Named fault points for the test suite and `bench/faults` (cargo feature `failpoints`,
//! the `fail` crate; configured by the `FAILPOINTS` environment variable). Without the
//! feature, [`point`] does nothing and costs nothing.
//!
//! Configure a point as `return(MS)` to pause there for MS milliseconds (asynchronously:
//! the daemon keeps serving and handling signals), or `panic` to panic there. A point
//! reached prints `partwarden: fault point NAME reached` on stderr first, so a harness
//! knows the process is inside the window it wants to kill it in.

/// Reached at a named point of an action.
pub async fn point(name: &str) {
    #[cfg(feature = "failpoints")]
    if let Some(arg) = fail::eval(name, |arg| arg) {
        eprintln!("partwarden: fault point {name} reached");
        if let Some(ms) = arg.as_deref().and_then(|a| a.trim().parse::<u64>().ok()) {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Reads `FAILPOINTS`; call once at start (a no-op without the feature).
pub fn setup() {
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
}

/// True when this binary was built with fault points (tests check before relying on them).
pub const ENABLED: bool = cfg!(feature = "failpoints");
