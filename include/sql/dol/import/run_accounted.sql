SELECT i.import_id, i.data_rows = i.live_rows + i.superseded_rows + i.error_rows AND i.history_rows =
(SELECT count(*) FROM ple_ops.dol_row_history h WHERE h.replaced_by_import_id = i.import_id) AS accounted
FROM ple_ops.dol_import i WHERE i.status = 'imported' AND i.run_id = {}
