//! partwarden: keeps PostgreSQL time-partitioned tables healthy.
pub mod calendar;
pub mod config;
pub mod db;
pub mod error;
pub mod ident;
pub mod migrate;
