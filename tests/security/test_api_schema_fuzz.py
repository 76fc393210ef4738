"""Property-based API testing: schemathesis generates requests from the served OpenAPI
document (`/v1/openapi.json`) for every operation, valid and not (its coverage phase adds the
edge cases: malformed content types, missing and extra parameters), and sends them to a
running embedded `gateway serve` with an operator's token and with a unit's. No answer may be
a 5xx, and every answer must match the document: its status code, content type and body
schema."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from gateway.bench.run import wait_ready

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
EXAMPLES = 6  # per operation and token: about 20 s a run


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def _gateway(folder: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=folder, env=_clean_env(), capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


async def test_every_operation_answers_as_documented(tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is one of the test extras"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            cwd=tmp_path, env=_clean_env() | {"GATEWAY_API_RATE": "100000",
                                              "GATEWAY_API_BURST": "100000",
                                              # an empty inbox's long polls answer at once
                                              "GATEWAY_API_LONG_POLL": "0"},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        await wait_ready(url, process, tmp_path / "serve.log")  # type: ignore[arg-type]
        tokens = {
            "operator": _gateway(
                tmp_path, "tokens", "issue", "--unit", "000.00.00.H07", "--role", "operator"
            ),
            "unit": _gateway(tmp_path, "tokens", "issue", "--unit", "000.00.01.H07"),
        }
        for who, token in tokens.items():
            run = subprocess.run(
                [st, "--no-color", "run", f"{url}/v1/openapi.json", "--checks", CHECKS,
                 "--max-examples", str(EXAMPLES), "--phases", "examples,coverage,fuzzing",
                 "--header", f"Authorization: Bearer {token}"],
                cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert run.returncode == 0, f"as {who}:\n{run.stdout[-6000:]}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
