"""Names a package offers but imports on first use, so that importing the package does not load
the heavy libraries behind them (a database driver, a broker client)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def on_first_use(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` that imports each of ``names`` from its module (name
    → module) when it is first asked for."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
