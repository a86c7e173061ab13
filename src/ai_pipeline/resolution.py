"""The one way a filed issue's fate reaches its requests.

Whatever sees an issue closed or reopened calls ``record_resolution``: the local tracker's
close and reopen (API, console, command line), the follow-up rules, and GitHub's webhook
receiver and poll. It puts one ``IssueResolutionChanged`` per request following the issue
(the one filed as it, and reports added to it as comments) on the status-updates log,
from which the coordinator folds the request's ``resolution`` and the notifier agent the
conversation (and tells the reporter). The later word wins there, so calling it twice
with the same change, or replaying the log, changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.domain.events import Topic
from ai_pipeline.domain.loop_events import IssueResolutionChanged
from ai_pipeline.domain.resolution import Resolution
from ai_pipeline.loop_ports import LoopStore
from ai_pipeline.ports import Bus, StateStore


class NotFiledYet(RuntimeError):
    """The issue exists, but a request's filing is not on the log yet: its resolution
    would be folded before its filing and lost. Try again in a moment."""


async def record_resolution(
    bus: Bus,
    loop: LoopStore,
    store: StateStore,
    *,
    tracker: str,
    issue_number: int,
    resolution: Resolution,
    source: str,
    requests: Sequence[str] = (),
) -> list[str]:
    """Record the change for every request following issue ``issue_number`` of ``tracker``
    (those with a conversation, and ``requests`` the tracker itself names); their ids."""
    following = set(await loop.following(tracker, issue_number))
    for request_id in requests:
        if request_id in following:
            continue
        state = await store.get(request_id)
        if state is None or state.github_issue_number != issue_number:
            raise NotFiledYet(f"request {request_id}: the filing of #{issue_number} is in flight")
        following.add(request_id)
    ordered = sorted(following)
    if not ordered:
        return []
    await bus.publish(
        [
            to_topic(
                Topic.STATUS_UPDATES,
                request_id,
                IssueResolutionChanged(
                    request_id=request_id,
                    tracker=tracker,
                    issue_number=issue_number,
                    resolution=resolution,
                    source=source,
                ),
            )
            for request_id in ordered
        ]
    )
    return ordered
