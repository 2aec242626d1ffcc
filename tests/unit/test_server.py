"""The supported PostgreSQL range, judged on the `server_version_num` values servers report."""

import pytest

from ple.errors import PermanentError
from ple.server import NEWEST_SUPPORTED_MAJOR, OLDEST_SUPPORTED_MAJOR, UnsupportedServer, major_of, refuse_unsupported


def test_the_supported_range_is_neons():
    assert (OLDEST_SUPPORTED_MAJOR, NEWEST_SUPPORTED_MAJOR) == (14, 18)


@pytest.mark.parametrize(
    ("server_version_num", "major"),
    [(140000, 14), (140019, 14), (150018, 15), (160004, 16), (170006, 17), (180000, 18), (180006, 18)],
)
def test_supported_versions_pass_and_return_their_major(server_version_num, major):
    assert major_of(server_version_num) == major
    assert refuse_unsupported(server_version_num) == major


@pytest.mark.parametrize(
    ("server_version_num", "shown", "major"),
    [(90624, "9.6.24", 9), (130022, "13.22", 13), (139999, "13.99", 13), (190000, "19devel", 19)],
)
def test_unsupported_versions_are_refused_naming_the_version_and_the_fix(server_version_num, shown, major):
    with pytest.raises(UnsupportedServer) as refused:
        refuse_unsupported(server_version_num, shown)
    message = str(refused.value)
    assert f"PostgreSQL {shown} (major {major})" in message
    assert "supports PostgreSQL 14 to 18" in message
    assert "ctb_postgres" in message
    assert isinstance(refused.value, PermanentError)  # a retry cannot fix it: tasks fail at once
