"""Prism (``@stoplight/prism-cli``) as a validating mock of GitHub's own OpenAPI description
(``@octokit/openapi``, ``generated/api.github.com.json``), both installed by
``scripts/test-services.sh`` into ``~/.cache/ai-pipeline``, for contract tests of the trackers.

What Prism 5.14.2 does with a request (read from its source and checked against this spec):

* **Every request is validated**: path, query, headers and JSON body. A request with a
  violation of severity ``Error`` is answered with the operation's own 422 (else 400)
  response, its example or one generated from its schema (for GitHub's issues endpoints:
  ``{"message": "string", "documentation_url": "string", "errors": [...]}``), and an
  ``sl-violations`` header: a JSON list of ``{"location": ["request", "query", "per_page"],
  "severity": "Error", "code": "type", "message": "..."}``. Where the operation declares no
  422 or 400, Prism answers 422 ``application/problem+json`` with ``type``
  ``https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY`` and the violations in its
  ``validation`` list, without the header. A valid request gets the example of its first 2xx.
* **Prism's own refusals** are ``application/problem+json`` with a ``type`` starting
  ``https://stoplight.io/prism/errors#``: ``NO_PATH_MATCHED_ERROR`` (404, a path not in the
  spec), ``NO_METHOD_MATCHED_ERROR`` (405), ``NOT_ACCEPTABLE`` (406, no response content
  matches the Accept header, decided *after* validation: an invalid request still gets its
  422), ``INVALID_CONTENT_TYPE`` (415)...
* **Its own answer is validated too** and any violation goes into the same header with a
  location starting ``"response"``. GitHub's examples do not always match GitHub's schemas
  (the example of ``GET /repos/{owner}/{repo}`` lacks ``source.language``), which says
  nothing about our requests. That is why Prism runs **without** ``--errors``: in 5.14.2 that
  flag only turns such *response* violations into a 500 ``#VIOLATIONS`` problem (request
  validation and the 422 are the same with or without it), which would fail ``ping`` for a
  defect of GitHub's example.

The rule (``request_violations``): a response tells that our request broke the contract when
its ``sl-violations`` header, or the ``validation`` list of a Prism problem, holds an entry of
severity ``Error`` whose location starts with ``"request"`` (a header Prism cut short,
``Too many violations! ...``, counts as one), or when Prism itself refused it (``prism_error``).

Body validation needs the spec repaired first (``repair_spec``): ajv refuses to compile a
schema with ``nullable: true`` and no ``type`` ("nullable" cannot be used without "type"),
and Prism 5.14.2 swallows that compile error (``validateAgainstSchema`` wraps it in
``O.tryCatch``) and lets the whole body through unchecked. The body of ``POST
/repos/{owner}/{repo}/issues`` is such a schema (its ``milestone`` is a nullable ``oneOf``):
unrepaired, ``{"labels": "x"}`` without a title passes. 135 schemas of the 23.0.2
description are rewritten to ``{"anyOf": [<the schema>, {"type": "null"}]}``, which is what
``nullable`` means; and 19 examples whose value is a ``$ref`` to a whole Example Object get
that object's value (unrepaired, the mock wraps them: ``{"value": {<the issue>}}``).

Start-up: about 10 s on the 2-core test box (the repair takes half a second, Prism's parsing
of the 13 MB description the rest, ~300 MB resident); the default timeout allows 180 s for
a loaded machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.service import free_port

PRISM_VERSION = "5.14.2"  # the newest that runs on Node 20; pinned in scripts/test-services.sh
GITHUB_OPENAPI_VERSION = "23.0.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-pipeline"
PRISM = CACHE / f"prism-{PRISM_VERSION}" / "node_modules" / ".bin" / "prism"
GITHUB_SPEC = (
    CACHE
    / f"octokit-openapi-{GITHUB_OPENAPI_VERSION}"
    / "node_modules/@octokit/openapi/generated/api.github.com.json"
)

PROBLEM_PREFIX = "https://stoplight.io/prism/errors#"
VIOLATIONS_HEADER = "sl-violations"
_TRUNCATED = "Too many violations!"


@dataclass(frozen=True)
class Violation:
    location: tuple[str, ...]  # ("request", "body", "labels"), ("response", "body"), ...
    severity: str  # "Error", "Warning", "Information" or "Hint"
    code: str
    message: str

    @property
    def side(self) -> str:
        """``request`` (ours) or ``response`` (Prism's example against GitHub's schema)."""
        return self.location[0] if self.location else ""

    def __str__(self) -> str:
        return f"{self.severity} at {'.'.join(self.location)}: {self.message} [{self.code}]"


def _problem(response: httpx.Response) -> dict[str, Any] | None:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    try:
        data = json.loads(response.content)
    except ValueError:
        return None
    if isinstance(data, dict) and str(data.get("type", "")).startswith(PROBLEM_PREFIX):
        return data
    return None


def prism_error(response: httpx.Response) -> str | None:
    """The kind of Prism's own error answer (``NOT_ACCEPTABLE``, ``NO_PATH_MATCHED_ERROR``,
    ``UNPROCESSABLE_ENTITY``, ``VIOLATIONS``...), or None for an answer from the spec."""
    problem = _problem(response)
    return str(problem["type"]).removeprefix(PROBLEM_PREFIX) if problem else None


def violations(response: httpx.Response) -> list[Violation]:
    """Every violation Prism reported for this exchange, request and response side."""
    entries: list[Any] = []
    header = response.headers.get(VIOLATIONS_HEADER)
    if header is not None:
        if header.startswith(_TRUNCATED):
            return [Violation(("request",), "Error", "truncated", header[:500])]
        entries.extend(json.loads(header))
    problem = _problem(response)
    if problem is not None:
        entries.extend(problem.get("validation") or [])
    found = []
    for entry in entries:
        location = tuple(str(part) for part in entry.get("location") or [])
        if problem is not None and problem.get("type") == PROBLEM_PREFIX + "UNPROCESSABLE_ENTITY":
            # The problem's list carries the validator's paths, without the side.
            location = location if location[:1] == ("request",) else ("request", *location)
        found.append(
            Violation(
                location,
                str(entry.get("severity", "")),
                str(entry.get("code", "")),
                str(entry.get("message", "")),
            )
        )
    return list(dict.fromkeys(found))


def request_violations(response: httpx.Response) -> list[str]:
    """Why our request broke the contract; empty when it kept it. See the module's rule."""
    problems = [
        str(v) for v in violations(response) if v.side == "request" and v.severity == "Error"
    ]
    kind = prism_error(response)
    if kind is not None and kind != "VIOLATIONS":  # VIOLATIONS: response side, with --errors
        problems.append(f"Prism refused the request: {kind} {response.status_code}")
    return problems


