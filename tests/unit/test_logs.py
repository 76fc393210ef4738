"""Log lines: text or JSON (GATEWAY_LOG_FORMAT), a level (GATEWAY_LOG_LEVEL), and the id of
the HTTP request on every line logged while handling it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from gateway.config import LogSettings, load_settings
from gateway.errors import ConfigError
from gateway.logs import Repeats, configure_logging, request_id


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_request_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogSettings(format="json", level="info"))
    log = logging.getLogger("gateway.test")
    token = request_id.set("req-42")
    try:
        log.warning("a copy for %s failed", "000.00.05.H07")
    finally:
        request_id.reset(token)
    log.debug("not shown at info")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("outside a request")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "gateway.test"
    assert lines[0]["message"] == "a copy for 000.00.05.H07 failed"
    assert lines[0]["request_id"] == "req-42" and lines[0]["time"].endswith("+00:00")
    assert "request_id" not in lines[1] and "ValueError: boom" in lines[1]["exception"]


def test_text_lines_name_the_request_and_the_level_is_set(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogSettings(format="text", level="warning"))
    token = request_id.set("req-7")
    try:
        logging.getLogger("gateway.x").warning("slow")
        logging.getLogger("gateway.x").info("hidden")
    finally:
        request_id.reset(token)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("WARNING gateway.x [req-7]: slow")


@pytest.mark.parametrize(("name", "value"), [("FORMAT", "xml"), ("LEVEL", "loud")])
def test_a_bad_log_setting_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"GATEWAY_LOG_{name}"):
        load_settings({f"GATEWAY_LOG_{name}": value})


def test_the_broker_clients_repeats_are_one_line_per_minute() -> None:
    now = [0.0]
    repeats = Repeats(clock=lambda: now[0])

    def record(name: str, msg: str = "Callback %r error: %s: %s") -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, ("cb", "E", "x"), None)

    channel_errors = [repeats.filter(record("aio_pika.tools")) for _ in range(815)]
    assert channel_errors.count(True) == 1
    assert all(repeats.filter(record("gateway.bus.amqp")) for _ in range(3))  # ours: all kept
    assert repeats.filter(record("aiormq.connection", "other failure %s %s %s"))
    now[0] = 61.0
    later = record("aio_pika.tools")
    assert repeats.filter(later)
    assert "(and 814 more like it in 60 s)" in later.getMessage()
