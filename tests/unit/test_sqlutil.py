"""Identifiers reach SQL only as plain lower-case names."""

import pytest

from ple.sqlutil import UnsafeIdentifier, check_identifier, split_qualified


@pytest.mark.parametrize("name", ["x\n", "Company", "a b", "a;drop", "", "x" * 64])
def test_a_name_that_is_not_a_plain_identifier_is_refused(name):
    with pytest.raises(UnsafeIdentifier):
        check_identifier(name)


def test_a_qualified_name_with_a_trailing_newline_is_refused():
    with pytest.raises(UnsafeIdentifier):
        split_qualified("archive.hand\n")
