-- The owner's drift class VENDOR_REF_VIOLATION (ctb-drift-audit.sh check 13): an active promotion
-- path whose source is a vendor table. Run only where ctb.promotion_paths exists.
SELECT 'VENDOR_REF_VIOLATION' AS class,
       format('%%s.%%s', pp.source_schema, pp.source_table) AS name,
       format('promotion path to %%s.%%s: data must flow through bridge -> RAW -> _active (§9.4)',
              pp.target_schema, pp.target_table) AS detail
FROM ctb.promotion_paths pp
WHERE pp.source_table LIKE 'vendor\_claude\_%%' AND pp.is_active
ORDER BY 2, 3
