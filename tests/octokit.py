"""GitHub's webhook examples, schemas and signing code, from the npm packages GitHub's own SDK
publishes, installed by ``scripts/test-services.sh`` into ``~/.cache/ai-pipeline``:

- ``@octokit/webhooks-examples``: real payloads, per event (``examples(...)``);
- ``@octokit/webhooks-schemas``: their JSON schemas, one per event and action
  (``schema_for(...)``, validated with jsonschema-rs);
- ``@octokit/webhooks-methods``: ``sign()``, run in node (``NodeSigner``), so the signature
  a test sends is the one GitHub's SDK computes, not our own code checking itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs

WEBHOOKS_VERSION = "7.6.1"
METHODS_VERSION = "6.0.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-pipeline"
_MODULES = "node_modules/@octokit"
EXAMPLES = (
    CACHE
    / f"octokit-webhooks-examples-{WEBHOOKS_VERSION}"
    / _MODULES
    / "webhooks-examples/api.github.com/index.json"
)
SCHEMAS = (
    CACHE
    / f"octokit-webhooks-schemas-{WEBHOOKS_VERSION}"
    / _MODULES
    / "webhooks-schemas/schema.json"
)
METHODS = (
    CACHE
    / f"octokit-webhooks-methods-{METHODS_VERSION}"
    / _MODULES
    / "webhooks-methods/dist-node/index.js"
)

# Reads [{"secret", "body"}, …] as JSON on stdin, prints the signatures as a JSON list.
_SIGN_ALL = """
const { sign } = await import(process.argv[1]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const { secret, body } of JSON.parse(input)) out.push(await sign(secret, body));
process.stdout.write(JSON.stringify(out));
"""


@dataclass(frozen=True)
class Example:
    event: str  # X-GitHub-Event
    action: str | None
    payload: dict[str, Any]
    index: int  # among its event's examples

    @property
    def name(self) -> str:
        return f"{self.event}.{self.action or 'event'}#{self.index}"

    @property
    def body(self) -> str:
        """The exact text posted and signed."""
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False)


def examples(events: tuple[str, ...]) -> list[Example]:
    found = []
    for entry in json.loads(EXAMPLES.read_text()):
        if entry["name"] in events:
            for i, payload in enumerate(entry["examples"]):
                found.append(Example(entry["name"], payload.get("action"), payload, i))
    return found


def schema_validator(example: Example) -> Any:
    """The validator of the example's own definition (``issues$opened``, ``ping$event``…)."""
    schema = json.loads(SCHEMAS.read_text())
    name = f"{example.event}${example.action or 'event'}"
    if name not in schema["definitions"]:
        raise KeyError(f"@octokit/webhooks-schemas has no definition {name}")
    return jsonschema_rs.Draft7Validator(
        {"$ref": f"#/definitions/{name}", "definitions": schema["definitions"]}
    )


class NodeSigner:
    """``sign()`` of @octokit/webhooks-methods, many bodies per node process."""

    def __init__(self, node: str):
        self.node = node

    def sign_all(self, secret: str, bodies: list[str]) -> list[str]:
        request = json.dumps([{"secret": secret, "body": body} for body in bodies])
        done = subprocess.run(
            [self.node, "--input-type=module", "-e", _SIGN_ALL, METHODS.as_uri()],
            input=request,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        signatures: list[str] = json.loads(done.stdout)
        return signatures
