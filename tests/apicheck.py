"""Every answer an end-to-end test receives from a gateway, checked against the OpenAPI
document the gateway serves.

The ``api_responses`` fixture adds a client middleware to each aiohttp session made during the
test (the tests' own, GatewayClient's, the CLI's) and records each answer from a gateway the
test watches (``api_responses.watch(url)``: the test stack does it, and so do the tests that
start ``gateway serve``). When the test ends it checks each one: its path and method are an
operation of the document (else it must be a problem), its status is one of the operation's
answers (or ``default``), its content type is one that answer names, its JSON or text body
validates against that schema (JSON Schema 2020-12, formats included) and its required headers
are there. A failure names the route, the status and what was wrong.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.api.openapi import openapi_document
from gateway.errors import CODES

BASE = "urn:gateway:openapi"
JSON_TYPES = ("application/json", "application/problem+json")


def served_document() -> dict[str, Any]:
    """The document as the gateway serves it (GET /v1/openapi.json answers exactly this; every
    recorded answer of that route is compared with it)."""
    return openapi_document(version("gateway"))


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Answer:
    """One answer as the client received it."""

    method: str
    url: str
    status: int
    content_type: str  # the media type, without parameters
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.url).path  # still percent-encoded: a segment is one parameter


class ApiDocument:
    """An OpenAPI 3.1 document as a checker of answers."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(BASE, resource)
        # A path parameter is one segment (a key with a slash in it is sent percent-encoded);
        # concrete paths match before templated ones (/v1/inbox/ack, /v1/inbox/{delivery_id}).
        self.routes = [
            (re.compile(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))), template)
            for template in sorted(document["paths"], key=lambda t: t.count("{"))
        ]
        self._validators: dict[str, Draft202012Validator] = {}

    def resolve(self, node: Any) -> Any:
        """``node``, or what its ``$ref`` (into this document) names."""
        while isinstance(node, dict) and "$ref" in node:
            node = self.at(node["$ref"].removeprefix("#/"))
        return node

    def at(self, pointer: str) -> Any:
        node: Any = self.document
        for part in pointer.split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def template(self, path: str) -> str | None:
        for pattern, template in self.routes:
            if pattern.fullmatch(path):
                return template
        return None

    def validate(self, pointer: str, instance: Any) -> list[str]:
        """The errors of ``instance`` against the schema at ``pointer`` (refs resolved in the
        document), each with where in the instance it is."""
        validator = self._validators.get(pointer)
        if validator is None:
            validator = Draft202012Validator(
                {"$ref": f"{BASE}#/{pointer}"},
                registry=self.registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
            self._validators[pointer] = validator
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        ]

    def check(self, answer: Answer) -> list[str]:
        """What is wrong with ``answer`` by this document; nothing when it conforms. The
        national-axis façade (``/vxp/``) speaks that protocol, not this document's: its
        answers are checked against the protocol's reply shape instead."""
        if answer.path.startswith(VXP_ROOT):
            return check_vxp_reply(answer)
        method = "get" if answer.method == "HEAD" else answer.method.lower()
        template = self.template(answer.path)
        operation = None
        if template is not None:
            operation = self.document["paths"][template].get(method)
        if operation is None:
            # Not an operation of the document: the gateway refuses it with a problem (404,
            # 405, or 401 first when there is no token).
            if answer.status < 400:
                return [f"{answer.method} {answer.path} is not in the document"]
            return self._check_answer(answer, "components/responses/Problem")
        responses = operation["responses"]
        status = str(answer.status)
        # ``default`` is every other problem; a success must be one the operation names.
        candidates = (status, f"{status[0]}XX", *(("default",) if answer.status >= 400 else ()))
        chosen = next((s for s in candidates if s in responses), None)
        if chosen is None:
            return [f"status {status} is not one of {', '.join(responses)}"]
        where = _pointer("paths", template or "", method, "responses", chosen)
        return self._check_answer(answer, where)

    def _check_answer(self, answer: Answer, where: str) -> list[str]:
        response = self.at(where)
        while "$ref" in response:
            where = response["$ref"].removeprefix("#/")
            response = self.at(where)
        problems = [
            f"header {name} is missing"
            for name, header in (response.get("headers") or {}).items()
            if self.resolve(header).get("required") and name.lower() not in answer.headers
        ]
        content = response.get("content") or {}
        if answer.method == "HEAD" or (not content and not answer.body):
            return problems
        if answer.content_type not in content:
            named = ", ".join(content)
            return [*problems, f"content type {answer.content_type!r} is not one of {named}"]
        schema_at = "/".join([where, "content", _pointer(answer.content_type), "schema"])
        if answer.content_type in JSON_TYPES:
            try:
                instance = json.loads(answer.body)
            except ValueError as e:
                return [*problems, f"the body is not JSON: {e}"]
            told = instance.get("status") if isinstance(instance, dict) else None
            if answer.content_type == "application/problem+json" and told != answer.status:
                problems.append(f"the problem's status {told!r} is not the answer's")
        elif answer.content_type.startswith("text/"):
            try:
                instance = answer.body.decode("utf-8")
            except UnicodeDecodeError as e:
                return [*problems, f"the body is not UTF-8 text: {e}"]
        else:
            return problems  # bytes (the signed package): the content type is what is checked
        return [*problems, *self.validate(schema_at, instance)]


