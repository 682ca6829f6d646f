-- partwarden 0001: the GA4 events schema, its indexes, the default partition and tenant
-- isolation. Idempotent: safe to run again with `psql -v ON_ERROR_STOP=1 -f`, and run by
-- `partwarden migrate` (sqlx, one transaction per file).
--
-- pgvector is not a trusted extension: a superuser (or the database owner on a managed
-- service that allow-lists it) must have created it once; IF NOT EXISTS then makes this a
-- no-op for the non-superuser role that owns the tables.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS archon_ga4_events (
    id BIGSERIAL,
    tenant_id UUID NOT NULL,
    property_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    event_timestamp TIMESTAMPTZ NOT NULL,
    page_path TEXT,
    page_title TEXT,
    user_pseudo_id TEXT,
    session_id TEXT,
    metrics JSONB NOT NULL DEFAULT '{}'::jsonb,
    dimensions JSONB NOT NULL DEFAULT '{}'::jsonb,
    embedding_768 VECTOR(768),
    embedding_model TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    PRIMARY KEY (id, event_timestamp)
) PARTITION BY RANGE (event_timestamp);


-- Rows that no month partition covers land here instead of failing the insert;
-- maintenance moves them into their partition once it exists.
CREATE TABLE IF NOT EXISTS archon_ga4_events_default PARTITION OF archon_ga4_events DEFAULT;

-- The seed's five parent-table indexes. They cascade to every partition. There is
-- deliberately no vector index here: an ivfflat on the parent would cascade, untrained,
-- to every new empty partition. partwarden builds one per partition once it has data.
CREATE INDEX IF NOT EXISTS idx_ga4_events_tenant_time
    ON archon_ga4_events (tenant_id, event_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_ga4_events_property
    ON archon_ga4_events (property_id, event_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_ga4_events_name
    ON archon_ga4_events (event_name, event_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_ga4_events_metrics
    ON archon_ga4_events USING GIN (metrics jsonb_path_ops);
CREATE INDEX IF NOT EXISTS idx_ga4_events_dimensions
    ON archon_ga4_events USING GIN (dimensions jsonb_path_ops);

CREATE TABLE IF NOT EXISTS archon_ga4_daily_summaries (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL,
    property_id TEXT NOT NULL,
    date DATE NOT NULL,
    total_sessions INT,
    total_page_views INT,
    unique_users INT,
    avg_session_duration_seconds FLOAT,
    bounce_rate FLOAT,
    conversion_rate FLOAT,
    total_conversions INT,
    top_pages JSONB,
    top_sources JSONB,
    device_breakdown JSONB,
    UNIQUE (tenant_id, property_id, date)
);

-- Copies the parent's row-level security onto one partition: RLS enabled and forced
-- when the parent's is, and exactly the parent's policies (name, command, roles,
-- permissive/restrictive, USING, WITH CHECK). Policies are per table in PostgreSQL, so a
-- partition queried directly would otherwise show every tenant's rows.
-- Returns how many changes it made (0 when the partition already matched).
CREATE OR REPLACE FUNCTION partwarden_sync_partition_rls(p_parent regclass, p_child regclass)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_parent_rls boolean;
    v_parent_force boolean;
    v_child_rls boolean;
    v_child_force boolean;
    v_changes integer := 0;
    v_pol record;
BEGIN
    SELECT relrowsecurity, relforcerowsecurity INTO v_parent_rls, v_parent_force
      FROM pg_class WHERE oid = p_parent;
    SELECT relrowsecurity, relforcerowsecurity INTO v_child_rls, v_child_force
      FROM pg_class WHERE oid = p_child;

    IF v_parent_rls AND NOT v_child_rls THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_child);
        v_changes := v_changes + 1;
    END IF;
    IF v_parent_force AND NOT v_child_force THEN
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_child);
        v_changes := v_changes + 1;
    END IF;

    -- Child policies that are missing from the parent or differ from it: drop.
    FOR v_pol IN
        SELECT c.polname
          FROM pg_policy c
         WHERE c.polrelid = p_child
           AND NOT EXISTS (
               SELECT 1 FROM pg_policy p
                WHERE p.polrelid = p_parent
                  AND p.polname = c.polname
                  AND p.polcmd = c.polcmd
                  AND p.polpermissive = c.polpermissive
                  AND p.polroles = c.polroles
                  AND pg_get_expr(p.polqual, p.polrelid) IS NOT DISTINCT FROM pg_get_expr(c.polqual, c.polrelid)
                  AND pg_get_expr(p.polwithcheck, p.polrelid) IS NOT DISTINCT FROM pg_get_expr(c.polwithcheck, c.polrelid))
    LOOP
        EXECUTE format('DROP POLICY %I ON %s', v_pol.polname, p_child);
        v_changes := v_changes + 1;
    END LOOP;

    -- Parent policies the child lacks: create them.
    FOR v_pol IN
        SELECT p.polname,
               CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                             WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS cmd,
               CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END AS kind,
               (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(a.rolname) END, ', ')
                  FROM unnest(p.polroles) AS r LEFT JOIN pg_roles a ON a.oid = r) AS roles,
               pg_get_expr(p.polqual, p.polrelid) AS qual,
               pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck
          FROM pg_policy p
         WHERE p.polrelid = p_parent
           AND NOT EXISTS (SELECT 1 FROM pg_policy c WHERE c.polrelid = p_child AND c.polname = p.polname)
    LOOP
        EXECUTE format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s',
                       v_pol.polname, p_child, v_pol.kind, v_pol.cmd, v_pol.roles,
                       CASE WHEN v_pol.qual IS NULL THEN '' ELSE ' USING (' || v_pol.qual || ')' END,
                       CASE WHEN v_pol.withcheck IS NULL THEN '' ELSE ' WITH CHECK (' || v_pol.withcheck || ')' END);
        v_changes := v_changes + 1;
    END LOOP;

    RETURN v_changes;
