"""Signed calls from the gateway to the control plane (auth-jwt, auth-rbac).

Over the gateway's own aiohttp session; each call tries the next base URL on failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from edgelib.signing import ServiceSigner


class ControlPlaneService:
    """One control-plane service, reached by signed GETs with failover across its URLs."""

    name = "control plane"
    #: The service's name, which its signatures are made for.
    destination = ""

    def __init__(self, base_urls: list[str], signer: ServiceSigner, *, timeout: float) -> None:
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.signer = signer
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.session: aiohttp.ClientSession | None = None
        self._next = 0

    async def get_json(self, target: str) -> Mapping[str, Any]:
        """The JSON answer to a signed ``GET target``; the last error when every URL fails."""
        assert self.session is not None, f"{self.name} client not bound to a session"
        if not self.base_urls:
            raise LookupError(f"{self.name} has no configured URL")
        error: Exception | None = None
        for _ in range(len(self.base_urls)):
            base = self.base_urls[self._next % len(self.base_urls)]
            headers = self.signer.sign("GET", target, b"", destination=self.destination)
            try:
                async with self.session.get(
                    URL(base + target, encoded=True), headers=headers, timeout=self.timeout
                ) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        doc: Mapping[str, Any] = orjson.loads(body)
                        return doc
                    error = RuntimeError(f"{base}{target.split('?')[0]} answered {resp.status}")
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
                error = exc
            self._next += 1
        assert error is not None
        raise error
