"""The installed package carries its data: a wheel built from the sources holds the XSDs, the
sample directory and the migrations, so a plain `pip install .` (the Docker image) works."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_wheel_contains_schemas_sample_directory_and_migrations(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    schemas = {p.name for p in (ROOT / "gateway" / "envelope" / "schemas").glob("*.xsd")}
    assert len(schemas) == 10
    assert {f"gateway/envelope/schemas/{name}" for name in schemas} <= names
    assert "gateway/directory/data/sample-province.csv" in names
    migrations = {p.name for p in (ROOT / "gateway/db/migrations/versions").glob("0*.py")}
    assert {f"gateway/db/migrations/versions/{m}" for m in migrations} <= names
    assert "gateway/db/migrations/script.py.mako" in names


def test_top_level_schemas_folder_is_the_packaged_one() -> None:
    assert (ROOT / "schemas").resolve() == (ROOT / "gateway" / "envelope" / "schemas").resolve()
