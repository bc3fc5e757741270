"""Sending a notice: de-duplicate, render, apply preferences, write the notice and its outbox.

Everything that can refuse a send (unknown category, no template, variables that
do not match, a channel the category does not use) is checked before anything is
written. The notice and one delivery row per channel are written in the caller's
transaction; queued deliveries are handed to the queue after it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sv_notice.delivery.repository import DeliveryRepository
from sv_notice.exceptions import ChannelNotAllowed, DedupKeyConflict, UnknownCategory
from sv_notice.models import notices, upsert, utcnow
from sv_notice.preferences.service import Contact, PreferenceService, effective_switches
from sv_notice.schemas import CHANNELS, QUEUED_CHANNELS
from sv_notice.templates.service import TemplateService


@dataclass(frozen=True, slots=True)
class SendCommand:
    user_id: str
    category: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    locale: str | None = None
    dedup_key: str | None = None
    #: Only these channels (each must be one the category uses); None: all of them.
    channels: Sequence[str] | None = None
    source: str = "admin"


@dataclass(frozen=True, slots=True)
class SendOutcome:
    notice_id: str
    duplicate: bool
    #: Delivery ids to hand to the queue once the transaction commits.
    queued: list[str] = field(default_factory=list)


def _unreachable(channel: str, contact: Contact, available: frozenset[str]) -> str | None:
    """Why ``channel`` cannot reach this user at all, if it cannot."""
    if channel not in available:
        return f"the {channel} channel is not configured"
    if channel == "email" and not contact.email:
        return "no email address is set"
    if channel == "webhook" and not contact.webhook_url:
        return "no webhook endpoint is set"
    return None


class NoticeSender:
    def __init__(
        self,
        session: AsyncSession,
        templates: TemplateService,
        preferences: PreferenceService,
        *,
        available_channels: frozenset[str] = frozenset(CHANNELS),
    ) -> None:
        self.session = session
        self.templates = templates
        self.preferences = preferences
        self.deliveries = DeliveryRepository(session)
        self.available = available_channels

    async def _existing(self, command: SendCommand) -> SendOutcome | None:
        if command.dedup_key is None:
            return None
        row = (
            await self.session.execute(
                select(notices.c.id, notices.c.user_id).where(
                    notices.c.dedup_key == command.dedup_key
                )
            )
        ).first()
        if row is None:
            return None
        if row.user_id != command.user_id:
            raise DedupKeyConflict("this de-duplication key was used for another recipient")
        return SendOutcome(notice_id=row.id, duplicate=True)

    async def send(self, command: SendCommand) -> SendOutcome:
        """Create the notice once per de-duplication key, with one delivery per channel."""
        existing = await self._existing(command)
        if existing is not None:
            return existing
        category = await self.templates.category(command.category)
        if category is None:
            raise UnknownCategory(f"no category {command.category!r}")
        channels = list(category.channels)
        if command.channels is not None:
            refused = sorted(set(command.channels) - set(channels))
            if refused:
                raise ChannelNotAllowed(
                    f"{category.name!r} does not use {', '.join(refused)}", channels=refused
                )
            channels = [c for c in channels if c in command.channels]
        contact = await self.preferences.contact(command.user_id)
        rendered = await self.templates.render(
            category.name, command.locale or contact.locale, command.variables
        )
        switches = effective_switches(
            tuple(channels),
            category.critical,
            await self.preferences.switches(command.user_id, category.name),
            category.name,
        )
        now = utcnow()
        notice_id = str(uuid.uuid4())
        insert = upsert(
            self.session.get_bind().dialect.name,
            notices,
            {
                "id": notice_id,
                "user_id": command.user_id,
                "category": category.name,
                "title": rendered.title,
                "body": rendered.body,
                "locale": rendered.locale,
                "data": dict(command.variables),
                "dedup_key": command.dedup_key,
                "in_inbox": switches.get("in_app", False),
                "source": command.source[:64],
                "created_at": now,
                "read_at": None,
            },
            ["dedup_key"],
            [],
        )
        result = await self.session.execute(insert)
        if not getattr(result, "rowcount", 1):
            # Another request with the same key won the race.
            raced = await self._existing(command)
            assert raced is not None
            return raced
        rows: list[dict[str, Any]] = []
        queued: list[str] = []
        for channel in channels:
            row: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "notice_id": notice_id,
                "user_id": command.user_id,
                "channel": channel,
                "attempts": 0,
                "status": "sent",
                "next_attempt_at": None,
                "sent_at": None,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
            }
            blocked = _unreachable(channel, contact, self.available)
            if not switches.get(channel, False):
                row.update(status="suppressed", last_error="turned off in the user's preferences")
            elif blocked is not None:
                row.update(status="suppressed", last_error=blocked)
            elif channel in QUEUED_CHANNELS:
                row.update(status="queued", next_attempt_at=now)
                queued.append(row["id"])
            else:
                row.update(status="sent", sent_at=now)
            rows.append(row)
        await self.deliveries.create(rows)
        return SendOutcome(notice_id=notice_id, duplicate=False, queued=queued)
