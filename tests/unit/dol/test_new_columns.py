"""The approval of DOL column additions covers exactly the listed columns, in any order."""

from ple.dol.layouts import DATASETS
from ple.dol.new_columns import Addition, additions, as_dicts, fingerprint, from_dicts
from ple.dol.target import Column, LiveTable


def test_the_fingerprint_is_the_exact_list_whatever_its_order():
    a = Addition("dol.form_5500", "new_a", "text")
    b = Addition("dol.form_5500_sf", "new_b", "numeric")
    assert fingerprint([a, b]).sha256 == fingerprint([b, a]).sha256
    assert fingerprint([a, b]).subject == "dol_add_columns"
    assert fingerprint([a]).sha256 != fingerprint([a, b]).sha256
    assert fingerprint([Addition("dol.form_5500", "new_a", "numeric")]).sha256 != fingerprint([a]).sha256
    assert from_dicts(as_dicts([b, a])) == [a, b]


def test_additions_are_typed_from_the_layouts_and_skip_names_that_are_not_plain():
    live = LiveTable("dol.form_5500", {"ack_id": Column("ack_id", "text", True, False, False)}, False, False, "x")
    listed = additions(DATASETS["F_5500"], live, ["NEW_DOL_FIELD_2026", "BAD NAME;", "TOT_PARTCP_BOY_CNT"])
    assert [a.describe() for a in listed] == [
        "dol.form_5500.new_dol_field_2026 text",
        "dol.form_5500.tot_partcp_boy_cnt numeric",
    ]
