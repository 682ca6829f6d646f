-- partwarden 0002: the SQL API for psql and cron (SPEC §3). Idempotent (CREATE OR REPLACE).
--
-- These produce exactly the names and bounds the daemon does: UTC month starts written
-- with an explicit offset, whatever the session TimeZone; partitions found through
-- pg_inherits of the parent (never by name alone, never in another schema) and their
-- bounds read from the catalog (never from names); statistics from pg_class (reltuples)
-- and pg_total_relation_size, never count(*).
--
-- They are the simple, blocking way: CREATE TABLE ... PARTITION OF and DROP TABLE take an
-- ACCESS EXCLUSIVE lock on archon_ga4_events. `partwarden maintain` does the same work
-- online (ATTACH / DETACH CONCURRENTLY under a short lock_timeout).

-- Bounds of a range partition, read from its partition bound in the catalog. NULL for
-- MINVALUE/MAXVALUE and for the default partition. pg_get_expr prints timestamptz values
-- with their offset in the session time zone, and casting back is exact.
CREATE OR REPLACE FUNCTION partwarden_range_bounds(p_partition regclass,
                                                   OUT range_start timestamptz,
                                                   OUT range_end timestamptz)
LANGUAGE sql STABLE
AS $fn$
    SELECT substring(b FROM 'FROM \(''([^'']*)''\)')::timestamptz,
           substring(b FROM 'TO \(''([^'']*)''\)')::timestamptz
      FROM (SELECT pg_get_expr(c.relpartbound, c.oid) AS b FROM pg_class c WHERE c.oid = p_partition) s
$fn$;

-- UTC month start of a date, as timestamptz.
CREATE OR REPLACE FUNCTION partwarden_utc_month_start(p_date date)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT
AS $fn$ SELECT date_trunc('month', p_date::timestamp) AT TIME ZONE 'UTC' $fn$;

-- Creates the monthly partition of archon_ga4_events containing p_date (UTC month).
-- Rows of that month waiting in the default partition are moved into it in the same
-- transaction, with counts checked. Returns a status line.
CREATE OR REPLACE FUNCTION create_ga4_events_partition(p_date date)
RETURNS text
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_parent     regclass := 'archon_ga4_events'::regclass;
    v_nsp        oid;
    v_schema     name;
    v_from       timestamptz;
    v_to         timestamptz;
    v_name       text;
    v_existing   oid;
    v_default    oid;
    v_forced     boolean;
    v_moved      bigint := 0;
    v_inserted   bigint := 0;
    v_child      regclass;