# --- the spec ------------------------------------------------------------------------------

# Keys whose value maps names to schemas: the map itself is no schema.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
# Keys whose value is data, not schemas ("default" is also a response: it is walked).
_DATA = frozenset({"example", "examples", "enum", "const"})


def repair_spec(document: dict[str, Any]) -> dict[str, int]:
    """Repair, in place, the two defects of GitHub's description that matter to a mock; returns
    how many of each were repaired:

    * ``nullable``: a schema with ``nullable: true`` and no ``type``, which Prism silently
      stops validating, becomes ``anyOf: [schema, {type: null}]``, what ``nullable`` means;
    * ``example_refs``: an example whose ``value`` is a ``$ref`` to a whole Example Object
      (``#/components/examples/issue``, itself ``{"value": ...}``) gets that object's value:
      unrepaired, Prism answers ``GET /repos/{owner}/{repo}/issues/{number}`` with
      ``{"value": {<the issue>}, "x-github-breaking-changes": ...}``."""
    counts = {"nullable": 0, "example_refs": 0}
    shared = document.get("components", {}).get("examples", {})

    def example_value(example: Any) -> Any:
        ref = example.get("value") if isinstance(example, dict) else None
        if not (isinstance(ref, dict) and list(ref) == ["$ref"]):
            return None
        name = str(ref["$ref"]).removeprefix("#/components/examples/")
        target = shared.get(name) if name != ref["$ref"] else None
        return target.get("value") if isinstance(target, dict) else None

    def walk(value: Any, is_map: bool = False) -> Any:
        """``value`` repaired inside; a schema needing it is returned as its replacement."""
        if isinstance(value, list):
            value[:] = [walk(item) for item in value]
        elif isinstance(value, dict):
            for key, item in value.items():
                if is_map or key not in _DATA:
                    value[key] = walk(item, is_map=not is_map and key in _SCHEMA_MAPS)
                elif key == "examples" and isinstance(item, dict):
                    for example in item.values():
                        if (found := example_value(example)) is not None:
                            example["value"] = found
                            counts["example_refs"] += 1
            if not is_map and value.get("nullable") is True and "type" not in value:
                counts["nullable"] += 1
                del value["nullable"]
                return {"anyOf": [value, {"type": "null"}]}
        return value

    walk(document)
    return counts


# --- the server ----------------------------------------------------------------------------


class PrismServer:
    """``prism mock`` of an OpenAPI description on a free loopback port: .url, .port,
    start(), stop(), kill(), log(). The log (one line per validation step) is in workdir."""

    name = "prism"

    def __init__(
        self,
        workdir: Path,
        spec: Path = GITHUB_SPEC,
        prism: str | Path = PRISM,
        repair: bool = True,
    ):
        self.workdir = workdir
        self.source_spec = spec
        self.spec = workdir / spec.name if repair else spec
        self.repair = repair
        self.prism = str(prism)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"prism-{self.port}.log"
        self.repairs: dict[str, int] = {}
        self.startup_seconds: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> PrismServer:
        began = time.monotonic()
        if self.repair:
            document = json.loads(self.source_spec.read_text())
            self.repairs = repair_spec(document)
            self.spec.write_text(json.dumps(document))
        command = [self.prism, "mock", str(self.spec), "-h", "127.0.0.1", "-p", str(self.port)]
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(began + timeout, timeout)
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prism exited early with code {self.proc.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                httpx.get(f"{self.url}/", timeout=2)  # any answer: Prism is listening
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.kill()
        raise TimeoutError(f"prism did not answer in {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def __enter__(self) -> PrismServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
