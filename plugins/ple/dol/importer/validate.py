"""The validate stage: what is wrong with each staged row, and whether the load is fresh.

Types were checked by COPY (as the live table declares them); this stage checks the rest in SQL,
set-based: ACK_ID, EINs, the plan year, NOT NULL columns, the natural key unique in the file.
One aggregate over the staged keys (count, checksum, repeats) and two semi-joins that stop at the
first match tell whether any staged key is already in the live or the superseded table. When
none is and none repeats (a fresh load), the write stage validates on the way (`problems`, the
same expression); otherwise the bad rows go to the errors table here (`quarantine`).
"""

from __future__ import annotations

from psycopg import sql

from ple.dol import target
from ple.dol.importer.state import BAD, STAGE, FileImport, StagedKeys, timed
from ple.dol.layouts import Dataset
from ple.errors import BadInput
from ple.sqlutil import qualified, raw_template


def validate(f: FileImport) -> None:
    """The form year (from the plan years when the file name has none), the staged keys, whether
    the load is fresh; for a refresh, the bad rows quarantined and the good ones counted."""
    conn, source, result, dataset, mapping = f.conn, f.source, f.result, f.dataset, f.mapping
    with timed(result, "validate"):
        if result.form_year is None:
            result.form_year = majority_year(conn, dataset, mapping)
        f.keys = staged_keys(conn, dataset)
        if f.keys.rows != f.staged:
            raise BadInput(f"{source.name}: COPY reported {f.staged} rows, the staging table holds {f.keys.rows}")
        result.staged_rows = f.staged
        f.fresh = not f.keys.repeated and not known_keys(conn, dataset, f.live, f.superseded.name)
        if not f.fresh:
            f.quarantined += quarantine(f, f.keys.repeated)
            f.good = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(STAGE))).fetchone()[0]
            check_counts(f)
        # the joins plan on real counts: the upsert's and the Schedule A link's on the key, the
        # supersede's on the plan identity (unanalyzed, a DISTINCT is guessed at 200 values and
        # the join with the live table becomes a nested loop: minutes, measured); only those
        # columns (ANALYZE of every column of a 191-column table costs more than the upsert)
        joined = dict.fromkeys([*dataset.natural_key, *(c for c in dataset.plan_identity if c in mapping.loaded)])
        conn.execute(
            sql.SQL("ANALYZE {} ({})").format(sql.Identifier(STAGE), sql.SQL(", ").join(map(sql.Identifier, joined)))
        )


def check_counts(f: FileImport) -> None:
    """Every data row of the file is either good (staged), quarantined or unchanged (not staged)."""
    result = f.result
    if f.good + f.quarantined + f.unchanged != result.data_rows:
        raise BadInput(
            f"{f.source.name}: {result.data_rows} data rows in the file, but {f.good} staged + {f.quarantined} "
            f"quarantined + {f.unchanged} unchanged"
        )


def known_keys(conn, dataset: Dataset, live: target.LiveTable, superseded: str) -> bool:
    """Whether any staged natural key is already in the live or the superseded table: two
    semi-joins that stop at the first match (a refresh answers at once; a fresh load probes
    each key in the tables' key indexes)."""

    def known(table: str) -> sql.Composable:
        return sql.SQL("EXISTS (SELECT 1 FROM {} AS s JOIN {} AS t ON {})").format(
            sql.Identifier(STAGE),
            qualified(table),
            sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key),
        )

    return conn.execute(sql.SQL("SELECT {} OR {}").format(known(live.name), known(superseded))).fetchone()[0]


def majority_year(conn, dataset: Dataset, mapping: target.Mapping) -> int | None:
    by_name = by_name_of(mapping)
    if dataset.begin_date not in by_name:
        return None
    t = text(by_name[dataset.begin_date])
    row = conn.execute(
        sql.SQL("SELECT mode() WITHIN GROUP (ORDER BY left({t}, 4)) FROM {s} AS s WHERE {t} ~ '^[0-9]{{4}}-'").format(
            t=t, s=sql.Identifier(STAGE)
        )
    ).fetchone()
    return int(row[0]) if row and row[0] else None


def by_name_of(mapping: target.Mapping) -> dict[str, str]:
    """Staging column of each canonical (lower-case header) name."""
    return {name.lower(): column for name, column in zip(mapping.header, mapping.staging, strict=True)}


