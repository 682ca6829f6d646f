//! Archive to object storage (`retention_mode = "export"`): an expired partition's rows
//! as Parquet objects and a manifest in the store, read back and checked before the
//! partition is dropped; and the way back (`partwarden restore`).
//!
//! * `columns.rs`: which column types export keeps, and their Arrow types (pure).
//! * `binary.rs`: the binary COPY stream to Arrow batches and back (pure).
//! * `manifest.rs`: object names and the manifest (pure).
//! * `store.rs`: the store of an `[export]` configuration (object_store).
//! * `export.rs`: COPY → Parquet objects → manifest → read-back check.
//! * `verify.rs`: the read-back check.
//! * `restore.rs`: Parquet objects → COPY into a table, compared byte for byte.
//! * `record.rs`: `partwarden_exports`, the record of verified exports.
//!
//! The executor (`apply/expire.rs`, `apply/restore.rs`) decides when, under which locks
//! and in which transaction.

pub mod binary;
pub mod columns;
pub mod export;
pub mod manifest;
pub mod record;
pub mod restore;
pub mod store;
pub mod verify;

pub use export::{ExportError, Exported};
pub use manifest::Manifest;
pub use store::{Store, StoreError};
