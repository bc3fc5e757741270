"""Announcing ended sessions to the gateways.

Two paths, so a gateway never depends on one: a message on the backend's pub/sub
channel (Redis: every gateway hears it at once), and the ``revocations`` table the
gateways poll through ``GET /internal/revocations`` (the only path that crosses
processes with the in-process backend of the local profile).
"""

from __future__ import annotations

import logging

import orjson

from auth_jwt.sessions.schemas import RevocationEntry
from edgelib.backends import Backend, BackendError

logger = logging.getLogger("auth_jwt.revocations")


class RevocationNotices:
    def __init__(self, backend: Backend, channel: str) -> None:
        self.backend = backend
        self.channel = channel

    async def publish(self, entries: list[RevocationEntry]) -> None:
        if not entries:
            return
        message = orjson.dumps({"revocations": [e.model_dump() for e in entries]})
        try:
            await self.backend.publish(self.channel, message)
        except BackendError as exc:
            # Gateways still learn of it from the table within their poll interval.
            logger.warning("revocation not published", extra={"error": str(exc)})