def text(column: str) -> sql.Composable:
    return sql.SQL("btrim(s.{}::text)").format(sql.Identifier(column))


def as_date(column: str) -> sql.Composable:
    """The value as a date when it is a real calendar date in ISO form, else NULL: no exception,
    no pg_input_is_valid (PostgreSQL 16+ only), so the same SQL runs on 15 to 18."""
    x = text(column)
    return sql.SQL(
        "CASE WHEN {x} ~ '^[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' "
        "AND (substr({x}, 9, 2) <= '28' OR date_part('month', (left({x}, 8) || '01')::date + (substr({x}, 9, 2)::int - 1)) "
        "= substr({x}, 6, 2)::int) THEN {x}::date END"
    ).format(x=x)


def date_of(live: target.LiveTable, mapping: target.Mapping, column: str) -> sql.Composable:
    """A date column as a date: as it is when the live table types it `date`, else checked."""
    if column in mapping.loaded and live.columns[column].type == "date":
        return sql.SQL("s.{}").format(sql.Identifier(column))
    return as_date(column)


def required(live: target.LiveTable, mapping: target.Mapping) -> list[tuple[str, str]]:
    """(NOT NULL live column without a default, the staging column that fills it)."""
    return [(c, c) for c in mapping.loaded if live.columns[c].not_null and not live.columns[c].has_default] + [
        (alias, source)
        for alias, source in mapping.aliases
        if live.columns[alias].not_null and not live.columns[alias].has_default
    ]


def checked_columns(f: FileImport) -> list[str]:
    """The staging columns the validation reads: only these pass through its row-by-row pass."""
    dataset, mapping = f.dataset, f.mapping
    by_name = by_name_of(mapping)
    columns = [*dataset.natural_key, *(by_name[e] for e in dataset.ein_columns if e in by_name)]
    columns += [source for _, source in required(f.live, mapping)]
    return list(dict.fromkeys(["record_no", *columns]))


def problems(f: FileImport) -> sql.Composable:
    """One SQL expression naming everything wrong with a staged row (NULL when nothing is).
    Types were checked by COPY (as the live table declares them)."""
    dataset, live, mapping, form_year = f.dataset, f.live, f.mapping, f.form_year
    by_name = by_name_of(mapping)
    checks = [
        sql.SQL(
            "CASE WHEN nullif({a}, '') IS NULL THEN 'ACK_ID missing' WHEN length({a}) <> 30 THEN 'ACK_ID is not 30 characters' END"
        ).format(a=text("ack_id"))
    ]
    for key in dataset.natural_key:
        if key != "ack_id":
            checks.append(
                sql.SQL("CASE WHEN s.{} IS NULL THEN {} END").format(
                    sql.Identifier(key), sql.Literal(f"{key.upper()} missing")
                )
            )
    for ein in dataset.ein_columns:
        if ein in by_name:
            checks.append(
                sql.SQL("CASE WHEN s.{c} IS NOT NULL AND {t} !~ '^[0-9]{{9}}$' THEN {msg} END").format(
                    c=sql.Identifier(by_name[ein]),
                    t=text(by_name[ein]),
                    msg=sql.Literal(f"{ein.upper()} is not 9 digits"),
                )
            )
    for column, source in required(live, mapping):
        checks.append(
            sql.SQL("CASE WHEN s.{} IS NULL THEN {} END").format(
                sql.Identifier(source),
                sql.Literal(f"{source.upper()} missing ({live.name}.{column} is NOT NULL)"),
            )
        )
    begin, end = by_name.get(dataset.begin_date or ""), by_name.get(dataset.end_date or "")
    if begin and end:
        # Late filings for earlier plan years are real (a 2019 dataset holds plan years of 2004 and
        # 2018), so the plan year is checked for its own shape.
        checks.append(
            sql.SQL(
                "CASE WHEN NOT (s.ple_plan_year_end >= s.ple_plan_year_begin AND s.ple_plan_year_end - s.ple_plan_year_begin < 372) "
                "THEN {msg} END"
            ).format(
                msg=sql.Literal(
                    f"plan year {dataset.begin_date.upper()}..{dataset.end_date.upper()} is not a plan year"
                ),
            )
        )
    if begin and form_year:
        checks.append(
            sql.SQL("CASE WHEN s.ple_plan_year_begin >= make_date({y} + 1, 1, 1) THEN {msg} END").format(
                y=sql.Literal(form_year + 1),  # short plan years of the next year are real
                msg=sql.Literal(f"{dataset.begin_date.upper()} begins after form year {form_year} + 1"),
            )
        )
    checks.append(
        sql.SQL("CASE WHEN s.ple_duplicate THEN {} END").format(
            sql.Literal("natural key " + "+".join(dataset.natural_key).upper() + " repeated in the file")
        )
    )
    return sql.SQL("nullif(concat_ws('; ', {}), '')").format(sql.SQL(", ").join(checks))


