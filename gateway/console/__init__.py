"""The operator and auditor console: server-rendered pages at ``/`` over the same service
functions as the HTTP API (docs/console.md)."""

from __future__ import annotations

from aiohttp import web

from gateway.config import Settings
from gateway.console.forms import VERIFY, VerifyRun, stop_verify
from gateway.console.forms import routes as form_routes
from gateway.console.pages import routes as page_routes
from gateway.console.session import Sessions
from gateway.console.web import SESSIONS, TEMPLATES, environment

SESSION_KEY_FILE = "console-session.key"


def mount(app: web.Application, settings: Settings) -> None:
    """Serve the console on ``app``, its session key in the gateway's home."""
    app[SESSIONS] = Sessions(settings.home / SESSION_KEY_FILE)
    app[TEMPLATES] = environment()
    app[VERIFY] = VerifyRun()
    app.on_cleanup.append(stop_verify)
    app.router.add_routes(page_routes)
    app.router.add_routes(form_routes)
