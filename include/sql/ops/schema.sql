-- The tool's own state in the target database (schema ple_ops). Idempotent: safe to run twice.

CREATE SCHEMA IF NOT EXISTS ple_ops;

-- Approvals: a subject (reorganization, cleanup, revert ...) and the fingerprint of everything that
-- decides what the run does (plan, decisions, engine code: see plugins/ple/approval.py). Editing any
-- part changes the fingerprint, which voids the approvals of the old one.
CREATE TABLE IF NOT EXISTS ple_ops.approval (
    approval_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject text NOT NULL,
    fingerprint text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    parts jsonb NOT NULL,
    approver text NOT NULL CHECK (btrim(approver) <> ''),
    approved_via text NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    note text,
    details jsonb NOT NULL DEFAULT '{}',
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS approval_fingerprint ON ple_ops.approval (subject, fingerprint, approval_id);
-- Scoped approvals (plugins/ple/approval.py): a row approves or rejects one scope (a phase, the
-- whole plan, a revert of a phase...). An approval authorises its scope for one run unless it is
-- standing; `for_run` binds it to the run whose request it answered; a rejection vetoes its scope
-- until a later approval; any row can be revoked (who, why).
ALTER TABLE ple_ops.approval
    ADD COLUMN IF NOT EXISTS scope text NOT NULL DEFAULT 'all',
    ADD COLUMN IF NOT EXISTS verdict text NOT NULL DEFAULT 'approve' CHECK (verdict IN ('approve', 'reject')),
    ADD COLUMN IF NOT EXISTS standing boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS for_run text,
    ADD COLUMN IF NOT EXISTS revoked_by text,
    ADD COLUMN IF NOT EXISTS revoke_reason text;
CREATE INDEX IF NOT EXISTS approval_scope ON ple_ops.approval (subject, scope, approval_id);

-- Which run used which approval for which scope: the first write of a run under a one-run
-- approval claims it, in the transaction of that write.
CREATE TABLE IF NOT EXISTS ple_ops.approval_use (
    approval_id bigint NOT NULL REFERENCES ple_ops.approval (approval_id),
    scope text NOT NULL,
    run_id text NOT NULL,
    first_used_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (approval_id, scope, run_id)
);

-- Every attempt of every step: what ran, on which rows, with what proof and outcome.
CREATE TABLE IF NOT EXISTS ple_ops.action_ledger (
    attempt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text NOT NULL,
    phase text NOT NULL,
    step_id text NOT NULL,
    action text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('apply', 'revert')),
    sources text[] NOT NULL DEFAULT '{}',
    target text,
    plan_sha256 text NOT NULL,
    sql_text text,
    rows_before jsonb,
    rows_after jsonb,
    checksums_before jsonb,
    checksums_after jsonb,
    details jsonb,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('applied', 'already_done', 'failed', 'reverted')),
    error text
);
CREATE INDEX IF NOT EXISTS action_ledger_step ON ple_ops.action_ledger (step_id, attempt_id);
CREATE INDEX IF NOT EXISTS action_ledger_phase ON ple_ops.action_ledger (phase, attempt_id);

-- Counts and content checksums of every table a phase touches, taken by its preflight.
CREATE TABLE IF NOT EXISTS ple_ops.table_snapshot (
    run_id text NOT NULL,
    phase text NOT NULL,
    table_name text NOT NULL,
    table_oid bigint NOT NULL,
    relfilenode bigint NOT NULL,
    columns text[] NOT NULL,
    row_count bigint NOT NULL,
    checksum numeric NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, phase, table_name)
);

-- Completed (frozen) phases.
CREATE TABLE IF NOT EXISTS ple_ops.phase_status (
    phase text PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('frozen', 'reverted')),
    run_id text NOT NULL,
    plan_sha256 text NOT NULL,
    frozen_tables text[] NOT NULL DEFAULT '{}',
    changed_at timestamptz NOT NULL DEFAULT now()
);

