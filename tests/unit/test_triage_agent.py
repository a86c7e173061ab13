"""The triage agent: one embedding per report, kept with the request, reused after a restart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.agents.triage import TriageAgent, trusted_canonical
from ai_pipeline.domain.events import (
    BugReportSubmitted,
    ReportTriaged,
    Step,
    StepChanged,
    StepStatus,
    decode,
    utcnow,
)
from ai_pipeline.domain.request_state import RequestState, apply, new_request
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.triage.embeddings import Embedder, FloatMatrix
from ai_pipeline.triage.local import LocalTriageEngine
from tests.factories import report
from tests.unit.test_sqlite_state import new_store

pytestmark = pytest.mark.anyio


class CountingEmbedder(Embedder):
    """The real model, counting the texts it is asked to embed."""

    texts = 0

    def embed(self, texts: Sequence[str], progress: object = None) -> FloatMatrix:
        self.texts += len(texts)
        return super().embed(texts)


@pytest.fixture(scope="module")
def engine() -> LocalTriageEngine:
    return LocalTriageEngine.load()


def agent_on(store: SqliteStateStore, engine: LocalTriageEngine) -> TriageAgent:
    return TriageAgent(
        engine, engine.new_duplicate_index(), store, Metrics(), embedder=CountingEmbedder()
    )


async def triage(agent: TriageAgent, request_id: str, **fields: object) -> ReportTriaged:
    r = report(**fields)
    await agent.store.create_request(new_request(request_id, r.id, utcnow()), r, None)
    outputs = await agent.handle(BugReportSubmitted(request_id=request_id, report=r))
    triaged = decode(outputs[-1].value)
    assert isinstance(triaged, ReportTriaged)
    return triaged


CRASH = {
    "title": "Application crashes when I save a big document",
    "description": "Saving a large document makes the whole program quit unexpectedly.",
}
SAME_PROBLEM_OTHER_WORDS = {
    "title": "Program closes itself on writing a huge file to disk",
    "description": "Writing a huge file terminates the app without warning.",
}


async def test_a_paraphrase_is_found_and_the_embedding_survives_a_restart(
    tmp_path: Path, engine: LocalTriageEngine
) -> None:
    store = await new_store(tmp_path / "s.db")
    first = agent_on(store, engine)
    await triage(first, "req-1", **CRASH)
    await triage(first, "req-unrelated", title="Add a dark theme", description="Please.")
    found = (await triage(first, "req-2", **SAME_PROBLEM_OTHER_WORDS)).triage
    best = found.duplicate_candidates[0]
    assert best.request_id == "req-1"
    assert set((await store.embeddings(["req-1", "req-2"])).keys()) == {"req-1", "req-2"}

    restarted = agent_on(store, engine)
    assert await restarted.seed_index(100) == 3
    assert isinstance(restarted.embedder, CountingEmbedder)
    assert restarted.embedder.texts == 1  # the warm-up only: every vector came from the store
    again = (await triage(restarted, "req-3", **SAME_PROBLEM_OTHER_WORDS)).triage
    top = {c.request_id: c.similarity for c in again.duplicate_candidates}
    assert top["req-2"] > 0.99  # the same text, its stored embedding included
    assert top["req-1"] == pytest.approx(best.similarity, abs=1e-6)
    await store.close()


def test_the_semantic_side_finds_what_words_alone_miss(engine: LocalTriageEngine) -> None:
    embedder = Embedder()
    old = CRASH["title"] + "\n" + CRASH["description"]
    new = SAME_PROBLEM_OTHER_WORDS["title"] + "\n" + SAME_PROBLEM_OTHER_WORDS["description"]
    lexical, fused = engine.new_duplicate_index(), engine.new_duplicate_index()
    lexical.add("old", None, CRASH["title"], old)
    fused.add("old", None, CRASH["title"], old, embedding=embedder.embed_one(old))
    words = lexical.query(new, title=SAME_PROBLEM_OTHER_WORDS["title"])
    both = fused.query(
        new, title=SAME_PROBLEM_OTHER_WORDS["title"], embedding=embedder.embed_one(new)
    )
    assert both[0].similarity > 0.5
    assert not words or words[0].similarity < 0.5 * both[0].similarity


async def test_security_sensitive_reports_are_neither_indexed_nor_stored(
    tmp_path: Path, engine: LocalTriageEngine
) -> None:
    store = await new_store(tmp_path / "s.db")
    agent = agent_on(store, engine)
    leak = {
        "title": "Stored XSS vulnerability lets an attacker steal session cookies",
        "description": "An attacker injects a script tag in the comment field; CVE requested."
        " Authentication tokens and passwords leak to the attacker's host.",
    }
    result = (await triage(agent, "req-sec", **leak)).triage
    assert result.security_sensitive  # a named vulnerability: the review band at least
    assert len(agent.index) == 0
    assert await store.embeddings(["req-sec"]) == {}
    await store.close()


def triaged_state(
    request_id: str, triage: dict[str, object], review: dict[str, object] | None = None
) -> RequestState:
    state = new_request(request_id, f"B-{request_id}", utcnow())
    steps = [
        StepChanged(
            request_id=request_id, step=Step.TRIAGE, status=StepStatus.COMPLETED, data=triage
        )
    ]
    if review is not None:
        steps.append(
            StepChanged(
                request_id=request_id, step=Step.REVIEW, status=StepStatus.COMPLETED, data=review
            )
        )
    for step in steps:
        applied = apply(state, step)
        assert applied is not None
        state = applied
    return state


CALIBRATED = {
    "security_band": "public",
    "duplicate_of": {"bug_report_id": "B-1", "similarity": 0.95},
}


def test_only_links_a_human_confirmed_or_that_cleared_the_bar_fold_reports() -> None:
    by_issue = {7: "B-7"}
    # Triage's duplicate_of from a calibrated result cleared the precision bar.
    assert trusted_canonical(triaged_state("a", CALIBRATED), by_issue) == "B-1"
    # From before calibration (no band): it fired at a similarity wrong most of the time.
    old = {"security_sensitive": False, "duplicate_of": {"bug_report_id": "B-1", "similarity": 0.7}}
    assert trusted_canonical(triaged_state("b", old), by_issue) is None
    # A reviewer's word wins, both ways.
    unlinked = triaged_state("c", CALIBRATED, {"corrections": {"duplicate_of_issue": None}})
    assert trusted_canonical(unlinked, by_issue) is None
    relinked = triaged_state("d", old, {"corrections": {"duplicate_of_issue": 7}})
    assert trusted_canonical(relinked, by_issue) == "B-7"
    assert trusted_canonical(triaged_state("e", {"security_band": "public"}), by_issue) is None


async def test_an_earlier_false_link_does_not_chain_a_later_report_after_a_restart(
    tmp_path: Path, engine: LocalTriageEngine
) -> None:
    """B was once (before calibration) linked to A by mistake; C repeats B. C must be offered
    B itself, not folded into A through B's old link."""
    store = await new_store(tmp_path / "s.db")
    first = agent_on(store, engine)
    await triage(first, "req-a", title="Menu opens slowly", description="The file menu lags.")
    await triage(first, "req-b", **CRASH)
    older = await store.get("req-a")
    assert older is not None
    false_link = {"bug_report_id": older.bug_report_id, "similarity": 0.66}
    stale = StepChanged(
        request_id="req-b",
        step=Step.TRIAGE,
        status=StepStatus.COMPLETED,
        data={"security_sensitive": False, "duplicate_of": false_link},
    )
    await store.apply(stale)
    restarted = agent_on(store, engine)
    await restarted.seed_index(100)
    again = (await triage(restarted, "req-c", **CRASH)).triage
    best = again.duplicate_candidates[0]
    assert best.request_id == "req-b" and best.via_bug_report_id is None
    await store.close()
