"""Duplicate hints for a reporter typing a title: "is it one of these?".

Only filed, public issues are offered: a report that is held, still in flight,
security-sensitive (private band, or review band not released as public) or filed privately
never shows its title to another reporter. Titles
are redacted like filed text. The search is the triage index's lexical half (no sentence
embeddings: no model to load in an API process, and a keystroke must answer in
milliseconds); it is fed from the state store, so API replicas need no triage agent.

The index is filled on first use with the newest ``SEED`` reports, then topped up with the
newest ``TOP_UP`` at most every ``REFRESH_SECONDS``: an issue filed long after its report
was created (held for review for days) is missed until the service restarts. Memory is
bounded like the triage index's: past twice ``capacity`` filed issues (the duplicate
index size), the oldest are forgotten, by the index and by the map of filed issues alike.
Both are keyed by request, not report id: two clients may use the same id.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ai_pipeline.domain.events import Step
from ai_pipeline.domain.models import BugReport, SecurityBand
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.domain.request_state import RequestState
from ai_pipeline.ports import StateStore
from ai_pipeline.triage.duplicates import DuplicateIndex

SEED = 5000
TOP_UP = 200
REFRESH_SECONDS = 5.0
MIN_TITLE = 3
# Below this a hint is noise to a reporter (tf-idf cosine of the weighted title and text).
MIN_SIMILARITY = 0.2


@dataclass(frozen=True)
class _Filed:
    bug_report_id: str
    request_id: str
    issue_number: int
    issue_url: str
    title: str


class DuplicateHints:
    def __init__(self, store: StateStore, redactor: Redactor, capacity: int = SEED):
        self._store = store
        self._redactor = redactor
        self._capacity = max(capacity, 1)
        self._index: DuplicateIndex | None = None
        self._filed: dict[str, _Filed] = {}  # by request id, oldest first
        self._refreshed = 0.0
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        """Filed issues remembered (at most twice the capacity)."""
        return len(self._filed)

    async def candidates(self, title: str, description: str, limit: int) -> list[dict[str, Any]]:
        title = title.strip()
        if len(title) < MIN_TITLE:
            return []
        index = await self._fresh_index()
        found = index.query(f"{title}\n{description}", k=limit, title=title)
        hints = []
        for candidate in found:
            filed = self._filed.get(candidate.bug_report_id)  # the index holds request ids
            if filed is None or candidate.similarity < MIN_SIMILARITY:
                continue
            hints.append(
                {
                    "bug_report_id": filed.bug_report_id,
                    "request_id": filed.request_id,
                    "title": filed.title,
                    "issue_number": filed.issue_number,
                    "issue_url": filed.issue_url,
                    "similarity": round(candidate.similarity, 3),
                }
            )
        return hints

    async def _fresh_index(self) -> DuplicateIndex:
        async with self._lock:
            if self._index is None:
                # Loading the artifact reads a few MB: not on the event loop.
                self._index = await asyncio.to_thread(
                    DuplicateIndex.from_artifact, None, self._capacity
                )
                await self._add(await self._store.recent_reports(SEED))
                self._refreshed = time.monotonic()
            elif time.monotonic() - self._refreshed >= REFRESH_SECONDS:
                await self._add(await self._store.recent_reports(TOP_UP))
                self._refreshed = time.monotonic()
            return self._index

    async def _add(self, reports: list[tuple[RequestState, BugReport]]) -> None:
        assert self._index is not None
        for state, report in reversed(reports):  # oldest first, as the triage index does
            rid = state.request_id
            if rid in self._filed or not _public_issue(state):
                continue
            assert state.github_issue_number is not None and state.github_issue_url is not None
            title = self._redactor.redact(report.title)
            self._filed[rid] = _Filed(
                report.id, rid, state.github_issue_number, state.github_issue_url, title
            )
            if len(self._filed) > 2 * self._capacity:  # what the index forgets too
                del self._filed[next(iter(self._filed))]
            text = self._redactor.redact(f"{report.title}\n{report.description}")
            self._index.add(rid, rid, title, text, state.github_issue_number)
            await asyncio.sleep(0)  # a big seed must not stall other requests


def _public_issue(state: RequestState) -> bool:
    if state.github_issue_number is None or state.github_issue_url is None:
        return False
    filing = state.progress.get(Step.GITHUB)
    # A report of the security review band is offered once a maintainer released it public.
    if Step.TRIAGE not in state.progress or state.security_band is not SecurityBand.PUBLIC:
        return False
    return (
        filing is not None
        and not filing.data.get("private")
        and filing.data.get("filed_as") != "comment"
    )
