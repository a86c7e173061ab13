"""The tracker agent files each draft once: ledger first, then the tracker's own memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.adapters.trackers.local import LocalTracker
from ai_pipeline.agents.keyed_locks import KeyedLocks
from ai_pipeline.agents.tracker import TrackerAgent
from ai_pipeline.domain.errors import PermanentError, UnavailableError
from ai_pipeline.domain.events import IssueDrafted, Step, StepChanged, StepStatus, decode, utcnow
from ai_pipeline.domain.models import FiledIssue, IssueDraft
from ai_pipeline.domain.request_state import new_request
from ai_pipeline.drafting.marker import marker
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import FilingRecord
from tests.factories import report

pytestmark = pytest.mark.anyio


class Setup:
    def __init__(self, path: Path):
        self.db = SqliteDatabase(path)
        self.bus = SqliteBus(self.db, {"t": 1})
        self.store = SqliteStateStore(self.db, self.bus, same_file_bus=self.bus)
        self.tracker = LocalTracker(self.db, "http://localhost:8000")
        self.metrics = Metrics()
        self.agent = TrackerAgent(self.tracker, self.store, self.metrics)

    async def __aenter__(self) -> Setup:
        await self.bus.start()
        await self.store.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.db.close()

    async def request(self, request_id: str) -> IssueDrafted:
        r = report()
        await self.store.create_request(new_request(request_id, r.id, utcnow()), r, None)
        draft = IssueDraft(title=r.title, body=f"text\n{marker(request_id)}", labels=["bug"])
        return IssueDrafted(request_id=request_id, bug_report_id=r.id, draft=draft)

    def calls(self, operation: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "ai_pipeline_tracker_calls_total",
            {"tracker": "local", "operation": operation, "outcome": "ok"},
        )
        return value or 0.0


def issue_of(outputs: object) -> int:
    (message,) = outputs  # type: ignore[misc]
    event = decode(message.value)
    assert isinstance(event, StepChanged) and event.issue is not None
    return event.issue.number


async def test_a_redelivered_draft_returns_the_issue_from_the_ledger(tmp_path: Path) -> None:
    async with Setup(tmp_path / "s.db") as s:
        drafted = await s.request("r1")
        first = issue_of(await s.agent.handle(drafted))
        again = issue_of(await s.agent.handle(drafted))
        assert first == again and s.calls("create_issue") == 1 and s.calls("find_filed") == 0


async def test_a_pending_ledger_entry_searches_before_creating(tmp_path: Path) -> None:
    async with Setup(tmp_path / "s.db") as s:
        drafted = await s.request("r1")
        filed = await s.tracker.create_issue("r1", drafted.draft)  # created; answer lost
        await s.store.put_filing(FilingRecord("r1", "pending", None))
        assert issue_of(await s.agent.handle(drafted)) == filed.number
        assert s.calls("find_filed") == 1 and s.calls("create_issue") == 0


async def test_without_any_state_the_agent_searches_before_creating(tmp_path: Path) -> None:
    """An emptied store (emergency flush, not yet rebuilt) knows no ledger either."""
    async with Setup(tmp_path / "s.db") as s:
        drafted = await s.request("r-known")
        filed = await s.tracker.create_issue("r-flushed", drafted.draft)
        flushed = drafted.model_copy(update={"request_id": "r-flushed"})
        assert issue_of(await s.agent.handle(flushed)) == filed.number
        assert s.calls("find_filed") == 1 and s.calls("create_issue") == 0


async def test_a_request_that_already_failed_is_not_filed(tmp_path: Path) -> None:
    async with Setup(tmp_path / "s.db") as s:
        drafted = await s.request("r1")
        timed_out = StepChanged(
            request_id="r1", step=Step.TICKET_CREATION, status=StepStatus.FAILED, error="late"
        )
        await s.store.apply(timed_out)
        assert await s.agent.handle(drafted) == []
        assert s.calls("create_issue") == 0 and s.tracker.list_issues(10, 0)[1] == 0


class _Public:
    """A tracker that must never see a security-sensitive report."""

    name = "public"

    def __init__(self) -> None:
        self.created: list[str] = []

    async def create_issue(self, request_id: str, draft: IssueDraft) -> object:
        self.created.append(request_id)
        raise AssertionError("a security-sensitive report reached the public tracker")

    async def find_filed(self, request_id: str) -> None:
        return None


async def test_security_sensitive_reports_go_to_the_private_tracker(tmp_path: Path) -> None:
    async with Setup(tmp_path / "db.sqlite") as setup:
        public = _Public()
        agent = TrackerAgent(public, setup.store, setup.metrics, private_tracker=setup.tracker)  # type: ignore[arg-type]
        event = (await setup.request("req-sec")).model_copy(update={"security_sensitive": True})
        (message,) = await agent.handle(event)
        changed = decode(message.value)
        assert isinstance(changed, StepChanged) and changed.issue is not None
        assert changed.data["private"] is True and changed.data["tracker"] == "local"
        assert public.created == []
        assert await setup.tracker.find_filed("req-sec") is not None


async def duplicate_of(s: Setup, request_id: str, original: int) -> IssueDrafted:
    drafted = await s.request(request_id)
    return drafted.model_copy(
        update={
            "duplicate_of_issue": original,
            "occurrence": f"seen again by {request_id}\n{marker(request_id)}",
        }
    )


def filed(outputs: object) -> StepChanged:
    (message,) = outputs  # type: ignore[misc]
    event = decode(message.value)
    assert isinstance(event, StepChanged) and event.issue is not None
    return event


async def test_in_comment_mode_a_duplicate_is_added_to_its_open_original(tmp_path: Path) -> None:
    async with Setup(tmp_path / "s.db") as s:
        s.agent.duplicates = "comment"
        original = issue_of(await s.agent.handle(await s.request("r1")))
        second = filed(await s.agent.handle(await duplicate_of(s, "r2", original)))
        third = filed(await s.agent.handle(await duplicate_of(s, "r3", original)))

        assert second.issue is not None and third.issue is not None
        assert second.issue.number == third.issue.number == original
        assert second.issue.comment and second.data["filed_as"] == "comment"
        assert second.issue.url != third.issue.url  # each links its own comment
        issue = s.tracker.get_issue(original)
        assert issue is not None and s.tracker.list_issues(10, 0)[1] == 1
        bodies = [c["body"] for c in issue.comments]
        assert "2 reports of this issue" in bodies[0] and "seen again by r2" in bodies[0]
        assert "3 reports of this issue" in bodies[1] and marker("r3") in bodies[1]


async def test_a_comment_whose_outcome_was_unknown_is_found_not_posted_twice(
    tmp_path: Path,
) -> None:
    async with Setup(tmp_path / "s.db") as s:
        s.agent.duplicates = "comment"
        original = issue_of(await s.agent.handle(await s.request("r1")))
        event = await duplicate_of(s, "r2", original)
        await s.tracker.add_comment("r2", original, "posted; the answer was lost")
        await s.store.put_filing(FilingRecord("r2", "pending", None))

        found = filed(await s.agent.handle(event))

        assert found.issue is not None and found.issue.comment and not found.issue.created
        assert s.calls("find_comment") == 1 and s.calls("add_comment") == 0
        issue = s.tracker.get_issue(original)
        assert issue is not None and len(issue.comments) == 1


async def test_a_duplicate_of_a_closed_issue_or_in_link_mode_gets_its_own_issue(
    tmp_path: Path,
) -> None:
    async with Setup(tmp_path / "s.db") as s:
        original = issue_of(await s.agent.handle(await s.request("r1")))
        linked = issue_of(await s.agent.handle(await duplicate_of(s, "r2", original)))
        s.agent.duplicates = "comment"
        await s.db.write(lambda c: c.execute("UPDATE local_issues SET state = 'closed'"))
        reopened = issue_of(await s.agent.handle(await duplicate_of(s, "r3", original)))

        assert len({original, linked, reopened}) == 3
        assert s.calls("add_comment") == 0 and s.calls("open_issue") == 1


async def test_a_security_sensitive_duplicate_is_never_a_public_comment(tmp_path: Path) -> None:
    async with Setup(tmp_path / "s.db") as s:
        original = issue_of(await s.agent.handle(await s.request("r1")))
        private_db = SqliteDatabase(tmp_path / "private.db")
        private = LocalTracker(private_db, "http://localhost:8000")
        await private_db.start()
        agent = TrackerAgent(s.tracker, s.store, s.metrics, private, duplicates="comment")
        event = (await duplicate_of(s, "r2", original)).model_copy(
            update={"security_sensitive": True}
        )
        held = filed(await agent.handle(event))

        assert held.data["private"] is True and held.issue is not None
        assert not held.issue.comment
        issue = s.tracker.get_issue(original)
        assert issue is not None and issue.comments == []
        await private_db.close()


async def test_reports_of_one_issue_commented_at_once_are_counted_one_after_another(
    tmp_path: Path,
) -> None:
    async with Setup(tmp_path / "s.db") as s:
        s.agent.duplicates = "comment"
        original = issue_of(await s.agent.handle(await s.request("r1")))
        events = [await duplicate_of(s, f"r{n}", original) for n in range(2, 6)]

        await asyncio.gather(*(s.agent.handle(e) for e in events))

        issue = s.tracker.get_issue(original)
        assert issue is not None
        counts = sorted(
            int(c["body"].split(" reports of this issue")[0].split()[-1]) for c in issue.comments
        )
        assert counts == [2, 3, 4, 5]


async def test_keyed_locks_serialise_one_key_and_forget_it_when_idle() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(work("a", "1"), work("a", "2"), work("a", "3"), work("b", "x"))

    same_key = [o for o in order if o[0] in "123"]
    assert same_key == ["1+", "1-", "2+", "2-", "3+", "3-"]
    assert order.index("x+") < order.index("1-")  # another key does not wait
    assert len(locks) == 0


class _RefusesOnce(LocalTracker):
    """A tracker that refuses the first create (a revoked token, fixed since)."""

    refused = False

    async def create_issue(self, request_id: str, draft: IssueDraft) -> FiledIssue:
        if not self.refused:
            self.refused = True
            raise PermanentError("401 Bad credentials")
        return await super().create_issue(request_id, draft)


async def test_a_refused_create_leaves_nothing_to_look_for_when_it_comes_again(
    tmp_path: Path,
) -> None:
    async with Setup(tmp_path / "s.db") as s:
        tracker = _RefusesOnce(s.db, "http://localhost:8000")
        agent = TrackerAgent(tracker, s.store, s.metrics)
        drafted = await s.request("r1")
        with pytest.raises(PermanentError):
            await agent.handle(drafted)
        record = await s.store.get_filing("r1")
        assert record is not None and record.state == "refused"

        issue_of(await agent.handle(drafted))  # redriven: created at once

        assert s.calls("find_filed") == 0 and tracker.list_issues(10, 0)[1] == 1


async def test_a_pending_attempt_not_found_is_looked_for_again_before_creating(
    tmp_path: Path,
) -> None:
    """An attempt not listed yet may still exist: the message is handed back until the
    tracker's listing lag has passed since it, then created."""
    async with Setup(tmp_path / "s.db") as s:
        s.tracker.listing_lag_seconds = 60.0  # as GitHub's
        drafted = await s.request("r1")
        await s.store.claim_filing("r1", "another-process", 0.0, attempt=True)

        with pytest.raises(UnavailableError, match="does not list it yet") as waited:
            await s.agent.handle(drafted)

        assert waited.value.retry_after == 1.0 and waited.value.dependency == "tracker"
        assert s.calls("find_filed") == 1 and s.calls("create_issue") == 0
        waits = s.metrics.registry.get_sample_value(
            "ai_pipeline_tracker_retries_total", {"tracker": "local", "reason": "listing_lag"}
        )
        assert waits == 1
        s.tracker.listing_lag_seconds = 0.0  # the lag has passed
        issue_of(await s.agent.handle(drafted))
        assert s.calls("find_filed") == 2 and s.calls("create_issue") == 1