-- The CTB class of tables (MV, ARCHIVE, CANONICAL, ...), by OID so it follows moves. The leaf
-- lock reads it: after the lock, a table without a class in a leaf schema is refused.
CREATE TABLE IF NOT EXISTS ple_ops.table_registry (
    table_oid bigint PRIMARY KEY,
    table_name text NOT NULL,
    sub_hub text,
    ctb_class text NOT NULL,
    phase text,
    run_id text,
    previous_comment text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Archive tables are read-only after their phase is frozen, for everyone including their owner.
CREATE OR REPLACE FUNCTION ple_ops.forbid_writes() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'table %.% is a frozen CTB archive (%): it is read-only',
        TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'read_only_sql_transaction';
END
$fn$;

-- DOL imports: one row per input file (a CSV, or a member of a zip), keyed by its content's
-- SHA-256, so the same data imported again is recognised and skipped.
CREATE TABLE IF NOT EXISTS ple_ops.dol_import (
    import_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_sha256 text NOT NULL UNIQUE,
    file_name text NOT NULL,
    dataset text,
    form_year integer,
    encoding text,
    path text,
    bytes bigint,
    data_rows bigint,
    staged_rows bigint,
    error_rows bigint,
    inserted bigint,
    updated bigint,
    unchanged bigint,
    superseded bigint,
    unknown_columns text[] NOT NULL DEFAULT '{}',
    record_base bigint,
    status text NOT NULL CHECK (status IN ('staging', 'staged', 'imported', 'empty', 'skipped', 'failed')),
    message text,
    run_id text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- Rows of an input that could not land, with the reason and the raw line: never dropped.
CREATE TABLE IF NOT EXISTS ple_ops.dol_import_error (
    import_id bigint NOT NULL REFERENCES ple_ops.dol_import (import_id),
    record_no bigint,
    reason text NOT NULL,
    raw_line text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dol_import_error_import ON ple_ops.dol_import_error (import_id);

-- Nightly audit history: every number of every run, to compare a run with the one before.
CREATE TABLE IF NOT EXISTS ple_ops.audit_run (
    run_id text PRIMARY KEY,
    taken_at timestamptz NOT NULL DEFAULT now(),
    seconds numeric,
    status text NOT NULL DEFAULT 'computed' CHECK (status IN ('computed', 'passed', 'breached'))
);
CREATE TABLE IF NOT EXISTS ple_ops.audit_history (
    run_id text NOT NULL REFERENCES ple_ops.audit_run (run_id),
    number text NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (run_id, number)
);

-- Phase 2C cleanup: what each step of each run touched, and where the touched rows were saved.
CREATE TABLE IF NOT EXISTS ple_ops.cleanup_ledger (
    attempt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text NOT NULL,
    step text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('apply', 'undo')),
    rows_touched bigint NOT NULL DEFAULT 0,
    archived_rows bigint NOT NULL DEFAULT 0,
    artifact text,
    details jsonb,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('applied', 'nothing_to_do', 'failed', 'undone'))
);

-- Phase 2 leaf lock: tables allowed in the leaf schemas (by name: a table must be assigned before
-- it is created), and the lock's state.
CREATE TABLE IF NOT EXISTS ple_ops.ctb_path_assignment (
    table_name text PRIMARY KEY,
    sub_hub text NOT NULL,
    ctb_class text NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    assigned_by text NOT NULL
);
CREATE TABLE IF NOT EXISTS ple_ops.leaf_lock (
    schema_name text PRIMARY KEY,
    locked_at timestamptz NOT NULL DEFAULT now(),
    enforcement text NOT NULL CHECK (enforcement IN ('event_trigger', 'audit_only')),
    run_id text
);
CREATE OR REPLACE FUNCTION ple_ops.enforce_leaf_lock() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
    created record;
BEGIN
    FOR created IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
        IF EXISTS (SELECT 1 FROM ple_ops.leaf_lock WHERE schema_name = created.schema_name)
           AND NOT EXISTS (SELECT 1 FROM ple_ops.ctb_path_assignment WHERE table_name = created.object_identity) THEN
            RAISE EXCEPTION 'leaf lock: % has no CTB path assignment; assign it first (INSERT INTO ple_ops.ctb_path_assignment)',
                created.object_identity USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
END
$fn$;

-- What the tool itself created or relaxed, recorded in the transaction that did it, so that a
-- revert undoes exactly that and nothing else (a column the tool did not create is never dropped;
-- a NOT NULL the tool relaxed is restored). Keyed by table OID: it follows the table through moves.
CREATE TABLE IF NOT EXISTS ple_ops.tool_change (
    table_oid bigint NOT NULL,
    column_name text NOT NULL,
    change text NOT NULL CHECK (change IN ('created_column', 'relaxed_not_null', 'adopted_key', 'set_not_null')),
    table_name text NOT NULL,
    step_id text,
    run_id text,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_oid, column_name, change)
);

