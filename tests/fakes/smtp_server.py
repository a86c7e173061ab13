"""A real SMTP server (aiosmtpd) that keeps what it receives: STARTTLS or TLS with a
self-signed certificate, and AUTH with one user."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.service import free_port
from tests.tls import self_signed

USER, PASSWORD = "pipeline", "smtp-password-1"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.logins: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        with self.lock:
            self.logins.append((mechanism, ok))
        return AuthResult(success=ok)


class SmtpServer:
    """``implicit_tls``: TLS from the first byte (smtps://); else STARTTLS, required."""

    def __init__(self, directory: Path, implicit_tls: bool = False):
        self.cert, key = self_signed(directory, 30)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.inbox = Inbox()
        self.port = free_port()
        tls: dict[str, Any] = (
            {"ssl_context": context}
            if implicit_tls
            else {"tls_context": context, "require_starttls": True}
        )
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.inbox.authenticate,
            auth_required=True,
            # aiosmtpd counts only STARTTLS as TLS: over implicit TLS it would never offer
            # AUTH (it warns about that setting: the test that uses it silences that).
            auth_require_tls=not implicit_tls,
            **tls,
        )
        self.url = f"{'smtps' if implicit_tls else 'smtp'}://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
