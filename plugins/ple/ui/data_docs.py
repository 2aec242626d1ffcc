"""Great Expectations' Data Docs, served so that they work without the internet.

GX writes its pages with Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega linked from
public CDNs and its logo from a cloud bucket: offline such a page renders unstyled and its
results list stays empty (bootstrap-table fills it). The console serves every page rewritten
to the copies in `vendor/` (the exact releases GX names, from the npm registry; see
vendor/README.md), the logo to the site's own `static/images/`, and every other external link
to plain text, so a served page names no other host. The rewrite happens when a page is served,
not when GX writes it: sites built by any run, before or after this module, are served alike.
"""

from __future__ import annotations

import re
from pathlib import Path

VENDOR_DIR = Path(__file__).parent / "vendor"
# Served under the Data Docs route at this path, which GX never writes (its folders are
# index.html, static/, expectations/, validations/).
VENDOR_ROUTE = "_vendor/"

# What GX 1.x links from CDNs -> the vendored copy (None: not loaded at all). Vega renders
# only profiling charts, which these suites never produce; bootstrap-prefers-dark is a theme.
ASSETS: dict[str, str | None] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/popper.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table/bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": None,
    "https://cdn.jsdelivr.net/npm/vega-lite@5": None,
    "https://cdn.jsdelivr.net/npm/vega-embed@6": None,
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": None,
}

_TAG = re.compile(r"<(script|link)\b[^>]*?(?:src|href)=\"(https?://[^\"]+)\"[^>]*>(?:\s*</script>)?", re.IGNORECASE)
_LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/([A-Za-z0-9_.-]+)[^\"')\s]*")
# GX counts a validation page's depth from its suite's name and misses a level for ours: its
# favicon link ends one folder short of the site root (a 404 in every validation page).
_SITE_STATIC = re.compile(r"\b(src|href)=\"(?:\.\./)*static/")
_SRI = re.compile(r"\s(?:integrity|crossorigin)=\"[^\"]*\"")
_EXTERNAL_HREF = re.compile(r"(<a\b[^>]*?)\s+href=\"(?:https?:)?//[^\"]*\"", re.IGNORECASE)
_EXTERNAL_SRC = re.compile(r"(<(?:img|iframe|source)\b[^>]*?)\s+src=\"(?:https?:)?//[^\"]*\"", re.IGNORECASE)
# Any attribute or CSS url() that still names another host after the rewrite.
EXTERNAL_REFERENCE = re.compile(r"(?:\b(?:src|href|action|poster)=[\"']?|url\(\s*[\"']?)(?:https?:)?//", re.IGNORECASE)


def _logo(root: str, match: re.Match) -> str:
    """The bucket's images that GX also copies into the site; its dark logo is not one of them."""
    name = match.group(1)
    return f"{root}static/images/{name if name in ('logo-long.png', 'short-logo.png') else 'logo-long.png'}"


def localize(text: str, path: str) -> str:
    """A Data Docs page or stylesheet at `path` (relative to the site root), naming no other host."""
    root = "../" * path.count("/")

    def tag(match: re.Match) -> str:
        url = match.group(2)
        if url not in ASSETS:
            return match.group(0)  # left to the checks below: an unknown asset is not loaded
        local = ASSETS[url]
        if local is None:
            return ""
        return _SRI.sub("", match.group(0)).replace(url, f"{root}{VENDOR_ROUTE}{local}")

    text = _TAG.sub(tag, text)
    text = _LOGO.sub(lambda m: _logo(root, m), text)
    text = _SITE_STATIC.sub(lambda m: f'{m.group(1)}="{root}static/', text)
    text = _EXTERNAL_HREF.sub(r"\1", text)
    text = _EXTERNAL_SRC.sub(r"\1", text)
    # An asset GX may link in a later release and this table does not know yet: dropped, the
    # page works without it rather than reaching out.
    return _TAG.sub("", text)


def vendored(path: str) -> Path | None:
    """The vendored file a `_vendor/...` path names, or None."""
    root = VENDOR_DIR.resolve()
    wanted = (root / path.removeprefix(VENDOR_ROUTE)).resolve()
    return wanted if wanted.is_relative_to(root) and wanted.is_file() else None
