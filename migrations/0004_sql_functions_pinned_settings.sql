-- partwarden 0004: the SQL API runs with its own date settings, whatever the caller's.
-- Idempotent.
--
-- The functions read partition bounds back from the catalog (pg_get_expr), which prints
-- timestamptz values in the session's DateStyle and TimeZone. With DateStyle 'SQL, MDY'
-- and a POSIX zone such as 'UTC+5' a bound prints as '12/01/2026 19:00:00 UTC', and that
-- text casts back five hours off: statistics showed the December partition ending on
-- 2026-12-31 and retention compared the same wrong bounds. Each function is pinned to
-- ISO dates in UTC (a function's SET clauses apply while it runs, then the caller's
-- settings come back).
--
-- get_ga4_partition_stats() also computes each partition's size once instead of twice.

CREATE OR REPLACE FUNCTION get_ga4_partition_stats()
RETURNS TABLE (partition_name text, row_count bigint, size_bytes bigint, size_pretty text,
               date_range_start date, date_range_end date)
LANGUAGE sql STABLE
AS $fn$
    SELECT c.relname::text,
           greatest(c.reltuples, 0)::bigint,
           sz.total,
           pg_size_pretty(sz.total),
           (b.range_start AT TIME ZONE 'UTC')::date,
           (b.range_end AT TIME ZONE 'UTC')::date
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      CROSS JOIN LATERAL (SELECT pg_total_relation_size(c.oid) AS total) sz
      CROSS JOIN LATERAL partwarden_range_bounds(c.oid) b
     WHERE i.inhparent = 'archon_ga4_events'::regclass
     ORDER BY b.range_start NULLS LAST, c.relname
$fn$;

DO $do$
DECLARE
    v_path text := format('%I, pg_catalog, pg_temp', current_schema());
    v_fn   text;
BEGIN
    FOREACH v_fn IN ARRAY ARRAY[
        'partwarden_range_bounds(regclass)',
        'partwarden_utc_month_start(date)',
        'create_ga4_events_partition(date)',
        'ensure_ga4_partitions_exist(integer)',
        'drop_old_ga4_partitions(integer)',
        'get_ga4_partition_stats()',
        'partwarden_sync_partition_rls(regclass, regclass)'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s SET DateStyle = ''ISO, YMD''', v_fn);
        EXECUTE format('ALTER FUNCTION %s SET TimeZone = ''UTC''', v_fn);
        EXECUTE format('ALTER FUNCTION %s SET IntervalStyle = ''postgres''', v_fn);
    END LOOP;
    -- CREATE OR REPLACE above reset get_ga4_partition_stats' search_path.
    EXECUTE format('ALTER FUNCTION get_ga4_partition_stats() SET search_path = %s', v_path);
END
$do$;
