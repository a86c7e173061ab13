"""The state store's part in outages and redelivery, against both stores (SQLite, and a real
Redis): agents' heartbeats that expire, the filing ledger's lease, and a failed request
reopened by a redrive."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from ai_pipeline.domain.events import Step, StepChanged, StepStatus, utcnow
from ai_pipeline.domain.liveness import Heartbeat
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.domain.request_state import ACTIVE, RequestStatus, new_request
from ai_pipeline.ports import FilingRecord, StateStore
from tests.factories import report

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def beat(agent: str, instance: str, waiting_on: str | None = None) -> Heartbeat:
    now = time.time()
    return Heartbeat(agent, instance, "running", waiting_on, None, now, now, now)


async def eventually(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.05)


# --- heartbeats ------------------------------------------------------------------------------


async def test_heartbeats_are_kept_per_agent_and_instance_newest_first(store: StateStore) -> None:
    await store.put_heartbeats([beat("triage_agent", "a"), beat("github_api_agent", "a")], 30)
    await store.put_heartbeats([beat("triage_agent", "b")], 30)
    await store.put_heartbeats([beat("github_api_agent", "a", waiting_on="tracker")], 30)

    beats = {(b.agent, b.instance): b for b in await store.heartbeats()}

    assert set(beats) == {("triage_agent", "a"), ("triage_agent", "b"), ("github_api_agent", "a")}
    assert beats[("github_api_agent", "a")].waiting_on == "tracker"


async def test_a_heartbeat_not_renewed_expires(store: StateStore) -> None:
    await store.put_heartbeats([beat("triage_agent", "gone")], 0.3)
    await store.put_heartbeats([beat("triage_agent", "alive")], 30)

    async def only_the_live_one() -> bool:
        return [b.instance for b in await store.heartbeats()] == ["alive"]

    await eventually(only_the_live_one)
    await store.put_heartbeats([beat("coordinator_agent", "x")], 30)  # purges the dead
    assert {b.instance for b in await store.heartbeats()} == {"alive", "x"}


# --- the filing ledger's lease ------------------------------------------------------------------


async def test_a_claim_creates_a_pending_entry_leased_to_its_owner(store: StateStore) -> None:
    claim = await store.claim_filing("r1", "one", 60, attempt=True)
    record = await store.get_filing("r1")

    assert claim.granted and claim.previous is None and claim.wait_seconds == 0
    assert record is not None and (record.state, record.issue, record.owner) == (
        "pending",
        None,
        "one",
    )
    assert record.lease_until == pytest.approx(claim.now + 60, abs=0.01)
    assert record.attempted_at == pytest.approx(claim.now, abs=0.01)
    assert record.pending_since == pytest.approx(claim.now, abs=0.01)


async def test_nobody_else_claims_while_the_lease_runs_and_the_owner_renews_it(
    store: StateStore,
) -> None:
    first = await store.claim_filing("r1", "one", 60, attempt=True)
    other = await store.claim_filing("r1", "two", 60, attempt=True)
    renewed = await store.claim_filing("r1", "one", 60, attempt=False)
    record = await store.get_filing("r1")

    assert not other.granted and other.previous is not None and other.previous.owner == "one"
    assert 0 < other.wait_seconds <= 60
    assert renewed.granted
    assert record is not None and record.owner == "one"
    # A claim without an attempt keeps the times of the earlier one.
    assert record.attempted_at == pytest.approx(first.now, abs=0.01)
    assert record.pending_since == pytest.approx(first.now, abs=0.01)


async def test_an_expired_lease_passes_to_the_next_claimant_with_the_attempt_time(
    store: StateStore,
) -> None:
    first = await store.claim_filing("r1", "dead-process", 0.2, attempt=True)

    async def taken_over() -> bool:
        return (await store.claim_filing("r1", "two", 60, attempt=False)).granted

    await eventually(taken_over)
    record = await store.get_filing("r1")

    assert record is not None and record.owner == "two"
    assert record.attempted_at == pytest.approx(first.now, abs=0.01)


async def test_a_filed_entry_is_never_claimed_and_a_rebuilt_one_gets_its_times(
    store: StateStore,
) -> None:
    issue = FiledIssue(number=7, url="https://github.com/acme/widgets/issues/7")
    await store.claim_filing("r1", "one", 60, attempt=True)
    await store.put_filing(FilingRecord("r1", "filed", issue))
    await store.put_filing(FilingRecord("r2", "pending", None))  # as a rebuild writes it

    filed = await store.claim_filing("r1", "two", 60, attempt=True)
    rebuilt = await store.claim_filing("r2", "two", 60, attempt=False)
    record = await store.get_filing("r1")
    pending = await store.get_filing("r2")

    assert not filed.granted and filed.previous is not None and filed.previous.issue == issue
    assert record == FilingRecord("r1", "filed", issue)  # no lease left on it
    assert rebuilt.granted and rebuilt.previous == FilingRecord("r2", "pending", None)
    assert pending is not None and pending.attempted_at is None
    assert pending.pending_since == pytest.approx(rebuilt.now, abs=0.01)


# --- reopened by a redrive ----------------------------------------------------------------------


async def test_a_failed_request_reopened_by_a_redrive_is_active_again(store: StateStore) -> None:
    r = report()
    at = utcnow() - timedelta(minutes=5)
    await store.create_request(new_request("r1", r.id, at), r, None)
    await store.apply(StepChanged(request_id="r1", step=Step.TRIAGE, status=StepStatus.FAILED))
    redriven = StepChanged(request_id="r1", step=Step.TRIAGE, status=StepStatus.REDRIVEN)

    reopened = await store.apply(redriven)
    again = await store.apply(redriven)  # replayed: the request is no longer failed
    state = await store.get("r1")

    assert reopened is not None and reopened.status is RequestStatus.PROCESSING
    assert again is None and state == reopened
    assert [s.request_id for s in (await store.list_requests(ACTIVE, 10, 0)).requests] == ["r1"]
    assert (await store.list_requests([RequestStatus.FAILED], 10, 0)).total == 0
    completed = StepChanged(request_id="r1", step=Step.TRIAGE, status=StepStatus.COMPLETED)
    assert await store.apply(completed) is not None
