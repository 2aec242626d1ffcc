-- Every relation name (tables, views, indexes, sequences, ...) of a schema: names are unique per
-- schema across all of these kinds.
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s
