"""``ai-pipeline``: run the service and talk to it."""

from __future__ import annotations

import faulthandler
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from ai_pipeline import __version__
from ai_pipeline.domain.models import TriageResult
from ai_pipeline.domain.resolution import CloseReason
from ai_pipeline.settings import Settings

app = typer.Typer(help="AI Pipeline: bug reports in, triaged issues out.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Service URL (default: from AI_PIPELINE_PORT)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print raw JSON")]


def _url(url: str | None) -> str:
    return (url or Settings().base_url).rstrip("/")


def _call(method: str, url: str, **kwargs: Any) -> Any:
    try:
        response = httpx.request(method, url, timeout=30.0, **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach {url}: {exc}[/red] (is `ai-pipeline serve` running?)")
        raise typer.Exit(2) from None
    body = response.json() if response.content else {}
    if response.status_code >= 400:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        err.print(
            f"[red]{response.status_code} {error.get('code', '')}: {error.get('message', '')}[/red]"
        )
        if error.get("details"):
            err.print_json(data=error["details"])
        raise typer.Exit(1)
    return body


class Role(StrEnum):
    ALL = "all"
    API = "api"


class AgentName(StrEnum):
    TRIAGE = "triage"
    TICKET_CREATION = "ticket-creation"
    GITHUB_API = "github-api"
    COORDINATOR = "coordinator"
    NOTIFIER = "notifier"
    DELIVERY = "delivery"
    REPLY = "reply"

    @property
    def agent(self) -> str:
        """The name in the health document and metrics: ``triage_agent``…"""
        return f"{self.value.replace('-', '_')}_agent"

    @property
    def agents(self) -> tuple[str, ...]:
        """What this process runs: the agents that talk to the outside world (posting
        replies, delivering notifications) ride with the tracker agent, so a deployment
        of today's processes runs them; each can also run alone."""
        return (self.agent, *COMPANIONS.get(self, ()))


COMPANIONS = {
    AgentName.GITHUB_API: ("reply_agent", "delivery_agent"),
    AgentName.COORDINATOR: ("notifier_agent",),
}
# `serve --role api`: the coordinator, and the notifier beside it (both only fold the log).
API_ROLE_AGENTS = ("coordinator_agent", "notifier_agent")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default AI_PIPELINE_PORT or 8000)")
    ] = None,
    role: Annotated[
        Role,
        typer.Option(
            help="all: API and every agent (embedded); api: API, coordinator and notifier"
        ),
    ] = Role.ALL,
) -> None:
    """Run the API, with every agent in this process (the default) or only the coordinator."""
    from ai_pipeline.api.app import create_app
    from ai_pipeline.bootstrap import AGENTS, bootstrap

    settings = _serving_settings(host, port)
    agents = tuple(AGENTS) if role is Role.ALL else API_ROLE_AGENTS
    application = create_app(bootstrap(settings), agents)
    err.print(
        f"AI Pipeline {__version__} on {settings.base_url} (role {role.value}, bus"
        f" {_safe_url(settings.bus)}, state {_safe_url(settings.state)}, tracker"
        f" {settings.tracker}); Ctrl-C stops it.\n"
        f"  health:   curl -s {settings.base_url}/api/v1/health | jq .\n"
        f"  API docs: {settings.base_url}/docs"
    )
    _run(application, settings)


@app.command()
def agent(
    name: Annotated[AgentName, typer.Argument(help="Which agent this process runs")],
    host: Annotated[str | None, typer.Option(help="Bind address of health and metrics")] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port of /health and /metrics (default AI_PIPELINE_HEALTH_PORT)"),
    ] = None,
) -> None:
    """Run one agent as its own process; start as many per consumer group as you need."""
    from ai_pipeline.api.app import create_agent_app
    from ai_pipeline.bootstrap import bootstrap

    settings = _serving_settings(host, None)
    settings = settings.model_copy(update={"port": port or settings.health_port})
    agent_name = ", ".join(name.agents)
    application = create_agent_app(bootstrap(settings), name.agents)
    err.print(
        f"AI Pipeline {__version__}: {agent_name} (bus {_safe_url(settings.bus)}, state"
        f" {_safe_url(settings.state)}); health and metrics on"
        f" http://{settings.host}:{settings.port}/health and /metrics"
    )
    _run(application, settings)