-- Foreign keys detached from archives at freeze, as structured catalog data (never SQL text):
-- revert composes them again with psycopg.sql. A row stays until revert restores the key, so
-- freezing again (under another plan checksum) never forgets a key detached the first time.
CREATE TABLE IF NOT EXISTS ple_ops.detached_fk (
    table_oid bigint NOT NULL,
    constraint_name text NOT NULL,
    table_name text NOT NULL,
    columns text[] NOT NULL,
    referenced_oid bigint NOT NULL,
    referenced_table text NOT NULL,
    referenced_columns text[] NOT NULL,
    match_type "char" NOT NULL,
    on_update "char" NOT NULL,
    on_delete "char" NOT NULL,
    is_deferrable boolean NOT NULL,
    is_deferred boolean NOT NULL,
    validated boolean NOT NULL,
    phase text NOT NULL,
    run_id text NOT NULL,
    detached_at timestamptz NOT NULL DEFAULT now(),
    restored_at timestamptz,
    PRIMARY KEY (table_oid, constraint_name)
);

-- What each merge wrote into its target, row by row: a hash of the target row's own columns as
-- inserted. Revert removes a merged copy only while it still matches; a copy edited since the
-- merge is kept and reported. Verify uses it to report merged rows the application changed.
CREATE TABLE IF NOT EXISTS ple_ops.merged_row (
    target_oid bigint NOT NULL,
    source_table text NOT NULL,
    source_key text NOT NULL,
    row_hash bigint NOT NULL,
    columns text[] NOT NULL,
    run_id text NOT NULL,
    PRIMARY KEY (target_oid, source_table, source_key)
);

-- How each snapshot entry is proven: 'identity' (OID and data file: relocations, keys, classes;
-- no scan) or 'checksum' (rows a merge or fold moves). Identity entries carry no checksum.
ALTER TABLE ple_ops.table_snapshot ADD COLUMN IF NOT EXISTS proof text NOT NULL DEFAULT 'checksum';
ALTER TABLE ple_ops.table_snapshot ALTER COLUMN checksum DROP NOT NULL;
-- DOL import accounting against the live tables (the import adopts tables it did not create):
-- where the file's rows are after the import, and the headers the table lacks.
ALTER TABLE ple_ops.dol_import
    ADD COLUMN IF NOT EXISTS live_rows bigint,
    ADD COLUMN IF NOT EXISTS superseded_rows bigint,
    ADD COLUMN IF NOT EXISTS dropped_columns text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS added_columns text[] NOT NULL DEFAULT '{}';
-- Reconcile (plugins/ple/reorg/reconcile.py): an action found in the plan's end state by other
-- means is recorded as `adopted` (with its evidence), one a decision leaves out as `skipped`.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'ple_ops.action_ledger'::regclass
                   AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%adopted%') THEN
        ALTER TABLE ple_ops.action_ledger DROP CONSTRAINT IF EXISTS action_ledger_outcome_check;
        ALTER TABLE ple_ops.action_ledger ADD CONSTRAINT action_ledger_outcome_check
            CHECK (outcome IN ('applied', 'already_done', 'failed', 'reverted', 'adopted', 'skipped'));
    END IF;
END $$;
-- Phase 1L (plugins/ple/reorg/pending.py): a person's answer to each pending question of the plan,
-- with who and when. Append-only: the latest answer per table counts, earlier ones stay as history.
CREATE TABLE IF NOT EXISTS ple_ops.pending_answer (
    answer_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text NOT NULL,
    answer text NOT NULL,
    action text CHECK (action IN ('MOVE', 'ARCHIVE')),
    target text,
    decided_by text NOT NULL CHECK (btrim(decided_by) <> ''),
    decided_via text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    plan_sha256 text NOT NULL,
    note text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS pending_answer_latest ON ple_ops.pending_answer (table_name, answer_id DESC);
CREATE OR REPLACE FUNCTION ple_ops.pending_answer_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ple_ops.pending_answer is append-only: record a new answer instead';
END $$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'ple_ops.pending_answer'::regclass
                   AND tgname = 'pending_answer_append_only') THEN
        CREATE TRIGGER pending_answer_append_only BEFORE UPDATE OR DELETE ON ple_ops.pending_answer
            FOR EACH ROW EXECUTE FUNCTION ple_ops.pending_answer_append_only();
    END IF;
