-- Run once by the postgres image's entrypoint, as the superuser, when the data volume is
-- first initialised (psql, ON_ERROR_STOP). Sets up what docs/operations.md "Database
-- privileges" asks for:
--   partwarden  the maintenance role: owns the database and so the public schema and
--               everything its migrations create; not a superuser, no BYPASSRLS.
--   app_user    the application: DML only, always subject to row-level security.
-- Example passwords for a throwaway local stack.
CREATE ROLE partwarden LOGIN PASSWORD 'partwarden' NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB;
CREATE ROLE app_user LOGIN PASSWORD 'app_user' NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB;
CREATE DATABASE analytics OWNER partwarden;

\connect analytics

-- pgvector is not a trusted extension: only a superuser can create it, once.
CREATE EXTENSION IF NOT EXISTS vector;

-- The vector policy counts a partition's vectors from its column statistics, which
-- pg_stats hides from the owner of a table under forced row-level security.
GRANT SELECT ON pg_catalog.pg_statistic TO partwarden;

-- The application's grants on whatever partwarden creates in public (the tables of the
-- migrations and every partition maintenance adds later).
GRANT USAGE ON SCHEMA public TO app_user;
ALTER DEFAULT PRIVILEGES FOR ROLE partwarden IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_user;
ALTER DEFAULT PRIVILEGES FOR ROLE partwarden IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO app_user;
