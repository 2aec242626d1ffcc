-- DOL imports, newest first, with their error rows' reasons.
SELECT i.import_id, i.file_name, i.dataset, i.form_year, i.status, i.data_rows, i.inserted, i.updated,
       i.unchanged, i.error_rows, i.superseded, i.unknown_columns, i.message, i.run_id, i.started_at,
       i.finished_at - i.started_at AS took,
       (SELECT string_agg(reason || ' (' || n || ')', '; ' ORDER BY n DESC)
          FROM (SELECT reason, count(*) AS n FROM ple_ops.dol_import_error e
                 WHERE e.import_id = i.import_id GROUP BY reason) r) AS error_reasons
FROM ple_ops.dol_import i
ORDER BY i.import_id DESC
LIMIT %(limit)s
