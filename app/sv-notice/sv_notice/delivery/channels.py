"""What a delivery channel is given, what it may raise, and the realtime channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from edgelib.backends import BackendError


@dataclass(frozen=True, slots=True)
class NoticeView:
    id: str
    user_id: str
    category: str
    title: str
    body: str
    locale: str
    data: dict[str, Any]
    created_at: datetime
    read: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "category": self.category,
            "title": self.title,
            "body": self.body,
            "locale": self.locale,
            "data": self.data,
            "created_at": self.created_at.isoformat(),
            "read": self.read,
        }


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One attempt of one channel of one notice, with the contact point it needs."""

    delivery_id: str
    channel: str
    attempt: int
    notice: NoticeView
    email: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None


class DeliveryFailed(Exception):
    """An attempt failed; ``permanent`` ones are not retried. ``reason`` holds no secret."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Channel(Protocol):
    async def send(self, job: DeliveryJob) -> None: ...


class RealtimePublisher(Protocol):
    async def publish(self, user_id: str, event: dict[str, Any]) -> None: ...


class RealtimeChannel:
    """Publishes the notice to the user's connected clients, on every instance."""

    def __init__(self, hub: RealtimePublisher) -> None:
        self.hub = hub

    async def send(self, job: DeliveryJob) -> None:
        try:
            await self.hub.publish(
                job.notice.user_id, {"type": "notice", "notice": job.notice.to_json()}
            )
        except BackendError as exc:
            raise DeliveryFailed(f"realtime publish failed: {exc}") from exc
