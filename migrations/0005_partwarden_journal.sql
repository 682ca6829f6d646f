-- partwarden 0005: the journal of multi-step actions (created by the daemon and by
-- `partwarden maintain` when missing, too). Idempotent.
--
-- Some maintenance cannot happen in one transaction: DETACH PARTITION ... CONCURRENTLY
-- commits on its own before the partition is dropped or archived, and CREATE INDEX
-- CONCURRENTLY commits before its build record is written. An action writes its entry
-- before the first step that commits on its own, and removes or finalizes it in the same
-- transaction as its last step, so a run that is killed, interrupted or fails in between
-- leaves an entry that later runs find: they finish the action, or report why they cannot.
--
-- kind = 'expire': object is the partition; details hold its oid, name, the retention
--   mode and bounds. state 'detaching' until the expiry is finished; for retention modes
--   that keep the table (detach, archive) the entry then stays with state 'retired' and
--   the table's location, so partwarden keeps its row-level security equal to the
--   parent's for as long as the table exists.
-- kind = 'vector_build': object is the index; details hold the partition and the build
--   record that becomes the index's comment once the build has finished.
CREATE TABLE IF NOT EXISTS partwarden_journal (
    table_name text NOT NULL,
    kind       text NOT NULL,
    object     text NOT NULL,
    state      text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, kind, object)
);
COMMENT ON TABLE partwarden_journal IS
    'partwarden: multi-step maintenance actions begun and not yet finished, and the tables retention detached or archived';
