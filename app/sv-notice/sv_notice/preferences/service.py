"""User preferences: which channels each category may use, and where to reach the user.

A switch is stored per (category, channel); ``*`` holds switches for every
category. A category's own switch wins over ``*``; no switch means on. Critical
categories ignore switches entirely, and refuse their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sv_notice.delivery.addresses import Resolver, system_resolver
from sv_notice.delivery.webhook import check_target, new_secret
from sv_notice.exceptions import CategoryNotFound, ChannelNotAllowed, CriticalCategory
from sv_notice.models import utcnow
from sv_notice.preferences.repository import PreferenceRepository
from sv_notice.preferences.schemas import (
    CategoryPreference,
    ContactIn,
    PreferencesOut,
    WebhookOut,
)
from sv_notice.schemas import CHANNELS, Channel
from sv_notice.templates.repository import TemplateRepository

ALL = "*"


@dataclass(frozen=True, slots=True)
class Contact:
    email: str | None = None
    locale: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None


def effective_switches(
    channels: tuple[str, ...], critical: bool, stored: Mapping[tuple[str, str], bool], category: str
) -> dict[str, bool]:
    """On/off per channel of ``category`` after its own and the ``*`` switches."""
    result: dict[str, bool] = {}
    for channel in channels:
        if critical:
            result[channel] = True
            continue
        own = stored.get((category, channel))
        result[channel] = own if own is not None else stored.get((ALL, channel), True)
    return result


class PreferenceService:
    def __init__(
        self,
        repository: PreferenceRepository,
        categories: TemplateRepository,
        *,
        allow_private_webhooks: bool,
        webhook_resolver: Resolver = system_resolver,
    ) -> None:
        self.repository = repository
        self.categories = categories
        self.allow_private_webhooks = allow_private_webhooks
        self.webhook_resolver = webhook_resolver

    async def contact(self, user_id: str) -> Contact:
        row = await self.repository.contact(user_id)
        if row is None:
            return Contact()
        return Contact(row["email"], row["locale"], row["webhook_url"], row["webhook_secret"])

    async def switches(self, user_id: str, category: str) -> dict[tuple[str, str], bool]:
        rows = await self.repository.switches(user_id, [category, ALL])
        return {(r["category"], r["channel"]): bool(r["enabled"]) for r in rows}

    async def view(self, user_id: str) -> PreferencesOut:
        """Contact points, ``*`` switches, and effective switches of every category."""
        contact = await self.contact(user_id)
        stored = {
            (r["category"], r["channel"]): bool(r["enabled"])
            for r in await self.repository.all_switches(user_id)
        }
        categories = []
        for row in await self.categories.categories():
            channels = tuple(row["channels"])
            switches = effective_switches(channels, bool(row["critical"]), stored, row["name"])
            categories.append(
                CategoryPreference(
                    category=row["name"],
                    description=row["description"],
                    critical=bool(row["critical"]),
                    channels=switches,
                )
            )
        return PreferencesOut(
            email=contact.email,
            locale=contact.locale,
            webhook=WebhookOut(url=contact.webhook_url) if contact.webhook_url else None,
            all_categories={c: stored.get((ALL, c), True) for c in CHANNELS},
            categories=categories,
        )

    async def set_contact(self, user_id: str, data: ContactIn) -> PreferencesOut:
        values: dict[str, Any] = data.model_dump(include=data.model_fields_set)
        if values:
            await self.repository.put_contact(user_id, values, utcnow())
        return await self.view(user_id)

    async def set_switches(
        self, user_id: str, category: str, switches: Mapping[Channel, bool]
    ) -> PreferencesOut:
        """Turn channels of one category (or of ``*``) on or off."""
        if category != ALL:
            row = await self.categories.category(category)
            if row is None:
                raise CategoryNotFound(f"no category {category!r}")
            if row["critical"]:
                raise CriticalCategory(f"{category!r} is critical: it reaches every channel")
            refused = sorted(set(switches) - set(row["channels"]))
            if refused:
                raise ChannelNotAllowed(
                    f"{category!r} does not use {', '.join(refused)}", channels=refused
                )
        await self.repository.put_switches(
            user_id, category, {str(k): v for k, v in switches.items()}
        )
        return await self.view(user_id)

    async def set_webhook(self, user_id: str, url: str) -> WebhookOut:
        """Point the user's webhook at ``url`` with a fresh secret, returned this once."""
        await check_target(
            url, allow_private=self.allow_private_webhooks, resolver=self.webhook_resolver
        )
        secret = new_secret()
        await self.repository.put_contact(
            user_id, {"webhook_url": url, "webhook_secret": secret}, utcnow()
        )
        return WebhookOut(url=url, secret=secret)

    async def delete_webhook(self, user_id: str) -> None:
        await self.repository.put_contact(
            user_id, {"webhook_url": None, "webhook_secret": None}, utcnow()
        )
