"""The official EFAST2 record layouts as data, and the canonical DOL tables derived from them.

DOL only ever added columns to these datasets (2009-2025), so the canonical table of a dataset
has the union of every year's columns, and a file of any year maps onto it by header name.

Canonical column names are the lower-cased DOL header names: one rule, no hand-kept mapping for
421 columns. The names that the hub+spoke document uses and the files do not have
(`sponsor_dfe_ein`, `plan_number`, `tot_partcp_eoy_cnt`, `insurance_company_name`,
`covered_lives`) are stored generated columns, so the document's joins run as written and can never
disagree with the column they are derived from.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass

from ple.config import DOL_LAYOUTS_FILE

SIGNATURE_TIMESTAMP = re.compile(r"SIGN(ED)?_DATE$")


@dataclass(frozen=True)
class Field:
    name: str  # DOL header name, e.g. SPONS_DFE_EIN
    dol_type: str  # TEXT or NUMERIC as the layout says (the widest over the years)
    size: int | None

    @property
    def column(self) -> str:
        return self.name.lower()

    @property
    def sql_type(self) -> str:
        """Canonical PostgreSQL type: identifiers and codes stay text (leading zeros survive)."""
        if self.name == "FORM_ID":
            return "integer"
        if self.dol_type == "NUMERIC":
            return "numeric"
        if self.size == 10 and (self.name.endswith("_DATE") or self.name.endswith("_PRD")):
            return "date"
        if SIGNATURE_TIMESTAMP.search(self.name):
            return "timestamptz"
        return "text"


@dataclass(frozen=True)
class Dataset:
    """A DOL dataset (one file type) and the tables it lands in."""

    name: str  # F_5500, F_5500_SF, F_SCH_A
    table: str  # canonical table, schema-qualified
    staging_table: str
    natural_key: tuple[str, ...]
    surrogate_key: str
    aliases: tuple[tuple[str, str, str], ...]  # (alias column, type, SQL expression over canonical columns)
    plan_identity: tuple[str, ...] = ()  # a plan's filings for a plan year; the latest received wins
    ein_columns: tuple[str, ...] = ()  # EINs: 9 digits when present
    begin_date: str | None = None  # the plan year: begins on or before it ends, lasts at most a year,
    end_date: str | None = None  # and does not begin after the form year
    surrogate_type: str = "uuid"  # uuid (the filing tables) or bigserial (the owner's schedule tables: `id`)


DATASETS: dict[str, Dataset] = {
    "F_5500": Dataset(
        name="F_5500",
        table="dol.form_5500",
        staging_table="dol.form_5500_staging",
        natural_key=("ack_id",),
        surrogate_key="filing_id",
        aliases=(
            ("sponsor_dfe_ein", "text", "spons_dfe_ein"),
            ("plan_number", "text", "spons_dfe_pn"),
            ("tot_partcp_eoy_cnt", "numeric", "tot_act_rtd_sep_benef_cnt"),
        ),
        plan_identity=("spons_dfe_ein", "spons_dfe_pn", "form_plan_year_begin_date"),
        ein_columns=("spons_dfe_ein", "admin_ein", "last_rpt_spons_ein"),
        begin_date="form_plan_year_begin_date",
        end_date="form_tax_prd",
    ),
    "F_5500_SF": Dataset(
        name="F_5500_SF",
        table="dol.form_5500_sf",
        staging_table="dol.form_5500_sf_staging",
        natural_key=("ack_id",),
        surrogate_key="filing_id",
        aliases=(("sponsor_dfe_ein", "text", "sf_spons_ein"),),
        plan_identity=("sf_spons_ein", "sf_plan_num", "sf_plan_year_begin_date"),
        ein_columns=("sf_spons_ein", "sf_admin_ein", "sf_last_rpt_spons_ein"),
        begin_date="sf_plan_year_begin_date",
        end_date="sf_tax_prd",
    ),
    "F_SCH_A": Dataset(
        name="F_SCH_A",
        table="dol.schedule_a",
        staging_table="dol.schedule_a_staging",
        natural_key=("ack_id", "form_id"),
        surrogate_key="schedule_id",
        aliases=(
            ("insurance_company_name", "text", "ins_carrier_name"),
            (
                "covered_lives",
                "integer",
                r"CASE WHEN ins_prsn_covered_eoy_cnt ~ '^\s*\d{1,9}\s*$' THEN btrim(ins_prsn_covered_eoy_cnt)::integer END",
            ),
        ),
        ein_columns=("sch_a_ein", "ins_carrier_ein"),
        begin_date="sch_a_plan_year_begin_date",
        end_date="sch_a_plan_year_end_date",
    ),
}


LAYOUT_FILE = re.compile(r"^(?P<dataset>[A-Za-z0-9_]+?)_(?P<year>20\d\d)_latest_layout\.txt$", re.IGNORECASE)


def _layout_file_rows(path) -> list[dict[str, str]]:
    """One of DOL's published layout files (`FIELD_POSITION,FIELD_NAME,TYPE,SIZE`, a line of `=`)."""
    match = LAYOUT_FILE.match(path.name)
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for record in csv.reader(handle):
            if not record or not record[0].strip().isdigit():
                continue  # the heading and its underline
            position, name, dol_type, *size = (v.strip() for v in record)
            rows.append(
                {
                    "form_year": match.group("year"),
                    "dataset": match.group("dataset").upper(),
                    "field_position": position,
                    "field_name": name.upper(),
                    "type": dol_type.upper(),
                    "size": size[0] if size and size[0] else "",
                }
            )
    return rows


