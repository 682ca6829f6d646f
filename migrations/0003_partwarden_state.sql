-- partwarden 0003: where the daemon keeps what must survive a restart of the sidecar
-- (so "maintenance has not succeeded for 2 days" does not fire just because it restarted).
-- The daemon also creates it when missing. Idempotent.
CREATE TABLE IF NOT EXISTS partwarden_state (
    table_name   text PRIMARY KEY,
    last_success timestamptz,
    last_run     jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE partwarden_state IS 'partwarden: last maintenance run per managed table';
