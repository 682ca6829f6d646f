//! partwarden keeps PostgreSQL time-partitioned tables healthy: it creates future
//! partitions, expires old ones by a retention policy, keeps every partition's indexes and
//! row-level security in line with the parent's, and reports it all as metrics.
//!
//! The stages, each using only those before it: [`config`] (validated) and a [`catalog`]
//! snapshot go into the pure [`plan`]ner, whose [`plan::Plan`] of actions the [`apply`]
//! executor runs online. [`engine`] ([`PartitionManager`], a run over all tables) is the API
//! the CLI and the [`daemon`] are thin layers over; [`telemetry`] is the daemon's metrics
//! and HTTP. [`calendar`] (bounds arithmetic), [`ident`] (identifiers) and [`notice`]
//! (PostgreSQL notices handed to the statement that raised them) are shared by all, and
//! so is [`diagnose`] (what a database error means the operator must do).
pub mod apply;
pub mod archive;
mod backoff;
pub mod calendar;
pub mod catalog;
pub mod config;
pub mod daemon;
pub mod diagnose;
pub mod engine;
pub mod error;
pub mod fault;
pub mod ident;
pub mod memory;
pub mod notice;
pub mod plan;
pub mod telemetry;

pub use engine::{MaintenanceReport, PartitionManager, RunOptions, RunReport};