END $$;
-- The rows this tool wrote into the owner's registry (ctb.table_registry, where the owner's
-- governance layer exists: plugins/ple/governance.py), each with the step that needed it, so that
-- a revert removes exactly those and nothing the owner registered.
CREATE TABLE IF NOT EXISTS ple_ops.registry_change (
    table_name text NOT NULL,
    change text NOT NULL CHECK (change IN ('registered')),
    leaf_type text NOT NULL,
    step_id text NOT NULL,
    run_id text,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, change)
);
-- Phase 2 on a database with the owner's DDL gate: the lock adopts it (enforcement 'owner_gate',
-- the gate's event triggers recorded) instead of adding a second event trigger.
ALTER TABLE ple_ops.leaf_lock ADD COLUMN IF NOT EXISTS adopted jsonb;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'ple_ops.leaf_lock'::regclass
                   AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%owner_gate%') THEN
        ALTER TABLE ple_ops.leaf_lock DROP CONSTRAINT IF EXISTS leaf_lock_enforcement_check;
        ALTER TABLE ple_ops.leaf_lock ADD CONSTRAINT leaf_lock_enforcement_check
            CHECK (enforcement IN ('event_trigger', 'audit_only', 'owner_gate'));
    END IF;
END $$;
-- DOL corrections keep what they replace (issue 22): a republished file that changes a row under
-- the same natural key moves the row it replaces here first, whole (every column of the live
-- table as JSON: a column added to the live table later needs nothing here), with when and by
-- which import (file) it was replaced. Append-only.
ALTER TABLE ple_ops.dol_import ADD COLUMN IF NOT EXISTS history_rows bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS ple_ops.dol_row_history (
    history_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text NOT NULL,
    natural_key jsonb NOT NULL,
    replaced_row jsonb NOT NULL,
    replaced_by_import_id bigint NOT NULL REFERENCES ple_ops.dol_import (import_id),
    replaced_by_file text NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dol_row_history_key ON ple_ops.dol_row_history (table_name, natural_key);
CREATE INDEX IF NOT EXISTS dol_row_history_import ON ple_ops.dol_row_history (replaced_by_import_id);
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'dol_row_history_append_only'
                   AND pronamespace = 'ple_ops'::regnamespace) THEN
        CREATE FUNCTION ple_ops.dol_row_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            RAISE EXCEPTION 'ple_ops.dol_row_history is append-only: the values DOL corrections replaced are kept';
        END $fn$;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'ple_ops.dol_row_history'::regclass
                   AND tgname = 'dol_row_history_append_only') THEN
        CREATE TRIGGER dol_row_history_append_only BEFORE UPDATE OR DELETE ON ple_ops.dol_row_history
            FOR EACH ROW EXECUTE FUNCTION ple_ops.dol_row_history_append_only();
    END IF;
END $$;

