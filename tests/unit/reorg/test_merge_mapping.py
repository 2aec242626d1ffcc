"""How a MERGE maps a source row onto its target (reorg/merge_mapping.py), without a database:
which columns copy, which casts would lose information, what a fill rule writes, what stays in
provenance only and which required columns nothing fills. Hypothesis varies the column types."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from ple.catalog import Catalog, ColumnInfo, TableInfo
from ple.reorg.merge_mapping import cast_to, lossycast_to, mapping, narrowing
from ple.reorg.plan import Action, MergeTarget

TYPES = {  # type_name -> (format_type, oid, category)
    "int2": ("smallint", 21, "N"),
    "int4": ("integer", 23, "N"),
    "int8": ("bigint", 20, "N"),
    "numeric": ("numeric", 1700, "N"),
    "float4": ("real", 700, "N"),
    "float8": ("double precision", 701, "N"),
    "text": ("text", 25, "S"),
    "varchar": ("character varying", 1043, "S"),
    "timestamp": ("timestamp without time zone", 1114, "D"),
    "timestamptz": ("timestamp with time zone", 1184, "D"),
    "date": ("date", 1082, "D"),
    "uuid": ("uuid", 2950, "U"),
}


def column(name: str, type_name: str = "text", *, length: int | None = None, not_null=False, default=False):
    shown, oid, category = TYPES[type_name]
    return ColumnInfo(
        name,
        f"{shown}({length})" if length else shown,
        oid,
        not_null,
        default,
        False,
        length,
        "pg_catalog",
        type_name,
        category,
    )


def table(name: str, *columns: ColumnInfo, key=()) -> TableInfo:
    return TableInfo(name, 1, 1, "r", list(columns), list(key))


ACTION = Action("1b", "MERGE", "people.people_errors_old", "people.people_errors", value="old")


def spec(**kwargs) -> MergeTarget:
    return MergeTarget("people.people_errors", "source_system", "text", **kwargs)


def test_a_column_of_the_same_name_and_an_assignable_type_is_copied_the_rest_stays_in_provenance():
    source = table("people.people_errors_old", column("id", "int8"), column("message"), column("legacy_flag"))
    target = table("people.people_errors", column("id", "int8", not_null=True), column("message"))
    found = mapping(ACTION, spec(), source, target, Catalog({}, set()))
    assert [(f.column, f.how) for f in found.fills] == [("id", "copy"), ("message", "copy")]
    assert found.provenance_only == ["legacy_flag"]
    assert found.nullable_copies == [("id", "id")]  # NOT NULL in the target, nullable in the source
    assert found.uncovered == [] and found.lossy == []


def test_a_required_target_column_nothing_fills_is_uncovered_unless_relaxed_or_defaulted():
    source = table("people.people_errors_old", column("message"))
    target = table(
        "people.people_errors",
        column("message"),
        column("status", not_null=True),
        column("created_at", "timestamptz", not_null=True, default=True),
        column("owner", not_null=True),
    )
    found = mapping(ACTION, spec(relax_not_null=("owner",)), source, target, Catalog({}, set()))
    assert found.uncovered == ["status"]


def test_a_fill_rule_reads_its_columns_first_then_its_fallback():
    """The bug of issue 19, case 1, seen from the mapping: `from` columns per row, `value` last."""
    source = table("people.people_errors_old", column("resolution_status"))
    target = table("people.people_errors", column("status", not_null=True))
    rule = {"status": {"from": ["resolution_status", "not_there"], "value": "open"}}
    found = mapping(ACTION, spec(fill=rule), source, target, Catalog({}, set()))
    (fill,) = found.fills
    assert fill.column == "status" and fill.how == "fill"
    assert isinstance(fill.expression, sql.Composed) and "COALESCE" in repr(fill.expression)
    assert found.params["value_status"] == "open" and found.provenance_only == []


@pytest.mark.parametrize(
    ("source", "target", "lossy"),
    [
        ("numeric", "int4", True),
        ("float8", "int8", True),
        ("float8", "float4", True),
        ("int8", "float8", True),
        ("timestamp", "timestamptz", True),
        ("timestamptz", "timestamp", True),
        ("timestamptz", "date", True),
        ("timestamp", "date", True),
        ("int4", "int8", False),
        ("int2", "numeric", False),
        ("float4", "float8", False),
        ("date", "timestamp", False),
        ("text", "text", False),
    ],
)
def test_which_casts_lose_information(source, target, lossy):
    assert (lossycast_to(column("a", source), column("b", target)) is not None) == lossy


@given(st.sampled_from(sorted(TYPES)))
def test_a_type_into_itself_never_loses_information(type_name):
    assert lossycast_to(column("a", type_name), column("b", type_name)) is None


@given(st.integers(1, 500), st.integers(1, 500) | st.none())
def test_a_string_narrows_only_into_a_shorter_varchar(target_length, source_length):
    source = column("a", "varchar", length=source_length) if source_length else column("a", "text")
    narrows = narrowing(source, column("b", "varchar", length=target_length))
    assert narrows == (source_length is None or source_length > target_length)
    assert not narrowing(source, column("b", "text"))


def test_a_refused_lossy_copy_is_recorded_and_an_accepted_one_is_cut_to_the_length():
    source = table("people.people_errors_old", column("amount", "numeric"), column("note", "text"))
    target = table("people.people_errors", column("amount", "int4"), column("note", "varchar", length=20))
    catalog = Catalog({}, set(), casts={(1700, 23)})
    refused = mapping(ACTION, spec(), source, target, catalog)
    assert [(s, t) for s, t, _ in refused.lossy] == [("amount", "amount")]
    assert "note" in refused.provenance_only  # an unbounded text is not assignable to varchar(20)
    rule = {"note": {"from": ["note"]}}
    narrowed = mapping(ACTION, spec(fill=rule), source, target, catalog)
    assert narrowed.narrowed == [("note", "note", 20)]  # the lint counts the rows that are longer
    accepted = mapping(
        ACTION, spec(fill=rule, accept_lossy_casts={"note": "20 characters are enough"}), source, target, catalog
    )
    assert accepted.narrowed == [] and "note" in {f.column for f in accepted.fills}
    assert "CAST" in repr(cast_to(sql.SQL("x"), target.column("note"), to_length=True))