@functools.cache
def _layout_rows() -> tuple[dict[str, str], ...]:
    """Every field of every layout: layouts_by_year.csv, every other `*layouts_by_year.csv` beside
    it (schedule_layouts_by_year.csv: the schedules' layouts, each file's source in the folder's
    README.md), and each layout file beside them (`<DATASET>_<year>_latest_layout.txt`, as DOL
    publishes them) for a dataset and year the tables do not hold: a dataset is imported once its
    layout is here."""
    rows: list[dict[str, str]] = []
    tables = [DOL_LAYOUTS_FILE, *sorted(DOL_LAYOUTS_FILE.parent.glob("?*_layouts_by_year.csv"))]
    for path in tables:
        with path.open(newline="", encoding="utf-8") as handle:
            rows += csv.DictReader(handle)
    known = {(r["dataset"], r["form_year"]) for r in rows}
    for path in sorted(DOL_LAYOUTS_FILE.parent.iterdir()):
        match = LAYOUT_FILE.match(path.name)
        if match and (match.group("dataset").upper(), match.group("year")) not in known:
            rows += _layout_file_rows(path)
    return tuple(rows)


def layout_datasets() -> list[str]:
    """Every EFAST2 dataset that has a layout."""
    return sorted({row["dataset"] for row in _layout_rows()})


def table_name(dataset: str) -> str:
    """dol.<table> of a dataset without a table of its own above: F_SCH_A_PART1 -> dol.schedule_a_part1,
    F_5500_SF_PART7 -> dol.form_5500_sf_part7, F_SCH_C -> dol.schedule_c."""
    name = dataset.lower()
    name = re.sub(r"^f_sch_", "schedule_", name)
    name = re.sub(r"^f_5500", "form_5500", name)
    return f"dol.{name}"


@functools.cache
def dataset(name: str) -> Dataset:
    """The dataset of that name: one of DATASETS, else derived from its layout: its table by name,
    its natural key ACK_ID with FORM_ID and ROW_ORDER where the layout has them (a schedule's
    filing, its form, the row within the form), an `id bigserial` key like the owner's schedule
    tables."""
    if name in DATASETS:
        return DATASETS[name]
    fields = {f.name for f in union_fields(name)}
    if "ACK_ID" not in fields:
        raise KeyError(f"{name}: its layout has no ACK_ID: no natural key")
    table = table_name(name)
    return Dataset(
        name=name,
        table=table,
        staging_table=f"{table}_staging",
        natural_key=tuple(k.lower() for k in ("ACK_ID", "FORM_ID", "ROW_ORDER") if k in fields),
        surrogate_key="id",
        aliases=(),
        surrogate_type="bigserial",
    )


def all_datasets() -> dict[str, Dataset]:
    """DATASETS and every other dataset that has a layout."""
    return {**DATASETS, **{name: dataset(name) for name in layout_datasets() if name not in DATASETS}}


@functools.cache
def _layouts() -> dict[str, dict[int, list[Field]]]:
    """Each dataset's fields by form year, in field order: the layout rows grouped once (looking
    each dataset and year up in every row cost 0.4 s of every import process, measured)."""
    grouped: dict[str, dict[int, list[dict[str, str]]]] = {}
    for row in _layout_rows():
        grouped.setdefault(row["dataset"], {}).setdefault(int(row["form_year"]), []).append(row)
    return {
        dataset: {
            year: [
                Field(r["field_name"], r["type"], int(r["size"]) if r["size"] else None)
                for r in sorted(rows, key=lambda r: int(r["field_position"]))
            ]
            for year, rows in by_year.items()
        }
        for dataset, by_year in grouped.items()
    }


def years(dataset: str) -> list[int]:
    return sorted(_layouts().get(dataset, {}))


def fields_for_year(dataset: str, year: int) -> list[Field]:
    return list(_layouts().get(dataset, {}).get(year, []))


@functools.cache
def union_fields(dataset: str) -> tuple[Field, ...]:
    """Every column the dataset ever had, in the order of the newest layout (older-only ones last).

    A field whose type changed over the years (SF_TOT_PARTCP_BOY_CNT was TEXT(8), later NUMERIC)
    takes the later type, so every year's values fit.
    """
    by_name: dict[str, Field] = {}
    order: dict[str, tuple[int, int]] = {}
    for year in years(dataset):
        for position, field in enumerate(fields_for_year(dataset, year)):
            by_name[field.name] = field
            order[field.name] = (-year, position)
    newest = max(years(dataset))
    names = sorted(by_name, key=lambda n: (order[n][0] != -newest, order[n]))
    return tuple(by_name[n] for n in names)


def header_map(dataset: str, header: list[str]) -> tuple[list[str | None], list[str]]:
    """Map a file's header to canonical columns by name.

    Returns the canonical column for each header position (None for an unknown header) and the
    unknown header names, which the importer keeps as JSONB extras and reports.
    """
    known = {f.name for f in union_fields(dataset)}
    columns: list[str | None] = []
    unknown: list[str] = []
    for raw in header:
        name = raw.strip().lstrip("\ufeff").upper()
        if name in known:
            columns.append(name.lower())
        else:
            columns.append(None)
            unknown.append(raw.strip())
    return columns, unknown
