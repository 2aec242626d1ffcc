-- A fingerprint of everything read_catalog reads: every catalog row a DDL statement writes gets a
-- new (xmin, ctid), so any change (committed, or made earlier in this transaction) changes it.
-- About 10 ms, against about 120 ms for reading the catalog itself.
SELECT md5(concat_ws('|',
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_class),
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_attribute),
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_attrdef),
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_constraint),
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_index),
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_description),
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_namespace),
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_type),
    (SELECT string_agg(xmin::text || ctid::text, ',') FROM pg_cast)))