def _serving_settings(host: str | None, port: int | None) -> Settings:
    import prometheus_client

    from ai_pipeline.observability.logging import configure_logging

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings_or_exit(overrides)
    configure_logging(settings.log_level, settings.log_json)
    # One series per counter is what the alerts read; "_created" twins only add noise.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    return settings


def _settings_or_exit(overrides: dict[str, Any]) -> Settings:
    """The settings, or a plain message and exit 2: a traceback would bury the cause, and
    pydantic's own message echoes every input (tokens included)."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            name = f"AI_PIPELINE_{where.upper()}: " if where else ""
            err.print(f"[red]invalid setting: {name}{error['msg']}[/red]", highlight=False)
        raise typer.Exit(2) from None


def _run(application: Any, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )


def _safe_url(url: str) -> str:
    """A URL fit to print: any password replaced."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url


@app.command()
def submit(
    file: Annotated[Path | None, typer.Argument(help="A JSON bug report ('-' for stdin)")] = None,
    id: Annotated[str | None, typer.Option("--id")] = None,
    title: Annotated[str | None, typer.Option("--title")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    reporter: Annotated[str | None, typer.Option("--reporter")] = None,
    steps: Annotated[list[str] | None, typer.Option("--step", help="Repeat per step")] = None,
    expected: Annotated[str | None, typer.Option("--expected")] = None,
    actual: Annotated[str | None, typer.Option("--actual")] = None,
    environment: Annotated[str | None, typer.Option("--environment")] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    url: UrlOption = None,
    raw: JsonFlag = False,
) -> None:
    """Submit a bug report from a JSON file or from flags."""
    report: dict[str, Any] = {}
    if file is not None:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        report = json.loads(text)
    flags = {
        "id": id,
        "title": title,
        "description": description,
        "reporter": reporter,
        "steps_to_reproduce": steps,
        "expected_behavior": expected,
        "actual_behavior": actual,
        "environment": environment,
    }
    report.update({k: v for k, v in flags.items() if v})
    if "id" not in report:
        import uuid

        report["id"] = f"cli-{uuid.uuid4().hex[:12]}"
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    body = _call("POST", f"{_url(url)}/api/v1/bug-reports", json=report, headers=headers)
    if raw:
        console.print_json(data=body)
        return
    console.print(f"[green]{body['message']}[/green]: request [bold]{body['request_id']}[/bold]")
    console.print(f"follow it with: ai-pipeline status {body['request_id']}")


@app.command()
def status(
    request_id: Annotated[str, typer.Argument()],
    url: UrlOption = None,
    raw: JsonFlag = False,
) -> None:
    """Show one request's status, step by step."""
    body = _call("GET", f"{_url(url)}/api/v1/requests/{request_id}/status")
    if raw:
        console.print_json(data=body)
        return
    console.print(
        f"[bold]{body['request_id']}[/bold] ({body['bug_report_id']}): "
        f"[bold]{body['status']}[/bold], step {body['current_step']}"
    )
    table = Table("step", "status", "at")
    for step, progress in body["progress"].items():
        table.add_row(step, progress["status"], progress["timestamp"])
    console.print(table)
    triage = body["progress"].get("triage", {}).get("data")
    if triage:
        band = TriageResult.model_validate(triage).security_band.value
        console.print(
            f"triage: {triage['type']}, priority {triage.get('priority') or '–'}, severity "
            f"{triage.get('severity') or '–'}, category {triage['category']}, security {band}"
            f", labels {', '.join(triage['labels'])}",
            markup=False,
        )
        for field, reason in (triage.get("reasons") or {}).items():
            console.print(f"  {field}: {reason}", markup=False, highlight=False)
    if body.get("github_issue_url"):
        console.print(f"issue #{body['github_issue_number']}: {body['github_issue_url']}")
    resolution = body.get("resolution")
    if resolution:
        duplicate = resolution.get("duplicate_issue_number")
        of = f" of #{duplicate}" if duplicate else ""
        console.print(f"resolution: {resolution['state']}{of} ({resolution['at']})")
    needs_info = body.get("needs_info")
    if needs_info:
        left = [q for q in needs_info["questions"] if q not in needs_info["answered"]]
        console.print(
            f"questions: {len(needs_info['questions'])} asked, {len(left)} open"
            f" ({', '.join(left) or 'all answered'}); {len(needs_info['reply_ids'])} replies"
        )
    if body.get("error_message"):
        console.print(f"[red]{body['error_message']}[/red]")


@app.command()
def requests(
    state: Annotated[str, typer.Option("--status", help="active|completed|failed|all")] = "active",
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    url: UrlOption = None,
    raw: JsonFlag = False,
) -> None:
    """List requests."""
    params: dict[str, str | int] = {"status": state, "limit": limit, "offset": offset}
    body = _call("GET", f"{_url(url)}/api/v1/requests", params=params)
    if raw:
        console.print_json(data=body)
        return
    table = Table("request", "report", "status", "step", "issue", "created")
    for r in body["requests"]:
        table.add_row(
            r["request_id"],
            r["bug_report_id"],
            r["status"],
            r["current_step"],
            str(r["github_issue_number"] or ""),
            r["created_at"],
        )
    console.print(table)
    p = body["pagination"]
    console.print(f"{len(body['requests'])} of {p['total']} (offset {p['offset']})")


class IssueAction(StrEnum):
    CLOSE = "close"
    REOPEN = "reopen"
    COMMENT = "comment"
    LABEL = "label"


@app.command()
def issues(
    what: Annotated[
        str | None,
        typer.Argument(
            metavar="NUMBER|close|reopen|comment|label",
            help="Show issue NUMBER in full, or act on issue N",
            show_default=False,
        ),
    ] = None,
    number: Annotated[int | None, typer.Argument(metavar="N", show_default=False)] = None,
    reason: Annotated[
        CloseReason, typer.Option(help="close: completed (fixed), not_planned or duplicate")
    ] = CloseReason.COMPLETED,
    duplicate_of: Annotated[
        int | None, typer.Option("--duplicate-of", help="close --reason duplicate: of issue #")
    ] = None,
    text: Annotated[str | None, typer.Option("--text", help="comment: what to say")] = None,
    add: Annotated[list[str] | None, typer.Option("--add", help="label: add (repeat)")] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="label: remove (repeat)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    url: UrlOption = None,
    raw: JsonFlag = False,
) -> None:
    """What the built-in local tracker holds; close, reopen, comment on and label its
    issues as a maintainer (a close or reopen updates the requests' resolution)."""
    base = f"{_url(url)}/api/v1/issues"
    if what is not None and not what.isdigit():
        try:
            action = IssueAction(what)
        except ValueError:
            err.print(f"[red]not an issue number nor an action: {what!r}[/red]")
            raise typer.Exit(2) from None
        if number is None:
            err.print(f"[red]issues {action.value} needs the issue's number[/red]")
            raise typer.Exit(2)
        if action is IssueAction.COMMENT and not text:
            err.print("[red]issues comment needs --text[/red]")
            raise typer.Exit(2)
        bodies: dict[IssueAction, tuple[str, dict[str, Any] | None]] = {
            IssueAction.CLOSE: ("close", {"reason": reason.value, "duplicate_of": duplicate_of}),
            IssueAction.REOPEN: ("reopen", None),
            IssueAction.COMMENT: ("comments", {"body": text}),
            IssueAction.LABEL: ("labels", {"add": add or [], "remove": remove or []}),
        }
        path, payload = bodies[action]
        body = _call("POST", f"{base}/{number}/{path}", json=payload)
        if raw:
            console.print_json(data=body)
            return
        _print_issue_change(action, number, body)
        return
    if what is not None:
        body = _call("GET", f"{base}/{int(what)}")
        if raw:
            console.print_json(data=body)
            return
        console.print(
            f"[bold]#{body['number']} {body['title']}[/bold]  "
            f"[cyan]{', '.join(body['labels'])}[/cyan]  {_issue_state(body)}"
        )
        console.print(body["body"], markup=False, highlight=False)
        return
    body = _call("GET", base, params={"limit": limit, "offset": offset})
    if raw:
        console.print_json(data=body)
        return
    table = Table("#", "title", "labels", "state", "request")
    for i in body["issues"]:
        table.add_row(
            str(i["number"]), i["title"], ", ".join(i["labels"]), _issue_state(i), i["request_id"]
        )
    console.print(table)
    console.print(f"{len(body['issues'])} of {body['pagination']['total']}")


def _issue_state(issue: dict[str, Any]) -> str:
    if issue.get("state") != "closed":
        return str(issue.get("state", ""))
    reason = issue.get("state_reason") or "closed"
    duplicate = issue.get("duplicate_of")
    return f"closed ({reason}{f' of #{duplicate}' if duplicate else ''})"


def _print_issue_change(action: IssueAction, number: int, body: dict[str, Any]) -> None:
    if action is IssueAction.COMMENT:
        console.print(f"commented on #{number} (comment {body['comment_id']})")
        return
    if action is IssueAction.LABEL:
        console.print(f"#{number} labels: {', '.join(body['labels']) or 'none'}")
        return
    done = "" if body.get("changed") else " (it already was)"
    requests = ", ".join(body.get("requests", [])) or "none"
    console.print(f"#{number}: {_issue_state(body)}{done}; requests updated: {requests}")


@app.command("dead-letters")
def dead_letters(
    topic: Annotated[
        str | None, typer.Option(help="One dead-letter topic, e.g. bug-reports.dlq")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    raw: JsonFlag = False,
) -> None:
    """Messages that could not be processed, newest first, with the reason (reads the bus)."""
    import asyncio

    from ai_pipeline.bootstrap import bootstrap
    from ai_pipeline.domain.events import Topic

    topics = [topic] if topic else [t.dead_letter for t in Topic]

    async def read() -> list[dict[str, Any]]:
        c = bootstrap(Settings())
        await c.bus.start()
        try:
            found = [m for t in topics for m in await c.bus.peek(t, limit)]
        finally:
            await c.bus.close()
        return [
            {
                "topic": m.topic,
                "key": m.key,
                "at": m.timestamp,
                "reason": m.headers.get("dlq-reason"),
                "agent": m.headers.get("dlq-agent"),
                "attempts": m.headers.get("dlq-attempts"),
                "source": "{}/{}@{}".format(
                    m.headers.get("dlq-source-topic"),
                    m.headers.get("dlq-source-partition"),
                    m.headers.get("dlq-source-offset"),
                ),
            }
            for m in sorted(found, key=lambda m: -m.timestamp)[:limit]
        ]

    rows = asyncio.run(read())
    if raw:
        console.print_json(data=rows)
        return
    table = Table("topic", "request", "agent", "attempts", "reason")
    for r in rows:
        table.add_row(
            r["topic"], r["key"], r["agent"] or "", r["attempts"] or "", r["reason"] or ""
        )
    console.print(table)
    console.print(f"{len(rows)} dead letters shown")


state_app = typer.Typer(help="The state store: a view of the status-updates log.")
app.add_typer(state_app, name="state")


@state_app.command("flush")
def state_flush(
    yes: Annotated[bool, typer.Option("--yes", help="Really empty the store")] = False,
) -> None:
    """Empty the Redis state store but for what the log cannot give back (API keys, report
    id lookups), before `state rebuild`: the runbook's emergency procedure. Only the keys under
    AI_PIPELINE_REDIS_KEY_PREFIX go (the whole database when it is unset)."""
    import asyncio

    from ai_pipeline.bootstrap import is_redis

    settings = Settings()
    if not is_redis(settings.state):
        state = _safe_url(settings.state)
        err.print(f"[red]state flush is for the Redis state store[/red]; the state is {state}")
        raise typer.Exit(2)
    if not yes:
        err.print("[red]this removes every request's state:[/red] add --yes, then `state rebuild`")
        raise typer.Exit(2)

    from ai_pipeline.adapters.redis_client import connect
    from ai_pipeline.adapters.state.redis_flush import flush_state

    async def run() -> Any:
        redis = connect(settings.state, max_connections=2)
        try:
            return await flush_state(redis, settings.redis_key_prefix)
        finally:
            await redis.aclose()

    flushed = asyncio.run(run())
    console.print(
        f"removed {flushed.removed} keys under prefix {settings.redis_key_prefix!r}"
        f" (kept {flushed.kept} the log cannot give back: API keys, report-id lookups;"
        " other prefixes untouched)",
        soft_wrap=True,  # one line, whatever the terminal's width: scripts grep it
    )


@state_app.command("rebuild")
def state_rebuild() -> None:
    """Restore every request's state (and report, and filing ledger) from the log.

    Safe while the service runs: replaying an event twice changes nothing. After an
    emergency `state flush`, run this before restarting the tracker agents."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ai_pipeline.bootstrap import started
    from ai_pipeline.rebuild import rebuild_state

    async def run() -> Any:
        async with started(Settings()) as c:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
            ) as bar:
                tasks: dict[str, Any] = {}

                def tick(phase: str, done: int) -> None:
                    if phase not in tasks:
                        tasks[phase] = bar.add_task(f"replaying {phase}", total=None)
                    bar.advance(tasks[phase], done)

                return await rebuild_state(c.bus, c.store, tick, c.loop)

    report = asyncio.run(run())
    console.print(
        f"rebuilt {len(report.requests)} requests from {report.events} status events"
        f" ({report.changed} changed the store), {report.reports} reports restored,"
        f" ledger: {report.ledger_filed} filed, {report.ledger_pending} to reconcile;"
        f" {report.conversations} conversations, {report.deliveries_requeued} notifications"
        " due again" + (f"; {report.skipped} unreadable messages skipped" if report.skipped else "")
    )


report_app = typer.Typer(help="Reports built from the state store's stored per-day counters.")
app.add_typer(report_app, name="report")


@report_app.command("daily")
def report_daily(
    day: Annotated[
        str | None, typer.Option("--date", help="YYYY-MM-DD (UTC); default today")
    ] = None,
    raw: JsonFlag = False,
) -> None:
    """One day's figures: reports processed, success and error rates, processing and
    response times, bus messages, state-store operations, LLM calls. Exit 1 when nothing
    was recorded for the day."""
    import asyncio
    from datetime import date

    from ai_pipeline.bootstrap import bootstrap
    from ai_pipeline.reporting import daily_report, today

    try:
        wanted = date.fromisoformat(day) if day else today()
    except ValueError:
        err.print(f"[red]--date must be YYYY-MM-DD, not {day!r}[/red]")
        raise typer.Exit(2) from None

    async def read() -> dict[str, Any] | None:
        c = bootstrap(Settings())
        await c.store.start()
        try:
            report = await daily_report(c.store, wanted)
        finally:
            await c.store.close()
            for db in c.databases:
                await db.close()
        return None if report is None else report.figures()

    figures = asyncio.run(read())
    if figures is None:
        err.print(f"[red]no daily figures recorded for {wanted.isoformat()}[/red]")
        raise typer.Exit(1)
    if raw:
        typer.echo(json.dumps(figures, indent=2))
        return
    table = Table("figure", "value", title=f"Daily report {wanted.isoformat()}")
    for name, value in figures.items():
        if name != "date":
            table.add_row(name, "-" if value is None else str(value))
    console.print(table)


def _register_commands() -> None:
    from ai_pipeline import keys_commands, loop_commands, redrive_commands, review_commands
    from ai_pipeline.triage import commands

    commands.register(app)
    keys_commands.register(app)
    review_commands.register(app)
    loop_commands.register(app)
    redrive_commands.register(app)


_register_commands()


def main() -> None:
    # A crash in native code (librdkafka, onnxruntime) then leaves every thread's Python
    # stack on stderr instead of a bare "exited with -11": an API process was seen to die
    # so at start, once in several runs, against a freshly started broker.
    faulthandler.enable()
    app()


if __name__ == "__main__":
    main()
