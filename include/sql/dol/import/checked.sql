-- The staged rows the validation refuses, with the reason.
CREATE TEMPORARY TABLE {bad} ON COMMIT DROP AS
SELECT c.record_no, c.reason FROM (SELECT s.record_no, {problems} AS reason FROM {rows}) AS c
WHERE c.reason IS NOT NULL
