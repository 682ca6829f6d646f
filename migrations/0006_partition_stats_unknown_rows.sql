-- partwarden 0006: get_ga4_partition_stats() says NULL, not 0, for the rows of a
-- partition that holds data but was never analyzed (pg_class.reltuples = -1): 0 read as
-- "empty" when it meant "nobody counted". A partition whose heap is empty is 0 rows either
-- way. Idempotent.

DO $do$
BEGIN
    EXECUTE format($fn$
CREATE OR REPLACE FUNCTION get_ga4_partition_stats()
RETURNS TABLE (partition_name text, row_count bigint, size_bytes bigint, size_pretty text,
               date_range_start date, date_range_end date)
LANGUAGE sql STABLE
SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC' SET IntervalStyle = 'postgres'
SET search_path = %s
AS $body$
    SELECT c.relname::text,
           CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint
                WHEN pg_relation_size(c.oid) = 0 THEN 0 END,
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
$body$
$fn$, format('%I, pg_catalog, pg_temp', current_schema()));
END
$do$;
