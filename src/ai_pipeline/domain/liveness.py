"""Which requests are stuck, judged from what each agent process says of itself.

Every agent process writes a heartbeat to the state store every few seconds (a short TTL,
so a dead process's beat vanishes). The coordinator, in whichever process it runs, reads
them to tell three cases apart for each step:

- an agent of the step waits on a dependency (GitHub down, the broker or Redis away, a
  rate limit): its requests are late, never stuck;
- no live agent of the step at all (its processes died or were scaled to 0): its requests
  wait in the log until one comes back, and the lag alerts say so; nothing is failed;
- live, healthy agents: a request waiting on the step is stuck only if the step has no
  backlog left for them to work through, or they made no progress for a whole timeout.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, fields

from ai_pipeline.domain.events import Step


@dataclass(frozen=True)
class Heartbeat:
    agent: str  # as in the health document: "github_api_agent"
    instance: str  # the process: host, pid and a random part
    status: str  # the runner's: starting, running, degraded, stopped
    # The dependency the agent waits on ("tracker", "bus", "state"…) and why; None while
    # nothing holds it up.
    waiting_on: str | None
    reason: str | None
    since: float  # Unix time the current status began
    last_progress: float  # Unix time a message was last handled, or a dependency waited on
    at: float  # Unix time the beat was taken

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Heartbeat:
        # Fields a newer version adds are left out: processes of two versions share a store
        # during a rolling update.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(raw).items() if k in known})


@dataclass(frozen=True)
class StepAgent:
    """An agent that performs a request step, and where its backlog is counted."""

    name: str
    group: str
    topic: str
    step: Step


def steps_not_stuck(
    agents: Collection[StepAgent],
    beats: Collection[Heartbeat],
    backlog: Mapping[tuple[str, str], int],
    step_timeout: float,
    now: float,
) -> set[Step]:
    """Steps whose waiting requests must not be failed for lack of progress (see above).

    ``beats`` are the live heartbeats; ``backlog`` the unconsumed messages per (group,
    topic); ``now`` the reader's clock (heartbeats carry the writer's: hosts keep time)."""
    spared = set()
    for agent in agents:
        live = [b for b in beats if b.agent == agent.name]
        waiting = any(b.waiting_on is not None for b in live)
        progressing = any(now - b.last_progress < step_timeout for b in live)
        queued = backlog.get((agent.group, agent.topic), 0) > 0
        if not live or waiting or (queued and progressing):
            spared.add(agent.step)
    return spared
