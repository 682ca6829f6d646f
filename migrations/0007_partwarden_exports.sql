-- partwarden 0007: the record of partitions exported to object storage (created by the
-- daemon and by `partwarden maintain` when missing, too). Idempotent.
--
-- retention_mode = 'export' writes an expired partition's rows as Parquet objects and a
-- manifest (manifest.json) under a run directory of the store, reads them back, and drops
-- the partition in the same transaction that inserts its row here: a row means the data
-- was verified in the store and is no longer in the database. `partwarden restore` loads
-- a run back and marks its row 'restored'. A run directory that no row records is what an
-- interrupted export left; the next export of the partition deletes it.
CREATE TABLE IF NOT EXISTS partwarden_exports (
    table_name      text NOT NULL,
    partition_name  text NOT NULL,
    run_id          uuid NOT NULL,
    range_from      timestamptz NOT NULL,
    range_to        timestamptz NOT NULL,
    store_url       text NOT NULL,
    manifest_path   text NOT NULL,
    manifest_sha256 text NOT NULL,
    row_count       bigint NOT NULL,
    parquet_bytes   bigint NOT NULL,
    source_bytes    bigint NOT NULL,
    seconds         double precision NOT NULL,
    manifest        jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'dropped' CHECK (state IN ('dropped', 'restored')),
    exported_at     timestamptz NOT NULL DEFAULT now(),
    restored_at     timestamptz,
    PRIMARY KEY (table_name, partition_name, run_id)
);
COMMENT ON TABLE partwarden_exports IS
    'partwarden: partitions exported to object storage as Parquet, verified, and dropped (retention_mode export); one row per export';