VXP_ROOT = "/vxp/"


def check_vxp_reply(answer: Answer) -> list[str]:
    """A façade reply: HTTP 200 and the protocol's JSON (status OK with ErrorCode "0", or FAIL
    with a catalogue code and a description), or a file streamed by downloadEdoc."""
    if answer.status != 200:
        return [f"a façade reply is HTTP 200, not {answer.status}"]
    if answer.content_type == "application/octet-stream":
        ok = answer.path.endswith("/downloadEdoc") and "x-gateway-error" not in answer.headers
        return [] if ok else ["only downloadEdoc streams a file"]
    if answer.content_type != "application/json":
        return [f"content type {answer.content_type!r} is not application/json"]
    try:
        body = json.loads(answer.body)
    except ValueError as e:
        return [f"the body is not JSON: {e}"]
    if not isinstance(body, dict) or body.get("status") not in ("OK", "FAIL"):
        return ["the reply has no status OK or FAIL"]
    code, desc = body.get("ErrorCode"), body.get("ErrorDesc")
    if not isinstance(desc, str):
        return ["ErrorDesc is not a string"]
    if body["status"] == "OK":
        return [] if code == "0" else [f"an OK reply with ErrorCode {code!r}"]
    if code not in CODES or answer.headers.get("x-gateway-error") != code:
        return [f"a FAIL reply's ErrorCode {code!r} is not a catalogue code in X-Gateway-Error"]
    return [] if desc else ["a FAIL reply without ErrorDesc"]


class Recorder:
    """The answers received from watched gateways during one test."""

    def __init__(self) -> None:
        self.origins: set[str] = set()
        self.answers: list[Answer] = []
        self._lock = threading.Lock()  # the CLI runs in threads of its own

    def watch(self, url: str) -> None:
        """Record the answers of the gateway at ``url``."""
        parts = urlsplit(url)
        self.origins.add(f"{parts.scheme}://{parts.netloc}")

    async def middleware(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if f"{request.url.scheme}://{request.url.raw_authority}" in self.origins:
            body = await response.read()  # kept by the response for its reader
            answer = Answer(
                request.method,
                str(request.url),
                response.status,
                response.content_type,
                {k.lower(): v for k, v in response.headers.items()},
                body,
            )
            with self._lock:
                self.answers.append(answer)
        return response

    def failures(self, document: ApiDocument) -> list[str]:
        served = document.document
        found = []
        for answer in self.answers:
            errors = document.check(answer)
            # (checked first, so its body is JSON)
            the_document = answer.path == "/v1/openapi.json" and answer.status == 200
            if the_document and not errors and json.loads(answer.body) != served:
                errors.append("the served document is not the one checked against")
            route = document.template(answer.path) or answer.path
            if route != answer.path:
                route += f" ({answer.path})"
            found += [f"{answer.method} {route} -> {answer.status}: {e}" for e in errors]
        return found


@pytest.fixture(scope="session")
def api_document() -> ApiDocument:
    return ApiDocument(served_document())


@pytest.fixture
def api_responses(monkeypatch: pytest.MonkeyPatch, api_document: ApiDocument) -> Iterator[Recorder]:
    """Records the answers of watched gateways during the test; at its end, each must conform
    to the OpenAPI document."""
    recorder = Recorder()
    initialise = aiohttp.ClientSession.__init__

    def with_recorder(session: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        kwargs["middlewares"] = (*kwargs.get("middlewares", ()), recorder.middleware)
        initialise(session, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", with_recorder)
    yield recorder
    failures = recorder.failures(api_document)
    assert not failures, "answers that do not conform to the OpenAPI document:\n" + "\n".join(
        failures[:20]
    )
