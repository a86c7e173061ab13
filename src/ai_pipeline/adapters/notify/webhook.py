"""Outgoing webhooks to reporters' URLs, over httpx.

A reporter names the URL, so the service must not become a way into the networks it can
reach: unless ``allow_private`` is set, a URL whose host is or resolves to a loopback,
private, link-local (cloud metadata), multicast or reserved address is refused before any
byte is sent, and redirects are never followed. (A host that resolves differently at
connect time than when checked could still slip through; deployments that care add an
egress policy: deploy/k8s/base/networkpolicies.yaml.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from ai_pipeline.loop_ports import SendResult

# Answers worth another try: the receiver is busy, rate-limits us, or failed.
_RETRYABLE = frozenset({408, 425, 429})


class HttpWebhookSender:
    def __init__(self, timeout: float = 10.0, allow_private: bool = False):
        self._allow_private = allow_private
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        refused = await self._refused(url)
        if refused is not None:
            return refused
        try:
            response = await self._client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            return SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:500])
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(ok=True, detail=str(status))
        retry = status >= 500 or status in _RETRYABLE
        return SendResult(ok=False, permanent=not retry, detail=f"the receiver answered {status}")

    async def _refused(self, url: str) -> SendResult | None:
        if self._allow_private:
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, ValueError) as exc:  # DNS may be back later
            return SendResult(ok=False, detail=f"cannot resolve {host!r}: {exc}")
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if not address.is_global:
                detail = f"{host!r} is a non-public address ({address}): refused"
                return SendResult(ok=False, permanent=True, detail=detail)
        return None

    async def close(self) -> None:
        await self._client.aclose()
