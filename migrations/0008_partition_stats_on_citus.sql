-- partwarden 0008: get_ga4_partition_stats() on a Citus coordinator. There a distributed
-- partition is a shell: its pg_class.reltuples stays 0 and pg_total_relation_size reads
-- its empty local files. For a distributed table, sizes come from Citus's
-- citus_total_relation_size and rows from the shards' own reltuples (NULL while a shard
-- holding data was never analyzed, as 0006 says of a plain partition). Without Citus, or
-- for a table it does not distribute, the function reads exactly as in 0006. Citus's
-- functions are called through EXECUTE only, so this also installs where Citus is absent.
-- Idempotent.

DO $do$
BEGIN
    -- CREATE OR REPLACE (not DROP): grants on the function stay.
    EXECUTE format($fn$
CREATE OR REPLACE FUNCTION get_ga4_partition_stats()
RETURNS TABLE (partition_name text, row_count bigint, size_bytes bigint, size_pretty text,
               date_range_start date, date_range_end date)
LANGUAGE plpgsql STABLE
SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC' SET IntervalStyle = 'postgres'
SET search_path = %s
AS $body$
DECLARE
    v_distributed boolean := false;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                                 WHERE logicalrelid = ''archon_ga4_events''::regclass AND partmethod = ''h'')'
           INTO v_distributed;
    END IF;
    IF NOT v_distributed THEN
        RETURN QUERY
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
         ORDER BY b.range_start NULLS LAST, c.relname;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
        SELECT c.relname::text,
               CASE WHEN bool_and(sh.tuples >= 0 OR sh.bytes = 0) THEN sum(greatest(sh.tuples, 0))::bigint END,
               citus_total_relation_size(c.oid),
               pg_size_pretty(citus_total_relation_size(c.oid)),
               (b.range_start AT TIME ZONE 'UTC')::date,
               (b.range_end AT TIME ZONE 'UTC')::date
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          CROSS JOIN LATERAL partwarden_range_bounds(c.oid) b
          CROSS JOIN LATERAL (
              SELECT split_part(r.result, ' ', 1)::float8 AS tuples, split_part(r.result, ' ', 2)::bigint AS bytes
                FROM run_command_on_shards(c.oid::regclass,
                       'SELECT reltuples || '' '' || pg_relation_size(oid) FROM pg_class WHERE oid = ''%%s''::regclass') r
               WHERE r.success) sh
         WHERE i.inhparent = 'archon_ga4_events'::regclass
         GROUP BY c.oid, c.relname, b.range_start, b.range_end
         ORDER BY b.range_start NULLS LAST, c.relname
    $q$;
END
$body$
$fn$, format('%I, pg_catalog, pg_temp', current_schema()));
END
$do$;
