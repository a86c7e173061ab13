"""The GitHub App mode: webhook received → our comment posted, at a steady delivery rate.

Issues are opened on the GitHub-shaped fake and their ``issues.opened`` webhooks, signed as
GitHub signs them, are sent to ``ai-pipeline serve`` on a fixed schedule (open loop: late
answers do not slow the sender). The latency of each issue runs from the moment its
delivery is sent to the moment the fake stored our comment (same clock, same machine).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.fakes.github_server import FakeGitHub, run_fake_github
from tests.fakes.github_webhooks import WEBHOOK_PATH, body_of, headers_for, issue_event
from tests.github_app import SECRET, TOKEN, app_env, open_issue
from tests.service import ServiceProcess

from bench.e2e import percentiles


async def _deliver_at_rate(
    url: str, payloads: list[tuple[int, dict[str, Any]]], rate: float
) -> tuple[dict[int, float], list[float], int]:
    """Send each payload at its slot; (number → when sent, POST latencies in ms, non-202)."""
    sent: dict[int, float] = {}
    post_ms: list[float] = []
    refused = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(number: int, payload: dict[str, Any]) -> None:
            nonlocal refused
            body = body_of(payload)
            headers = headers_for(SECRET, "issues", body)
            sent[number] = time.time()
            started = time.perf_counter()
            response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
            post_ms.append((time.perf_counter() - started) * 1000)
            refused += response.status_code != 202

        begin = time.perf_counter()
        tasks = []
        for i, (number, payload) in enumerate(payloads):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(number, payload)))
        await asyncio.gather(*tasks)
    return sent, post_ms, refused


def _commented(gh: FakeGitHub, numbers: list[int]) -> bool:
    return all(gh.comment_times(n) for n in numbers)


def run(rate: float, seconds: float, mode: str = "suggest") -> dict[str, Any]:
    count = int(rate * seconds)
    print(f"GitHub App mode: {count} webhooks at {rate:.0f}/s, {mode} mode …", flush=True)
    with run_fake_github(token=TOKEN) as gh, tempfile.TemporaryDirectory() as tmp:
        gh.private = False
        payloads = [
            (issue["number"], issue_event(gh, "opened", issue["number"]))
            for issue in (open_issue(gh, n) for n in range(count))
        ]
        svc = ServiceProcess(Path(tmp), app_env(gh, mode=mode)).start(timeout=300)
        try:
            began = time.perf_counter()
            sent, post_ms, refused = asyncio.run(_deliver_at_rate(svc.url, payloads, rate))
            achieved = count / (time.perf_counter() - began)
            numbers = [n for n, _ in payloads]
            done = gh.wait_for(lambda g: _commented(g, numbers), timeout=600)
        finally:
            svc.stop()
        latencies = [gh.comment_times(n)[0] - sent[n] for n in numbers if gh.comment_times(n)]
    result = {
        "rate": rate,
        "seconds": seconds,
        "mode": mode,
        "deliveries": count,
        "achieved_rate": achieved,
        "refused": refused,
        "commented": len(latencies),
        "all_commented": done,
        "webhook_to_comment_seconds": percentiles(latencies),
        "post_ms": percentiles(post_ms),
        "samples": {"webhook_to_comment_seconds": latencies},
    }
    p = result["webhook_to_comment_seconds"]
    print(
        f"  webhook → comment p50 {p['p50'] * 1000:.0f} ms, p95 {p['p95'] * 1000:.0f} ms,"
        f" max {p['max'] * 1000:.0f} ms; {len(latencies)}/{count} commented",
        flush=True,
    )
    return result
