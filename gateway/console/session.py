"""The console's session: an encrypted, authenticated cookie (Fernet, under a key kept in the
gateway's home) holding the caller's token, a CSRF secret and the chosen language. The token
is checked again on every request, so revoking it ends its sessions (within the token cache's
seconds, as for the API)."""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken

from gateway.service.keyfile import read_or_make

COOKIE = "gw_console"
LIFETIME = 8 * 3600  # seconds a session lasts after its last page (each page renews it)
LANGUAGES = ("vi", "en")


@dataclass(frozen=True)
class Session:
    """What the cookie holds: the token (None before sign-in), the CSRF secret every form
    repeats, and the language."""

    csrf: str
    token: str | None = None
    lang: str = "vi"

    @classmethod
    def fresh(cls, lang: str = "vi") -> Session:
        return cls(secrets.token_urlsafe(24), None, lang)

    def signed_in(self, token: str) -> Session:
        # a new CSRF secret at sign-in: a secret seen before it is worth nothing after
        return Session(secrets.token_urlsafe(24), token, self.lang)

    def speaking(self, lang: str) -> Session:
        return replace(self, lang=lang if lang in LANGUAGES else "vi")

    def check_csrf(self, sent: object) -> bool:
        # as bytes: compare_digest refuses str with non-ASCII characters (a forged form's)
        return isinstance(sent, str) and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """Reads and writes the session cookie."""

    def __init__(self, key_file: Path) -> None:
        key = read_or_make(key_file, Fernet.generate_key, "the console's session key")
        self.fernet = Fernet(key.strip())

    def read(self, request: web.Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = json.loads(self.fernet.decrypt(raw.encode(), ttl=LIFETIME))
            lang = data.get("lang") if data.get("lang") in LANGUAGES else "vi"
            return Session(str(data["csrf"]), data.get("token"), lang)
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None

    def write(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        data = {"csrf": session.csrf, "token": session.token, "lang": session.lang}
        response.set_cookie(
            COOKIE,
            self.fernet.encrypt(json.dumps(data).encode()).decode(),
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
            max_age=LIFETIME,
        )

    @staticmethod
    def clear(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/")
