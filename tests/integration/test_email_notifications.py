"""Email notifications through a real SMTP server (aiosmtpd: STARTTLS or TLS, AUTH): the
message is parsed as it arrives; its links (the issue, the reply form's token, the
unsubscribe link) work against the service; a private report's email says nothing of it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from ai_pipeline.adapters.notify.smtp import SmtpMailer
from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import bootstrap
from ai_pipeline.domain import notify_plan
from ai_pipeline.domain.links import address_key
from ai_pipeline.domain.models import Notify
from ai_pipeline.drafting.notification_email import render_email
from ai_pipeline.settings import Settings
from tests.conftest import make_settings
from tests.factories import report_dict
from tests.fakes.loop import conversation
from tests.fakes.smtp_server import PASSWORD, USER, SmtpServer

URL = re.compile(r"https?://\S+")


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path) as server:
        yield server


def wait(check: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    markup = message.get_body(("html",))
    assert plain is not None and markup is not None
    return plain.get_content(), markup.get_content()


def service_settings(tmp_path: Path, server: SmtpServer, **extra: Any) -> Settings:
    return make_settings(
        f"sqlite:///{tmp_path / 'p.db'}",
        smtp_url=server.url,
        smtp_from="pipeline@example.org",
        smtp_username=USER,
        smtp_password=PASSWORD,
        smtp_ca_file=str(server.cert),
        **extra,
    )


def mailer(server: SmtpServer, password: str = PASSWORD) -> SmtpMailer:
    return SmtpMailer(server.url, username=USER, password=password, ca_file=str(server.cert))


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "tls"])
async def test_the_mailer_authenticates_over_tls_and_the_message_arrives_whole(
    tmp_path: Path, implicit_tls: bool
) -> None:
    with SmtpServer(tmp_path, implicit_tls=implicit_tls) as server:
        c = conversation(notify=Notify(email=True))
        (n,) = notify_plan.filed(c, c.filed_at)
        message = render_email(
            n,
            sender="AI Pipeline <pipeline@example.org>",
            reply_url="http://localhost:8000/console/request.html?id=r-1#token=rt_x",
            unsubscribe_url="http://localhost:8000/api/v1/unsubscribe?a=x&s=y",
        )
        assert (await mailer(server).send(message)).ok
        refused = await mailer(server, "wrong").send(message)
        assert not refused.ok and not refused.permanent  # an operator's to fix: retried
    assert server.inbox.logins == [("PLAIN", True), ("PLAIN", False)]
    (got,) = server.inbox.messages
    assert server.inbox.recipients == [[c.reporter]]
    assert got["Subject"] == f"Your report {c.bug_report_id} was filed as issue #7"
    assert got["Message-ID"] == f"<{n.delivery_id}@example.org>"
    assert got["List-Unsubscribe"] == "<http://localhost:8000/api/v1/unsubscribe?a=x&s=y>"
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain, markup = parts(got)
    assert c.issue_url in plain and "#token=rt_x" in plain
    assert all(q in plain for q in n.questions)
    assert f'<a href="{c.issue_url}">' in markup


def test_a_reporter_hears_back_by_email_and_its_links_and_unsubscribe_work(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    container = bootstrap(service_settings(tmp_path, smtp, notify_sweep_seconds=0.1))
    inbox = smtp.inbox
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        # No steps and no environment: the issue is filed with questions.
        body = report_dict(notify={"email": True}, steps_to_reproduce=None, environment=None)
        accepted = client.post("/api/v1/bug-reports", json=body).json()
        rid = accepted["request_id"]
        wait(lambda: len(inbox.messages) == 1)
        message = inbox.messages[0]
        plain, _markup = parts(message)
        assert body["title"] not in plain  # the link and questions, not the report again
        issue_url, reply_url, unsubscribe_url = URL.findall(plain)
        issue = client.get(urlsplit(issue_url).path)
        assert issue.status_code == 200 and issue.json()["request_id"] == rid
        # The reply link carries the token the submission answered with.
        assert reply_url.endswith(f"#token={accepted['reply_token']}")
        answered = client.post(
            f"/api/v1/requests/{rid}/replies",
            json={"text": "Ubuntu 24.04.\n1. Open a 2 GB file\n2. Press Ctrl+S"},
            headers={"X-Reply-Token": reply_url.partition("#token=")[2]},
        )
        assert answered.status_code == 202 and answered.json()["questions_remaining"] == []
        assert message["List-Unsubscribe"] == f"<{unsubscribe_url}>"
        path = unsubscribe_url.removeprefix(container.settings.base_url)
        page = client.get(path)
        assert page.status_code == 200 and "<form" in page.text
        tampered = path.replace("&s=", "&s=A")
        assert client.post(tampered).json()["error"]["code"] == "INVALID_REQUEST"
        assert client.post(path).status_code == 200
        assert client.portal is not None
        opted = client.portal.call(container.loop.store.opted_out, address_key(body["reporter"]))
        assert opted
        # Resolved: the reporter unsubscribed, so no second email is sent.
        number = issue.json()["number"]
        closed = client.post(f"/api/v1/issues/{number}/close", json={"reason": "completed"})
        assert closed.status_code == 200 and closed.json()["requests"] == [rid]
        wait(
            lambda: (
                client.get(f"/api/v1/requests/{rid}/status").json()["resolution"]["state"]
                == "fixed"
            )
        )

        def suppressed() -> float:
            value = container.metrics.registry.get_sample_value(
                "ai_pipeline_notifications_total",
                {"channel": "email", "event": "resolved", "outcome": "suppressed"},
            )
            return value or 0.0

        wait(lambda: suppressed() == 1)
        assert len(inbox.messages) == 1


def test_a_private_reports_email_says_nothing_of_it(tmp_path: Path, smtp: SmtpServer) -> None:
    settings = service_settings(tmp_path, smtp)
    with TestClient(create_app(bootstrap(settings)), raise_server_exceptions=False) as client:
        body = report_dict(
            notify={"email": True},
            title="SQL injection in the login form leaks every password hash",
            description="Entering ' OR 1=1 -- as the user name logs in as admin. CVE pending.",
        )
        rid = client.post("/api/v1/bug-reports", json=body).json()["request_id"]
        wait(lambda: len(smtp.inbox.messages) == 1)
        doc = client.get(f"/api/v1/requests/{rid}/status").json()
        assert doc["progress"]["triage"]["data"]["security_sensitive"] is True
    message = smtp.inbox.messages[0]
    plain, markup = parts(message)
    assert message["Subject"] == f"Your report {body['id']} was received"
    assert "received, under review" in plain
    for secret in ("SQL", "login", "password", "injection", doc["github_issue_url"]):
        assert secret not in plain and secret not in markup and secret not in message["Subject"]
    assert URL.findall(plain) == [message["List-Unsubscribe"].strip("<>")]
