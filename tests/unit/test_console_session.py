"""The console's session cookie: what it holds comes back only from a cookie this gateway's
key wrote, never from one that was changed, made under another key, or too old."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from unittest import mock

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.fernet import Fernet

from gateway.console.session import COOKIE, LIFETIME, Session, Sessions
from gateway.console.text import WORDS, when


def written(sessions: Sessions, session: Session) -> str:
    response = web.Response()
    sessions.write(make_mocked_request("GET", "/"), response, session)
    return response.cookies[COOKIE].value


def read(sessions: Sessions, value: str) -> Session | None:
    return sessions.read(make_mocked_request("GET", "/", headers={"Cookie": f"{COOKIE}={value}"}))


def test_a_session_comes_back_only_from_its_own_key(tmp_path: Path) -> None:
    sessions = Sessions(tmp_path / "console.key")
    session = Session.fresh("en").signed_in("gw_secret_token")
    value = written(sessions, session)
    assert "gw_secret_token" not in value
    assert read(sessions, value) == session
    assert read(Sessions(tmp_path / "console.key"), value) == session  # the key is kept
    assert read(Sessions(tmp_path / "other.key"), value) is None
    tampered = value[:-6] + ("A" if value[-6] != "A" else "B") + value[-5:]
    assert read(sessions, tampered) is None
    assert (tmp_path / "console.key").stat().st_mode & 0o777 == 0o600


def test_a_session_expires(tmp_path: Path) -> None:
    sessions = Sessions(tmp_path / "console.key")
    with mock.patch("time.time", return_value=1_000_000.0):
        value = written(sessions, Session.fresh())
    with mock.patch("time.time", return_value=1_000_000.0 + LIFETIME + 61):
        assert read(sessions, value) is None


def test_signing_in_changes_the_csrf_secret() -> None:
    before = Session.fresh()
    after = before.signed_in("t")
    assert before.csrf != after.csrf and after.check_csrf(after.csrf)
    assert not after.check_csrf(before.csrf) and not after.check_csrf(None)


def test_a_forged_csrf_field_is_refused_whatever_it_holds() -> None:
    session = Session.fresh("vi")
    assert session.check_csrf(session.csrf)
    for forged in ("", session.csrf + "x", "\u00f1\u2603" + session.csrf, None, ["a"]):
        assert not session.check_csrf(forged)


def test_words_are_nfc_in_both_languages_and_times_show_utc_on_hover() -> None:
    for vi, en in WORDS.values():
        assert vi == unicodedata.normalize("NFC", vi) and en
    from datetime import UTC, datetime

    shown = str(when(datetime(2026, 12, 5, 2, 30, tzinfo=UTC)))
    assert "05/12/2026 09:30:00" in shown and 'title="2026-12-05 02:30:00 UTC"' in shown


def test_a_fernet_key_is_what_the_key_file_holds(tmp_path: Path) -> None:
    Sessions(tmp_path / "k")
    Fernet((tmp_path / "k").read_bytes())  # a valid key, usable by every process sharing it
