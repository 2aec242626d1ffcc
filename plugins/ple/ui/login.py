"""A console page opened logged out leads to the login page, as Airflow's own pages do.

Airflow's `requires_access_dag` answers a request without a session 401 `{"detail":"Not
authenticated"}`: right for an API client, a dead end for a person who followed a console link
or a bookmark. A request that accepts HTML (a browser's navigation, the Airflow UI's frame) is
sent to the auth manager's login page instead, with the page as `next`; every other request
keeps the 401.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def login_instead_of_401(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 401 and wants_html(request):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        return await http_exception_handler(request, exc)