-- The reorganization's decisions for this database, versioned (plugins/ple/reorg/decisions.py):
-- the latest version is in force; its SHA-256 is part of every approval of the plan. `content` is
-- the YAML the decisions file export holds; `answers` who decided which entry, when and how (a
-- Required Action's authenticated responder, the command line).
CREATE TABLE IF NOT EXISTS ple_ops.decision_version (
    version bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content text NOT NULL,
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    decided_by text NOT NULL CHECK (btrim(decided_by) <> ''),
    decided_via text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    note text,
    answers jsonb NOT NULL DEFAULT '{}'
);

-- Every approval request as the approver saw it (plugins/ple/orchestration/approval_gate.py): the
-- console shows the same content for the run.
CREATE TABLE IF NOT EXISTS ple_ops.approval_request (
    request_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_id text NOT NULL,
    run_id text NOT NULL,
    subject text NOT NULL,
    scope text NOT NULL,
    fingerprint text NOT NULL,
    body text NOT NULL,
    asked_at timestamptz NOT NULL DEFAULT now()
);

-- Compatibility objects (issue 23, plugins/ple/reorg/compat.py): the view a step leaves at the
-- name it takes away, with the DDL that made it (so the contract's revert can make it again) and
-- its grace period; `removed_at` set by the contract (the row stays: the object can come back).
CREATE TABLE IF NOT EXISTS ple_ops.compat_object (
    name text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('MOVE', 'ARCHIVE', 'MERGE', 'FOLD')),
    over_table text NOT NULL,
    step_id text NOT NULL,
    phase text NOT NULL,
    ddl text NOT NULL,
    drop_ddl text NOT NULL,
    grace interval NOT NULL DEFAULT interval '30 days',
    created_at timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz,
    removed_by text
);
-- Who still uses a compatibility object: one row per (object, operation, role), counted by the
-- object's own statement-level trigger (writes), or sampled from pg_stat_statements (reads, where
-- the extension exists). What cannot be measured is said so on the console, never guessed.
CREATE TABLE IF NOT EXISTS ple_ops.compat_use (
    name text NOT NULL,
    operation text NOT NULL,
    role_name text NOT NULL,
    calls bigint NOT NULL DEFAULT 0,
    first_at timestamptz NOT NULL DEFAULT now(),
    last_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL DEFAULT 'trigger',
    PRIMARY KEY (name, operation, role_name)
);
-- Writes through a compatibility view, one row per statement, appended by the view's trigger: no
-- row is updated, so writers through one view never wait for each other's counter (an upsert
-- of one row per name and role held that row locked to each writer's commit).
CREATE TABLE IF NOT EXISTS ple_ops.compat_use_event (
    name text NOT NULL,
    operation text NOT NULL,
    role_name text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS compat_use_event_name ON ple_ops.compat_use_event (name, at);
-- Usage as the console and the contract read it: the sampled and recorded counts, and the writes
-- counted by the triggers, per (object, operation, role, source).
CREATE OR REPLACE VIEW ple_ops.compat_use_all AS
SELECT name, operation, role_name, sum(calls)::bigint AS calls, min(first_at) AS first_at, max(last_at) AS last_at, source
FROM (
    SELECT name, operation, role_name, calls, first_at, last_at, source FROM ple_ops.compat_use
    UNION ALL
    SELECT name, operation, role_name, count(*), min(at), max(at), 'trigger' FROM ple_ops.compat_use_event
    GROUP BY name, operation, role_name
) AS u
GROUP BY name, operation, role_name, source;
-- What pg_stat_statements had already counted of an old name when its compatibility object was
-- made (the tool's own reads of the table before it moved, per role): usage is what comes after.
CREATE TABLE IF NOT EXISTS ple_ops.compat_statements_before (
    name text NOT NULL,
    role_name text NOT NULL,
    calls bigint NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, role_name)
);
CREATE OR REPLACE FUNCTION ple_ops.compat_record(p_name text, p_operation text, p_role text, p_calls bigint, p_source text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
    INSERT INTO ple_ops.compat_use AS u (name, operation, role_name, calls, source)
    VALUES (p_name, p_operation, p_role, p_calls, p_source)
    ON CONFLICT (name, operation, role_name) DO UPDATE SET calls = u.calls + EXCLUDED.calls, last_at = now(),
        source = EXCLUDED.source;
$fn$;
REVOKE ALL ON FUNCTION ple_ops.compat_record(text, text, text, bigint, text) FROM PUBLIC;
-- The statement-level trigger of every compatibility view. SECURITY DEFINER, so that a caller
-- needs no privilege on ple_ops: the role recorded is therefore session_user (the role the
-- application logged in as; a role taken with SET ROLE is not seen).
CREATE OR REPLACE FUNCTION ple_ops.compat_used() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
BEGIN
    INSERT INTO ple_ops.compat_use_event (name, operation, role_name) VALUES (TG_ARGV[0], TG_OP, session_user::text);
    RETURN NULL;
END $fn$;
-- Writes a compatibility view does not take (any, through an ARCHIVE view; UPDATE and DELETE, through
-- MERGE and FOLD views): refused, naming where the rows are now.
CREATE OR REPLACE FUNCTION ple_ops.compat_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    RAISE EXCEPTION '% on %.% refused: % (the reorganization moved this table; under its old name this write is refused)',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'object_not_in_prerequisite_state';
END $fn$;
