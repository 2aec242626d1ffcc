"""Layout-driven synthetic DOL values, for the fixture and for full-size benchmark files.

No real F_5500_SF or F_SCH_A rows are available, so their values are generated field by field from
the official layout: the text a DOL file would hold (EINs and ZIPs with leading zeros, indicators
that are 0, 1 or empty, ISO dates, signature timestamps with a colon-less offset). Expressions are
SQL over the row number `@i`, using the fixture's pg_temp helpers.
"""

from __future__ import annotations

from ple.dol.layouts import Field

ALWAYS_FILLED_SUFFIXES = (
    "ACK_ID",
    "_EIN",
    "PLAN_NAME",
    "SPONSOR_NAME",
    "SPONSOR_DFE_NAME",
    "_PN",
    "PLAN_NUM",
    "INS_CARRIER_NAME",
    "FORM_ID",
    "ROW_ORDER",
)


def ack_id_expression(index: str = "@i") -> str:
    """A 30-character ACK_ID shaped like DOL's: YYYYMMDDhhmmss NAL ########## 001, unique per index."""
    return (
        f"to_char(timestamp '2023-07-01' + make_interval(secs => (pg_temp.fx_hash('ack', {index}) % 31536000)::int),"
        f" 'YYYYMMDDHH24MISS') || 'NAL' || lpad(({index})::text, 10, '0') || '001'"
    )


def text_expression(field: Field) -> str:
    """The file text of a field (before any cast), NULL for an empty field."""
    name = field.name
    tag = f"'{name}'"
    h = f"pg_temp.fx_hash({tag}, @i)"
    if name == "ACK_ID":
        value = ack_id_expression()
    elif name == "FORM_ID":
        value = "'1'"
    elif name.endswith("_EIN"):
        value = f"pg_temp.fx_ein({h})"
    elif name.endswith("_ZIP") or name.endswith("POSTAL_CD"):
        value = f"pg_temp.fx_zip({h})"
    elif name.endswith("_STATE") or name.endswith("_PROV_ST") or name.endswith("PROV_STATE"):
        value = f"pg_temp.fx_state({h})"
    elif name.endswith("_CNTRY"):
        value = "'CA'"
    elif name.endswith("_CITY"):
        value = f"pg_temp.fx_city({h})"
    elif name.endswith("SIGNED_NAME") or name.endswith("SIGN_NAME") or name == "PREPARER_NAME":
        value = f"upper(pg_temp.fx_first_name({h}) || ' ' || pg_temp.fx_last_name({h}))"
    elif name.endswith("_NAME"):
        value = f"upper(pg_temp.fx_company_name({h} % 100000))"
    elif "PHONE" in name:
        value = f"pg_temp.fx_phone({h})"
    elif name.endswith("_PN") or name.endswith("PLAN_NUM"):
        value = f"(ARRAY['001','002','003','501','333'])[1 + {h} % 5]"
    elif field.sql_type == "timestamptz":
        value = f"to_char(pg_temp.fx_ts({h}), 'YYYY-MM-DD') || 'T07:00:00-0500'"
    elif field.sql_type == "date":
        value = f"to_char(pg_temp.fx_ts({h}), 'YYYY-MM-DD')"
    elif name.endswith("_IND"):
        value = f"(ARRAY['0','1','1','2'])[1 + {h} % 4]"
    elif field.dol_type == "NUMERIC" or name.endswith("_CNT"):
        value = f"({h} % 250000)::text" if name.endswith("_AMT") else f"({h} % 900)::text"
    elif "ADDRESS" in name or name.endswith("_ADDR1") or name.endswith("_ADDR2"):
        value = f"(100 + {h} % 9000)::text || ' ' || pg_temp.fx_pick(ARRAY['MAIN STREET','LISBON STREET','ILLINOIS AVE','P.O. BOX 1407'], {tag}, @i)"
    elif name.endswith("_TEXT"):
        value = f"translate(upper(pg_temp.fx_sentence({tag}, @i)), E'\\n\\t', '  ')"  # real DOL text has no line breaks
    elif name.endswith("_CD") or name.endswith("_CODE"):
        value = f"(ARRAY['2','3','4','1A','2E','3D','1A1I'])[1 + {h} % 7]"
    elif name == "FILING_STATUS":
        value = "'FILING_RECEIVED'"
    else:
        value = f"left(translate(upper(pg_temp.fx_sentence({tag}, @i)), E'\\n\\t', '  '), 20)"
    if field.size:
        value = f"left({value}, {field.size})"
    if name.endswith(ALWAYS_FILLED_SUFFIXES):
        return value
    return f"CASE WHEN {h} % 5 < 2 THEN NULL ELSE {value} END"


def cast_expression(field: Field, text: str) -> str:
    """Cast file text to the canonical type (the importer validates first; this assumes valid)."""
    if field.sql_type == "text":
        return text
    return f"({text})::{field.sql_type}"


def write_file(conn, dataset: str, year: int, rows: int, path, ack_ids: list[str] | None = None, first: int = 1) -> int:
    """Write a DOL-shaped CSV (the header of `year`'s layout) of `rows` synthetic rows, numbered
    from `first` (files of other numbers hold other filings: several plan years side by side).

    Streams COPY ... TO STDOUT into the file, so memory does not grow with the file. Schedule A
    rows attach to `ack_ids` (round robin, FORM_ID numbering the contracts of a filing) when
    given, else to the ACK_IDs a synthetic F_5500 file of the same size would have. Needs the
    fixture's pg_temp helpers in the session (ple_dev.fixture.builder.install_helpers).
    """
    from psycopg import sql

    from ple.dol.layouts import fields_for_year

    fields = fields_for_year(dataset, year)
    # COPY takes no bind parameters: the few values are quoted by sql.Literal.
    acks = sql.Literal(ack_ids or []).as_string(conn) + "::text[]"
    filings = str(max(rows * 2 // 3, 1))
    per_filing = f"cardinality({acks})" if ack_ids else filings
    expressions = []
    for f in fields:
        if dataset == "F_SCH_A" and f.name == "ACK_ID":
            expressions.append(
                f"({acks})[(g.i - 1) % {per_filing} + 1]"
                if ack_ids
                else ack_id_expression(f"(g.i - 1) % {filings} + 1")
            )
        elif dataset == "F_SCH_A" and f.name == "FORM_ID":
            expressions.append(f"((g.i - 1) / {per_filing} + 1)::text")
        elif f.name.endswith("PLAN_YEAR_BEGIN_DATE"):
            expressions.append(f"'{year}-01-01'")
        elif f.name in ("FORM_TAX_PRD", "SF_TAX_PRD", "SCH_A_PLAN_YEAR_END_DATE"):
            expressions.append(f"'{year}-12-31'")
        else:
            expressions.append(text_expression(f).replace("@i", "g.i"))
    query = sql.SQL("COPY (SELECT {} FROM generate_series({}, {}) AS g(i)) TO STDOUT (FORMAT csv, HEADER true)").format(
        sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.SQL(e), sql.Identifier(f.name))
            for e, f in zip(expressions, fields, strict=True)
        ),
        sql.Literal(first),
        sql.Literal(first + rows - 1),
    )
    written = 0
    with conn.cursor() as cur, open(path, "wb") as out, cur.copy(query) as copy:
        for chunk in copy:
            out.write(chunk)
            written += len(chunk)
    return written
