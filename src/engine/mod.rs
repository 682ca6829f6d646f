//! The library API the CLI and the daemon are thin layers over: [`PartitionManager`] runs
//! catalog → plan → apply for one table; [`run_maintenance`] for a configuration, under the
//! maintenance lock; [`migrate`] installs partwarden's schema; [`db`] opens sessions with
//! the settings every partwarden connection runs under.

pub mod db;
pub mod manager;
pub mod migrate;
pub(crate) mod state;

pub use manager::{
    check_tables, run_maintenance, MaintenanceLock, MaintenanceReport, PartitionManager,
    RunOptions, RunReport, TableRun, MAINTENANCE_LOCK_KEY,
};
