//! What partwarden shows the world while it runs: Prometheus metrics (`metrics.rs`, through
//! the `metrics` and `metrics-exporter-prometheus` crates), the HTTP endpoints that serve
//! them with health and status (`http.rs`, axum on hyper), and the status page ([`page`]),
//! which `partwarden status --html` writes too.

pub(crate) mod http;
pub(crate) mod metrics;
pub mod page;
