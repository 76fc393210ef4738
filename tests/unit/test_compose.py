"""docker-compose.yml and the Dockerfile (docker does not run here): a sound compose structure,
its clustered profile (three RabbitMQ nodes, two gateways), and every GATEWAY_* variable they
set, or the production page (docs/deploy.md) names, is one the code reads."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

import click
import pytest
import yaml

from gateway.bus.address import broker_hosts
from gateway.cli import main
from gateway.config import Secret, Settings, load_settings

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "docs" / "deploy.md"
PRODUCTION_HEADING = "# Running in production (docker compose)"
VARIABLE = re.compile(r"\bGATEWAY_[A-Z0-9_]*[A-Z0-9]\b")
# Read by load_settings itself rather than by a field: the TOML file's path.
CONFIG_FILE_VARIABLE = "GATEWAY_CONFIG"


def setting_variables() -> dict[str, Any]:
    """GATEWAY_<FIELD> and GATEWAY_<SECTION>_<FIELD>, walked as gateway.config builds them,
    each with its type."""
    found: dict[str, Any] = {}

    def walk(cls: type[Any], prefix: str) -> None:
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            var = f"{prefix}{f.name.upper()}"
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{var}_")
            else:
                found[var] = hints[f.name]

    walk(Settings, "GATEWAY_")
    return found


def cli_variables() -> set[str]:
    """Variables the commands read as option defaults (GATEWAY_URL, GATEWAY_TOKEN, ...)."""
    found: set[str] = set()

    def walk(command: click.Command) -> None:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            found.update([envvar] if isinstance(envvar, str) else envvar or [])
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)

    walk(main)
    return found


def readable() -> set[str]:
    return set(setting_variables()) | {CONFIG_FILE_VARIABLE} | cli_variables()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    found = compose["services"][name]
    assert isinstance(found, dict)
    return found


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):  # the KEY=value form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def production_section() -> str:
    """docs/deploy.md, the production page, whole."""
    text = DEPLOY.read_text(encoding="utf-8")
    assert text.startswith(PRODUCTION_HEADING), (
        f"docs/deploy.md does not open with {PRODUCTION_HEADING!r}"
    )
    return text


SAMPLE_VALUES = {bool: "true", int: "7", str: "x", tuple[int, ...]: "3,4"}
# Settings that take one of a few words.
SAMPLE_WORDS = {"GATEWAY_LOG_FORMAT": "json", "GATEWAY_LOG_LEVEL": "debug"}


@pytest.mark.parametrize("variable", sorted(setting_variables()))
def test_each_derived_variable_is_read_by_load_settings(variable: str) -> None:
    kind = setting_variables()[variable]
    value = SAMPLE_WORDS.get(variable) or SAMPLE_VALUES.get(
        kind, "/srv/x" if "Path" in str(kind) else "amqp://u@h/"
    )
    default, changed = load_settings({}), load_settings({variable: value})
    assert changed != default, f"{variable}={value} changed no setting"
    if kind == Secret | None:
        assert value in {str(getattr(changed, f.name)) for f in dataclasses.fields(Settings)}


def test_the_derived_set_holds_the_documented_variables() -> None:
    names = setting_variables()
    for documented in ("GATEWAY_AMQP_URL", "GATEWAY_DATABASE_URL", "GATEWAY_BUS_TTL"):
        assert documented in names
    assert {"GATEWAY_URL", "GATEWAY_TOKEN"} <= cli_variables()


NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
CLUSTERED_GATEWAYS = ("gateway-1", "gateway-2")


def profiled(compose: dict[str, Any], profile: str | None) -> set[str]:
    """The services of ``profile``; None: those that always run (no profile)."""
    return {
        name
        for name, svc in compose["services"].items()
        if (profile in svc.get("profiles", [])) or (profile is None and not svc.get("profiles"))
    }


def test_compose_has_the_three_services_with_an_image_or_a_build(
    compose: dict[str, Any],
) -> None:
    assert profiled(compose, None) == {"rabbitmq", "postgres", "gateway"}
    assert profiled(compose, "clustered") == {*NODES, *CLUSTERED_GATEWAYS}
    for name, svc in compose["services"].items():
        assert "image" in svc or "build" in svc, name
    assert service(compose, "rabbitmq")["image"] == "rabbitmq:3-management"
    assert service(compose, "postgres")["image"] == "postgres:16"
    assert service(compose, "gateway")["build"] == "."


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        check = svc.get("healthcheck")
        assert isinstance(check, dict), f"{name} has no healthcheck"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), name
        assert check.get("interval") and check.get("retries"), name
    gateway_check = " ".join(service(compose, "gateway")["healthcheck"]["test"])
    assert "/readyz" in gateway_check


def test_the_gateway_waits_for_healthy_broker_and_database(compose: dict[str, Any]) -> None:
    depends = service(compose, "gateway")["depends_on"]
    assert depends == {
        "rabbitmq": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }


def test_the_broker_runs_with_a_raised_open_file_limit(compose: dict[str, Any]) -> None:
    for name in ("rabbitmq", *NODES):
        nofile = service(compose, name)["ulimits"]["nofile"]
        assert nofile["soft"] >= 65536 and nofile["hard"] >= nofile["soft"], name


def test_the_clustered_nodes_find_each_other_with_one_cookie(compose: dict[str, Any]) -> None:
    """Classic-config peer discovery naming rabbit@<hostname> of each node, one Erlang
    cookie, each node on its own volume."""
    cookies = {environment(service(compose, n))["RABBITMQ_ERLANG_COOKIE"] for n in NODES}
    assert len(cookies) == 1
    targets = set()
    for name in NODES:
        node = service(compose, name)
        assert node["hostname"] == name
        (config,) = node["configs"]
        targets.add((config["source"], config["target"]))
    (source, target) = targets.pop()
    assert target.startswith("/etc/rabbitmq/conf.d/") and not targets
    peers = compose["configs"][source]["content"]
    assert "cluster_formation.peer_discovery_backend = classic_config" in peers
    for i, name in enumerate(NODES, 1):
        assert f"cluster_formation.classic_config.nodes.{i} = rabbit@{name}" in peers


def test_the_clustered_gateways_name_every_node_and_share_one_database(
    compose: dict[str, Any],
) -> None:
    broker = environment(service(compose, "rabbitmq-1"))
    database = environment(service(compose, "gateway"))["GATEWAY_DATABASE_URL"]
    for name in CLUSTERED_GATEWAYS:
        env = environment(service(compose, name))
        hosts = broker_hosts(env["GATEWAY_AMQP_URL"])
        assert [(h.host, h.port) for h in hosts] == [(n, 5672) for n in NODES]
        for host in hosts:
            parts = urlsplit(host.url)
            assert (parts.username, parts.password) == (
                broker["RABBITMQ_DEFAULT_USER"],
                broker["RABBITMQ_DEFAULT_PASS"],
            )
        assert env["GATEWAY_DATABASE_URL"] == database
    first = service(compose, "gateway-1")["depends_on"]
    assert first == {n: {"condition": "service_healthy"} for n in (*NODES, "postgres")}
    # the second starts once the first has made the keys and migrated the database
    assert service(compose, "gateway-2")["depends_on"] == {
        "gateway-1": {"condition": "service_healthy"}
    }


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    used: dict[str, set[str]] = {}
    for name, svc in compose["services"].items():
        for mount in svc.get("volumes", []):
            source, target = str(mount).split(":")[:2]
            if not source.startswith((".", "/", "~", "$")):
                used.setdefault(name, set()).add(source)
                assert target.startswith("/"), mount
    declared = set(compose.get("volumes") or {})
    assert set().union(*used.values()) == declared
    assert used == {
        "rabbitmq": {"rabbitmq-data"},
        "postgres": {"postgres-data"},
        "gateway": {"gateway-var", "gateway-keys"},
        **{n: {f"{n}-data"} for n in NODES},
        # one set of keys and one claim store for the gateways of one database
        **{g: {"gateway-var", "gateway-keys"} for g in CLUSTERED_GATEWAYS},
    }


def test_every_gateway_variable_in_compose_is_read_by_the_code(compose: dict[str, Any]) -> None:
    known = readable()
    for name, svc in compose["services"].items():
        for variable in environment(svc):
            if variable.startswith("GATEWAY_"):
                assert variable in known, f"{name} sets {variable}, which nothing reads"
    interpolated = set(VARIABLE.findall(COMPOSE.read_text(encoding="utf-8")))
    assert interpolated <= known, f"unknown: {sorted(interpolated - known)}"


def test_the_gateway_is_configured_for_rabbitmq_and_postgresql(compose: dict[str, Any]) -> None:
    env = environment(service(compose, "gateway"))
    assert {"GATEWAY_AMQP_URL", "GATEWAY_DATABASE_URL", "GATEWAY_KEYS", "GATEWAY_HOME"} <= set(env)
    assert "GATEWAY_DIRECTORY" in env
    broker = environment(service(compose, "rabbitmq"))
    amqp = urlsplit(env["GATEWAY_AMQP_URL"])
    assert (amqp.scheme, amqp.hostname, amqp.port) == ("amqp", "rabbitmq", 5672)
    assert (amqp.username, amqp.password) == (
        broker["RABBITMQ_DEFAULT_USER"],
        broker["RABBITMQ_DEFAULT_PASS"],
    )
    db = environment(service(compose, "postgres"))
    url = env["GATEWAY_DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://")
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("postgres", 5432, f"/{db['POSTGRES_DB']}")
    assert (parts.username, parts.password) == (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"])


def test_keys_and_var_dir_live_on_the_gateway_volumes(compose: dict[str, Any]) -> None:
    gw = service(compose, "gateway")
    env = environment(gw)
    targets = {str(m).split(":")[0]: str(m).split(":")[1] for m in gw["volumes"]}
    assert env["GATEWAY_KEYS"] == targets["gateway-keys"]
    assert env["GATEWAY_HOME"] == targets["gateway-var"]


def test_dockerfile_installs_migrates_and_serves_on_the_published_port(
    compose: dict[str, Any],
) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    source = re.search(r"^RUN pip install (\S+)", text, re.M)
    assert source, "the Dockerfile does not pip install the project"
    for part in ("pyproject.toml", "gateway", "schemas"):
        assert re.search(rf"^COPY .*{part}.* {re.escape(source[1])}/", text, re.M), part
    cmd = next(line for line in text.splitlines() if line.startswith("CMD "))
    assert cmd.index("gateway db upgrade") < cmd.index("gateway serve --host 0.0.0.0 --port 8080")
    assert "exec gateway serve" in cmd  # the server gets docker stop's SIGTERM
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    published = [str(p).rsplit(":", 1)[1] for p in service(compose, "gateway")["ports"]]
    assert published == ["8080"]
    unknown = set(VARIABLE.findall(text)) - readable()
    assert not unknown, f"the Dockerfile names variables nothing reads: {sorted(unknown)}"


def test_production_page_names_only_variables_the_code_reads(
    compose: dict[str, Any],
) -> None:
    named = set(VARIABLE.findall(production_section()))
    assert named, "docs/deploy.md names no GATEWAY_* variable"
    unknown = named - readable()
    assert not unknown, f"docs/deploy.md names variables nothing reads: {sorted(unknown)}"
    set_by_compose = {
        v for svc in compose["services"].values() for v in environment(svc) if "GATEWAY_" in v
    }
    assert set_by_compose <= named, f"undocumented: {sorted(set_by_compose - named)}"
