//! The library API the CLI and the daemon are thin layers over: [`PartitionManager`] runs
//! catalog → plan → apply for one table; [`run_maintenance`] for a configuration, under the
//! run lock ([`advisory`]: the run lock and the daemon's leadership); [`migrate`] installs
//! partwarden's schema and [`distribute`] spreads it over a Citus cluster; [`db`] opens sessions with the settings every partwarden
//! connection runs under.

pub mod advisory;
pub mod db;
pub mod distribute;
pub mod manager;
pub mod migrate;
pub mod restore;
pub(crate) mod state;

pub use manager::{
    check_tables, record_runs, run_maintenance, LeaderLock, MaintenanceLock, MaintenanceReport,
    PartitionManager, RunOptions, RunReport, TableRun, LEADER_LOCK_KEY, MAINTENANCE_LOCK_KEY,
};
