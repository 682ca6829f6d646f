//! partwarden: keeps PostgreSQL time-partitioned tables healthy.
pub mod calendar;
pub mod config;
pub mod ident;
