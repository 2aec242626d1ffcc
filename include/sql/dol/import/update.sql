-- A correction keeps what it replaces: the rows whose values changed are updated, and the rows
-- they replaced move, whole, to the history with this file's import.
WITH updated AS (
    UPDATE {live} AS t SET {sets} FROM ({values}) AS v
    WHERE {match} AND ({old}) IS DISTINCT FROM ({new})
    RETURNING {tkeys}
), kept AS (
    INSERT INTO ple_ops.dol_row_history
        (table_name, natural_key, replaced_row, replaced_by_import_id, replaced_by_file)
    SELECT %(table)s, jsonb_build_object({key}), to_jsonb(t.*), %(import_id)s, %(file)s
    FROM {live} AS t JOIN updated AS v ON {match}
    RETURNING 1
)
SELECT (SELECT count(*) FROM kept), (SELECT count(*) FROM updated)
