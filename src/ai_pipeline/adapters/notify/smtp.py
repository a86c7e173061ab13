"""Email through an SMTP server (``AI_PIPELINE_SMTP_URL``), with the standard library.

- ``smtps://host[:465]``: TLS from the first byte;
- ``smtp://host[:587]``: STARTTLS, required (a server that does not offer it is an error,
  never a silent fall back to plain text);
- ``smtp://host:25?starttls=false``: plain, for a relay on the same host or network.

The certificate is verified against the system's authorities, or ``ca_file``. A user name
and password, when given, come from the environment (``AI_PIPELINE_SMTP_USERNAME`` /
``_PASSWORD``), never from the URL. Each message opens its own connection on a worker
thread: notifications are few, and a connection kept open would die idle between them.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

from ai_pipeline.loop_ports import SendResult


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("AI_PIPELINE_SMTP_URL must be smtp://host[:port] or smtps://host")
        if parts.username or parts.password:
            raise ValueError(
                "AI_PIPELINE_SMTP_URL carries no credentials: set AI_PIPELINE_SMTP_USERNAME"
                " and AI_PIPELINE_SMTP_PASSWORD"
            )
        implicit = parts.scheme == "smtps"
        flag = parse_qs(parts.query).get("starttls", ["true"])[-1].lower()
        starttls = not implicit and flag not in ("false", "0", "no", "off")
        return cls(parts.hostname, parts.port or (465 if implicit else 587), implicit, starttls)


class SmtpMailer:
    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        timeout: float = 30.0,
    ):
        self.target = SmtpTarget.from_url(url)
        self._username = username
        self._password = password
        self._ca_file = ca_file
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> SendResult:
        try:
            await asyncio.to_thread(self._send, message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(500 <= code < 600 for code in codes)
            return SendResult(ok=False, permanent=permanent, detail=f"recipient refused: {codes}")
        except smtplib.SMTPResponseException as exc:
            # 5xx to the message itself is final; a refused login is an operator's to fix,
            # so it is retried (and dead-lettered after the retry window, then redriven).
            final = 500 <= exc.smtp_code < 600 and not isinstance(
                exc, smtplib.SMTPAuthenticationError
            )
            return SendResult(ok=False, permanent=final, detail=f"SMTP {exc.smtp_code}")
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:500])
        return SendResult(ok=True)

    def _send(self, message: EmailMessage) -> None:
        t = self.target
        context = ssl.create_default_context(cafile=self._ca_file)
        smtp: smtplib.SMTP
        if t.implicit_tls:
            smtp = smtplib.SMTP_SSL(t.host, t.port, timeout=self._timeout, context=context)
        else:
            smtp = smtplib.SMTP(t.host, t.port, timeout=self._timeout)
        with smtp:
            smtp.ehlo()
            if t.starttls:
                smtp.starttls(context=context)  # raises SMTPNotSupportedError if not offered
                smtp.ehlo()
            if self._username:
                smtp.login(self._username, self._password or "")
            smtp.send_message(message)
