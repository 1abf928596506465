"""Attaching the web UI to the app: pages, static files, HTML error pages, the login redirect."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from kiln.web import pipelines, promote, state_form
from kiln.web.assets import STATIC
from kiln.web.routes import router, templates
from kiln.web.session import LoginNeeded


def _login(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def error_page(request: Request, status: int, title: str, detail: str, hint: str | None) -> HTMLResponse:
    context = {"who": None, "title": title, "detail": detail, "hint": hint, "csrf": ""}
    return templates.TemplateResponse(request, "error.html", context, status_code=status)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(pipelines.router)
    app.include_router(promote.router)
    app.include_router(state_form.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(LoginNeeded, _login)
    app.state.error_page = error_page