def csv_line(mapping: target.Mapping) -> sql.Composable:
    """The staged row as a CSV line in the file's column order (the record, as parsed)."""
    return sql.SQL(" || ',' || ").join(
        sql.SQL(
            "CASE WHEN s.{c}::text ~ '[\",\\r\\n]' THEN '\"' || replace(s.{c}::text, '\"', '\"\"') || '\"' ELSE coalesce(s.{c}::text, '') END"
        ).format(c=sql.Identifier(c))
        for c in mapping.staging
    )


def checked(f: FileImport, columns: sql.Composable, duplicate: sql.Composable) -> sql.Composable:
    """The staged rows `s` with what the validation needs beside `columns`: whether the row
    repeats a key of the file and its plan-year dates (OFFSET 0: each date is computed once per
    row). `problems` reads them as s.ple_duplicate, s.ple_plan_year_begin, s.ple_plan_year_end."""
    dataset, live, mapping = f.dataset, f.live, f.mapping
    by_name = by_name_of(mapping)
    return sql.SQL(
        "(SELECT {columns}, {duplicate} AS ple_duplicate, {begin} AS ple_plan_year_begin, {end} AS ple_plan_year_end "
        "FROM {stage} AS s OFFSET 0) AS s"
    ).format(
        columns=columns,
        duplicate=duplicate,
        begin=date_of(live, mapping, by_name[dataset.begin_date])
        if dataset.begin_date in by_name
        else sql.SQL("NULL::date"),
        end=date_of(live, mapping, by_name[dataset.end_date]) if dataset.end_date in by_name else sql.SQL("NULL::date"),
        stage=sql.Identifier(STAGE),
    )


def key_hash(dataset: Dataset, alias: str) -> sql.Composable:
    """A 64-bit hash of a row's natural key: summed over rows, the checksum of a set of keys."""
    return sql.SQL("hashtextextended(ROW({})::text, 0)").format(
        sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) for k in dataset.natural_key
        )
    )


def staged_keys(conn, dataset: Dataset) -> StagedKeys:
    keys = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in dataset.natural_key)
    rows, checksum, repeated = conn.execute(
        sql.SQL(raw_template("dol/import/staged_keys")).format(
            hash=key_hash(dataset, "s"), stage=sql.Identifier(STAGE), keys=keys
        )
    ).fetchone()
    return StagedKeys(rows, int(checksum), repeated)


def quarantine(f: FileImport, repeated: bool) -> int:
    """One pass: every staged row's problems; the bad rows move to the errors table.
    `repeated`: some natural key repeats in the file (the window that marks them costs a sort;
    most files need none)."""
    conn, dataset = f.conn, f.dataset
    keys = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in dataset.natural_key)
    duplicate = (
        sql.SQL("s.record_no <> min(s.record_no) OVER (PARTITION BY {})").format(keys) if repeated else sql.SQL("false")
    )
    columns = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in checked_columns(f))
    bad = sql.SQL(raw_template("dol/import/checked")).format(
        bad=sql.Identifier(BAD), problems=problems(f), rows=checked(f, columns, duplicate)
    )
    if not conn.execute(bad).rowcount:
        return 0  # the common case: one pass over the rows, nothing to move
    statement = sql.SQL(raw_template("dol/import/quarantine")).format(
        stage=sql.Identifier(STAGE), bad=sql.Identifier(BAD), line=csv_line(f.mapping)
    )
    return conn.execute(statement, {"import_id": f.import_id}).rowcount
