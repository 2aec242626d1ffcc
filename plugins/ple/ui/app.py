"""The console as a FastAPI app, mounted by the api-server under /ple (plugins/ple_console.py).

A mounted app has no authentication of its own: every route depends on Airflow's
`requires_access_dag` (which resolves the user from the UI's session cookie or a bearer token:
401 without one, a redirect to the login page for a browser (ple.ui.login), 403 without read
access to the DAG the page is about) and names the user. Data
Docs are files, served through a checked route rather than a StaticFiles mount, which router
dependencies would not protect. Every route is a GET and reads in a read-only transaction.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable
from pathlib import Path

import psycopg
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

from ple.ui import compat_page, data_docs, html, login, pages

log = logging.getLogger(__name__)

app = FastAPI(title="PLE console", docs_url=None, redoc_url=None, openapi_url=None)
login.install(app)

# Nothing a page loads may leave the machine: Data Docs are served rewritten to vendored assets
# (ple.ui.data_docs), and the browser is told to fetch nothing from another host all the same.
LOCAL_ONLY = {"Content-Security-Policy": "default-src 'self' data: 'unsafe-inline'; frame-ancestors 'self'"}


def _read(render: Callable[[psycopg.Connection], str]) -> str:
    from ple.db import connect, transaction

    try:
        with connect() as conn, transaction(conn, read_only=True, statement_timeout="60s"):
            return render(conn)
    except psycopg.Error as exc:
        log.warning("console: the target database did not answer: %s", exc)
        raise HTTPException(503, f"the target database (connection ctb_postgres) did not answer: {exc}") from exc


def _page(title: str, route: str, user, render: Callable[[psycopg.Connection], str]) -> HTMLResponse:
    return HTMLResponse(html.page(title, route, user.get_name(), _read(render)), headers=LOCAL_ONLY)


@app.get("/", dependencies=[Depends(requires_access_dag("GET", param_dag_id="ctb_reorganization"))])
def index(user: GetUserDep) -> HTMLResponse:
    links = "".join(f"<li><a href='{route}'>{label}</a></li>" for route, label in html.NAV)
    return HTMLResponse(html.page("PLE console", "", user.get_name(), f"<ul>{links}</ul>"), headers=LOCAL_ONLY)


@app.get("/reorganization", dependencies=[Depends(requires_access_dag("GET", param_dag_id="ctb_reorganization"))])
def reorganization(user: GetUserDep, run_id: str | None = None) -> HTMLResponse:
    return _page("CTB reorganization", "reorganization", user, lambda conn: pages.reorganization(conn, run_id))


@app.get("/data-quality", dependencies=[Depends(requires_access_dag("GET", param_dag_id="ctb_nightly_audit"))])
def data_quality(user: GetUserDep) -> HTMLResponse:
    return _page("Data quality", "data-quality", user, pages.data_quality)


@app.get("/dol-imports", dependencies=[Depends(requires_access_dag("GET", param_dag_id="dol_staging_import"))])
def dol_imports(user: GetUserDep) -> HTMLResponse:
    return _page("DOL imports", "dol-imports", user, pages.dol_imports)


@app.get("/compatibility", dependencies=[Depends(requires_access_dag("GET", param_dag_id="ctb_contract"))])
def compatibility(user: GetUserDep) -> HTMLResponse:
    return _page("Old names (compatibility objects)", "compatibility", user, compat_page.compatibility)


@app.get(
    "/data-docs/{path:path}", dependencies=[Depends(requires_access_dag("GET", param_dag_id="ctb_reorganization"))]
)
def data_docs_page(path: str, user: GetUserDep):
    from ple.expectations import data_docs_dir

    if path.startswith(data_docs.VENDOR_ROUTE):
        asset = data_docs.vendored(path)
        if asset is None:
            raise HTTPException(404, "not found")
        return FileResponse(
            asset, media_type=mimetypes.guess_type(asset.name)[0] or "application/octet-stream", headers=LOCAL_ONLY
        )
    root = data_docs_dir().resolve()
    wanted = (root / (path or "index.html")).resolve()
    if not wanted.is_relative_to(root):
        raise HTTPException(404, "not found")
    if not wanted.is_file():
        if wanted == root / "index.html":
            body = (
                "<p class='muted'>no validation has been stored yet: Data Docs appear after the nightly audit "
                "or a DOL import ran</p>"
            )
            return HTMLResponse(
                html.page("Data Docs", "data-docs/index.html", user.get_name(), body), headers=LOCAL_ONLY
            )
        raise HTTPException(404, "not found")
    media_type = mimetypes.guess_type(wanted.name)[0] or "application/octet-stream"
    if wanted.suffix in (".html", ".css"):
        text = data_docs.localize(wanted.read_text(encoding="utf-8"), str(wanted.relative_to(root)))
        return Response(text, media_type=media_type, headers=LOCAL_ONLY)
    return FileResponse(Path(wanted), media_type=media_type, headers=LOCAL_ONLY)
