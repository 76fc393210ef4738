"""A browser's view of the console without a browser: an aiohttp session with a cookie jar,
which reads the CSRF secret from the pages it gets and posts forms with it."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Console:
    def __init__(self, url: str) -> None:
        self.url = url
        # unsafe: keep cookies for an IP address (127.0.0.1), as browsers do
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def __aenter__(self) -> Console:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def get(self, path: str, **options: Any) -> tuple[int, str]:
        async with self.session.get(self.url + path, **options) as response:
            text = await response.text()
        if found := CSRF.search(text):
            self.csrf = found.group(1)
        return response.status, text

    async def post(
        self, path: str, form: dict[str, Any] | list[tuple[str, str]], csrf: bool = True
    ) -> tuple[int, str]:
        fields = list(form.items()) if isinstance(form, dict) else list(form)
        if csrf:
            fields.append(("csrf", self.csrf))
        async with self.session.post(self.url + path, data=fields) as response:
            text = await response.text()
        if found := CSRF.search(text):
            self.csrf = found.group(1)
        return response.status, text

    async def sign_in(self, token: str) -> tuple[int, str]:
        await self.get("/login")
        return await self.post("/login", {"token": token})

    def cookie(self) -> Any:
        return next(c for c in self.session.cookie_jar if c.key == "gw_console")