BEGIN
    IF p_date IS NULL THEN
        RAISE EXCEPTION 'create_ga4_events_partition: the date must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    SELECT c.relnamespace, n.nspname INTO v_nsp, v_schema
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = v_parent;

    v_from := partwarden_utc_month_start(p_date);
    v_to   := (date_trunc('month', p_date::timestamp) + interval '1 month') AT TIME ZONE 'UTC';
    v_name := 'archon_ga4_events_' || to_char(p_date, 'YYYY_MM');

    -- A partition of this parent, in its schema, with this name: already there.
    SELECT c.oid INTO v_existing
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = v_parent AND c.relname = v_name AND c.relnamespace = v_nsp;
    IF FOUND THEN
        RETURN format('Partition %s already exists', v_name);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class WHERE relname = v_name AND relnamespace = v_nsp) THEN
        RAISE EXCEPTION 'create_ga4_events_partition: %.% exists but is not a partition of %',
            v_schema, v_name, v_parent
            USING ERRCODE = 'duplicate_table';
    END IF;

    SELECT partdefid INTO v_default FROM pg_partitioned_table WHERE partrelid = v_parent;
    IF v_default <> 0 THEN
        -- FORCE ROW LEVEL SECURITY hides every row from the owner when no tenant is set,
        -- so the rows of this month would stay invisible in the default partition and
        -- make the CREATE fail. Lift FORCE for this transaction only: the ALTER holds an
        -- ACCESS EXCLUSIVE lock on the default partition until commit, so no other
        -- session ever sees it unforced.
        SELECT relforcerowsecurity INTO v_forced FROM pg_class WHERE oid = v_default;
        IF v_forced THEN
            EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', v_default::regclass);
        END IF;
        IF to_regclass('pg_temp.partwarden_moved_rows') IS NOT NULL THEN
            DROP TABLE pg_temp.partwarden_moved_rows;
        END IF;
        CREATE TEMP TABLE partwarden_moved_rows (LIKE archon_ga4_events);
        EXECUTE format('WITH moved AS (DELETE FROM %s WHERE event_timestamp >= $1 AND event_timestamp < $2 RETURNING *)
                        INSERT INTO pg_temp.partwarden_moved_rows SELECT * FROM moved', v_default::regclass)
            USING v_from, v_to;
        GET DIAGNOSTICS v_moved = ROW_COUNT;
    END IF;

    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                   v_schema, v_name, v_parent,
                   to_char(v_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00',
                   to_char(v_to AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00');
    v_child := format('%I.%I', v_schema, v_name)::regclass;

    IF v_default <> 0 THEN
        -- Rows go in before the new partition's RLS is forced (the owner could not
        -- insert them afterwards without a tenant).
        EXECUTE format('INSERT INTO %s SELECT * FROM pg_temp.partwarden_moved_rows', v_child);
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
        IF v_inserted <> v_moved THEN
            RAISE EXCEPTION 'create_ga4_events_partition: moved % rows out of the default partition but % arrived in %',
                v_moved, v_inserted, v_name;
        END IF;
        DROP TABLE pg_temp.partwarden_moved_rows;
        IF v_forced THEN
            EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', v_default::regclass);
        END IF;
    END IF;

    PERFORM partwarden_sync_partition_rls(v_parent, v_child);

    RETURN format('Successfully created partition %s for date range %s to %s', v_name,
                  to_char(v_from AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                  to_char(v_to AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
           || CASE WHEN v_moved > 0
                   THEN format(' (moved %s rows from the default partition)', v_moved)
                   ELSE '' END;
END
$fn$;

-- Creates the partitions for the current UTC month through months_ahead months ahead:
-- one row per month, created or already there.
CREATE OR REPLACE FUNCTION ensure_ga4_partitions_exist(months_ahead integer DEFAULT 3)
RETURNS TABLE (partition_name text, status text)
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_month date;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'ensure_ga4_partitions_exist: months_ahead must be between 0 and 120 (got %)',
            coalesce(months_ahead::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN 0..months_ahead LOOP
        v_month := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => k))::date;
        partition_name := 'archon_ga4_events_' || to_char(v_month, 'YYYY_MM');
        status := create_ga4_events_partition(v_month);
        RETURN NEXT;
    END LOOP;
END
$fn$;

-- Drops the partitions that lie entirely before the retention cutoff
-- (upper bound <= now - retention_months, in UTC). The default partition, and any
-- partition without a finite upper bound, is never dropped.
CREATE OR REPLACE FUNCTION drop_old_ga4_partitions(retention_months integer DEFAULT 24)
RETURNS TABLE (partition_name text, status text)
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_parent regclass := 'archon_ga4_events'::regclass;
    v_cutoff timestamptz;
    v_part   record;
BEGIN
    IF retention_months IS NULL OR retention_months < 1 THEN
        RAISE EXCEPTION 'drop_old_ga4_partitions: retention_months must be at least 1 (got %)',
            coalesce(retention_months::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_cutoff := ((now() AT TIME ZONE 'UTC') - make_interval(months => retention_months)) AT TIME ZONE 'UTC';

    FOR v_part IN
        SELECT c.oid::regclass AS rel, c.relname, b.range_start, b.range_end
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          CROSS JOIN LATERAL partwarden_range_bounds(c.oid) b
         WHERE i.inhparent = v_parent
           AND c.oid <> (SELECT partdefid FROM pg_partitioned_table WHERE partrelid = v_parent)
           AND b.range_end IS NOT NULL
           AND b.range_end <= v_cutoff
         ORDER BY b.range_end
    LOOP
        EXECUTE format('DROP TABLE %s', v_part.rel);
        partition_name := v_part.relname;
        status := format('Dropped partition %s (date range %s to %s)', v_part.relname,
                         to_char(v_part.range_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                         to_char(v_part.range_end AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
        RETURN NEXT;
    END LOOP;
END
$fn$;

-- One row per partition (the default partition last, without a date range): estimated
-- rows (reltuples; 0 until the partition was first analyzed) and total size with indexes
-- and TOAST. One catalog query, O(partitions).
CREATE OR REPLACE FUNCTION get_ga4_partition_stats()
RETURNS TABLE (partition_name text, row_count bigint, size_bytes bigint, size_pretty text,
               date_range_start date, date_range_end date)
LANGUAGE sql STABLE
AS $fn$
    SELECT c.relname::text,
           greatest(c.reltuples, 0)::bigint,
           pg_total_relation_size(c.oid),
           pg_size_pretty(pg_total_relation_size(c.oid)),
           (b.range_start AT TIME ZONE 'UTC')::date,
           (b.range_end AT TIME ZONE 'UTC')::date
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      CROSS JOIN LATERAL partwarden_range_bounds(c.oid) b
     WHERE i.inhparent = 'archon_ga4_events'::regclass
     ORDER BY b.range_start NULLS LAST, c.relname
$fn$;

-- Resolve names in the schema these were installed in, whatever the caller's search_path.
DO $do$
DECLARE
    v_path text := format('%I, pg_catalog, pg_temp', current_schema());
BEGIN
    EXECUTE format('ALTER FUNCTION partwarden_range_bounds(regclass) SET search_path = %s', v_path);
    EXECUTE format('ALTER FUNCTION create_ga4_events_partition(date) SET search_path = %s', v_path);
    EXECUTE format('ALTER FUNCTION ensure_ga4_partitions_exist(integer) SET search_path = %s', v_path);
    EXECUTE format('ALTER FUNCTION drop_old_ga4_partitions(integer) SET search_path = %s', v_path);
    EXECUTE format('ALTER FUNCTION get_ga4_partition_stats() SET search_path = %s', v_path);
    EXECUTE format('ALTER FUNCTION partwarden_sync_partition_rls(regclass, regclass) SET search_path = %s', v_path);
END
$do$;

-- First run: the current month and the three after it.
SELECT * FROM ensure_ga4_partitions_exist(3);