END
$fn$;

COMMENT ON FUNCTION partwarden_sync_partition_rls(regclass, regclass) IS
    'Gives a partition the same forced RLS and policies as its parent (partwarden)';

-- Tenant isolation. NULLIF(..., '') makes an unset tenant and a tenant RESET to '' both
-- NULL, so the comparison is never true: no rows visible, no insert allowed. FORCE makes
-- it hold for the table owner too (superusers and BYPASSRLS roles still bypass).
-- Each ALTER only when needed: an ALTER TABLE takes an ACCESS EXCLUSIVE lock, and running
-- the migrations again on a live database should not queue behind application traffic.
-- PostgreSQL has no CREATE POLICY IF NOT EXISTS, hence the catalog checks.
DO $do$
DECLARE
    t regclass;
BEGIN
    FOREACH t IN ARRAY ARRAY['archon_ga4_events'::regclass, 'archon_ga4_daily_summaries'::regclass] LOOP
        IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = t) THEN
            EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
        END IF;
        IF NOT (SELECT relforcerowsecurity FROM pg_class WHERE oid = t) THEN
            EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_policy
                    WHERE polrelid = 'archon_ga4_events'::regclass
                      AND polname = 'Tenant isolation for GA4 events') THEN
        CREATE POLICY "Tenant isolation for GA4 events"
            ON archon_ga4_events FOR ALL
            USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policy
                    WHERE polrelid = 'archon_ga4_daily_summaries'::regclass
                      AND polname = 'Tenant isolation for GA4 daily summaries') THEN
        CREATE POLICY "Tenant isolation for GA4 daily summaries"
            ON archon_ga4_daily_summaries FOR ALL
            USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
    END IF;
END
$do$;

-- The default partition gets the parent's RLS too (direct access must be as safe as
-- access through the parent).
SELECT partwarden_sync_partition_rls('archon_ga4_events'::regclass, 'archon_ga4_events_default'::regclass);
