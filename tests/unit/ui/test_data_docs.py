"""Data Docs served offline: every asset the installed Great Expectations links from a CDN is
vendored (or knowingly left out), and a served page names no other host."""

import re
from pathlib import Path

import great_expectations

from ple.ui import data_docs

TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
LOADED = re.compile(r"<(?:script|link)\b[^>]*?(?:src|href)=\"(https?://[^\"]+)\"", re.IGNORECASE)


def test_every_cdn_asset_of_the_installed_gx_is_known_and_vendored():
    linked = {url for template in TEMPLATES.glob("*.j2") for url in LOADED.findall(template.read_text())}
    assert linked, "GX's templates moved: the test no longer sees what a page loads"
    assert linked <= set(data_docs.ASSETS), sorted(linked - set(data_docs.ASSETS))
    for url, local in data_docs.ASSETS.items():
        assert local is None or data_docs.vendored(data_docs.VENDOR_ROUTE + local), url


def test_a_page_is_rewritten_to_local_assets_and_names_no_other_host():
    page = (
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>'
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" '
        'integrity="sha384-x" crossorigin="anonymous"></script>'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>'
        '<script src="https://cdn.example.org/new-lib.js"></script>'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&id=2"/>'
        "<style>.x{background:url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png')}</style>"
        '<a href="https://greatexpectations.io">Great Expectations</a><a href="../index.html">Home</a>'
        '<link rel="shortcut icon" href="../static/images/favicon.ico">'
    )
    served = data_docs.localize(page, "expectations/suite/x.html")
    assert data_docs.EXTERNAL_REFERENCE.search(served) is None, served
    assert 'href="../../_vendor/bootstrap/bootstrap.min.css"' in served
    assert '<script src="../../_vendor/popper.js/popper.min.js"></script>' in served  # no SRI left to fail
    assert "vega" not in served and "new-lib" not in served
    assert 'src="../../static/images/logo-long.png"' in served
    assert "url('../../static/images/logo-long.png')" in served
    assert 'href="../../static/images/favicon.ico"' in served  # GX's link one level short, corrected
    assert "<a>Great Expectations</a>" in served and '<a href="../index.html">Home</a>' in served


def test_vendored_paths_stay_inside_the_vendor_folder():
    assert data_docs.vendored("_vendor/jquery/jquery.min.js")
    assert data_docs.vendored("_vendor/../data_docs.py") is None
    assert data_docs.vendored("_vendor/jquery/missing.js") is None
