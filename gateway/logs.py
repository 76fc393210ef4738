"""The gateway's log lines: plain text or JSON lines (``GATEWAY_LOG_FORMAT``), at a level
(``GATEWAY_LOG_LEVEL``), each line of an HTTP request carrying that request's id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.config import LogSettings

# The id of the HTTP request being handled, on every line logged while handling it.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "gateway_request_id", default=None
)

# aiohttp's access log line, ending with the request's id (the response header).
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs "%{User-Agent}i" request=%{X-Request-Id}o'
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s"


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid
        record.request = f" [{rid}]" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the
    exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            line["request_id"] = rid
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


# Loggers of the broker client that repeat one failure per channel.
BROKER_LOGGERS = ("aio_pika", "aiormq")


class Repeats(logging.Filter):
    """Lets the first record of each kind (logger, level, message template) of the loggers
    named ``prefixes`` through and drops the ones like it for ``window`` seconds; the next one
    through says how many were dropped.

    For the broker client's libraries: when the broker restarts, they log the same error once
    per channel (hundreds of lines saying one thing)."""

    def __init__(
        self,
        prefixes: tuple[str, ...] = BROKER_LOGGERS,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, int, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, record.msg)
        now = self.clock()
        first, dropped = self._seen.get(key, (-self.window, 0))
        if now - first < self.window:
            self._seen[key] = (first, dropped + 1)
            return False
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} (and {dropped} more like it in {self.window:g} s)"
        return True


def configure_logging(settings: LogSettings) -> None:
    """Send the process's log to standard error in the configured format and level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    handler.addFilter(Repeats())
    handler.setFormatter(
        JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
