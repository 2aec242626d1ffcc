-- DOL datasets on the console: for each dataset, the latest import of each input (by file name)
-- and where its rows are (live, superseded, errors), the rows its corrections replaced (history).
SELECT i.dataset,
       count(*) AS inputs,
       coalesce(sum(i.live_rows), 0) AS live_rows,
       coalesce(sum(i.superseded_rows), 0) AS superseded_rows,
       (SELECT count(*) FROM ple_ops.dol_row_history h
          JOIN ple_ops.dol_import j ON j.import_id = h.replaced_by_import_id
         WHERE j.dataset = i.dataset) AS history_rows,
       coalesce(sum(i.error_rows), 0) AS error_rows,
       max(i.finished_at) AS last_import
FROM (SELECT DISTINCT ON (file_name) * FROM ple_ops.dol_import
       WHERE status = 'imported' AND dataset IS NOT NULL
       ORDER BY file_name, import_id DESC) AS i
GROUP BY i.dataset
ORDER BY i.dataset
