"""The installed package carries its data: a wheel built from the sources holds the XSDs (from
the top-level schemas/ folder), the sample directory and the migrations, so a plain
`pip install .` (the Docker image) works; and it validates with its own copy of the XSDs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).parents[2]

# What a wheel-installed gateway does with its own schemas (run with only the wheel's copy
# of the gateway importable): build a letter and validate it against the compat XSD.
VALIDATE = """
import sys
# Only the extracted wheel: not the source tree an editable install points at.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
from lxml import etree
import gateway
from gateway.client import build_letter, unit
from gateway.envelope import build_package
from gateway.envelope.model import Kind, Profile
from gateway.envelope.schema import SCHEMA_DIR, load_schema
raw = build_package(build_letter(unit("000.00.05.H07"), [unit("000.00.06.H07")], "Thư"))
assert load_schema(Kind.DOCUMENT, Profile.COMPAT).validate(etree.fromstring(raw))
print(gateway.__file__, SCHEMA_DIR)
"""


def test_wheel_contains_schemas_sample_directory_and_migrations(tmp_path: Path) -> None:
    # Built from a copy of what the image copies: a build/ folder left in the checkout by an
    # earlier build could hold files the packaging no longer includes.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "gateway", source / "gateway", ignore=ignore)
    shutil.copytree(ROOT / "schemas", source / "schemas", ignore=ignore)
    shutil.copytree(ROOT / "adapters", source / "adapters", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    schemas = {p.name for p in (ROOT / "schemas").glob("*.xsd")}
    assert len(schemas) == 10
    assert {f"gateway/envelope/schemas/{name}" for name in schemas} <= names
    assert "gateway/directory/data/sample-province.csv" in names
    migrations = {p.name for p in (ROOT / "gateway/db/migrations/versions").glob("0*.py")}
    assert {f"gateway/db/migrations/versions/{m}" for m in migrations} <= names
    assert "gateway/db/migrations/script.py.mako" in names
    assert "gateway/console/templates/base.html" in names  # the console's templates
    assert "adapters/folder.py" in names  # the adapters, registered as entry points
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    registered = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[gateway.adapters]\nfolder = adapters.folder:FolderAdapter" in registered

    installed = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(installed)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    module, schema_dir = done.stdout.split()
    assert module.startswith(str(installed)) and schema_dir.startswith(str(installed))


def test_schemas_is_a_real_folder_at_the_top() -> None:
    folder = ROOT / "schemas"
    assert folder.is_dir() and not folder.is_symlink()
    assert not (ROOT / "gateway" / "envelope" / "schemas").exists()  # one copy, not two


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = find_namespace_packages(str(ROOT), include=["gateway*", "adapters*"])  # data too
    folders = [name for name in found if "__pycache__" not in name]
    assert sorted(listed) == sorted([*folders, "gateway.envelope.schemas"])
