"""The calling user's notification preferences and contact points."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from edgelib.deps import CurrentUser
from sv_notice.deps import PreferencesDep
from sv_notice.preferences.schemas import (
    ChannelSwitches,
    ContactIn,
    PreferencesOut,
    WebhookIn,
    WebhookOut,
)
from sv_notice.schemas import PreferenceCategory

router = APIRouter(prefix="/api/v1/notices/preferences", tags=["preferences"])


@router.get("", response_model=PreferencesOut)
async def preferences(user: CurrentUser, service: PreferencesDep) -> PreferencesOut:
    """Contact points, and which channels each category reaches you on."""
    return await service.view(user.user_id)


@router.put("/contact", response_model=PreferencesOut)
async def set_contact(
    body: ContactIn, user: CurrentUser, service: PreferencesDep
) -> PreferencesOut:
    """Set your email address and locale (fields left out stay; null clears)."""
    return await service.set_contact(user.user_id, body)


@router.put("/categories/{category}", response_model=PreferencesOut)
async def set_switches(
    category: Annotated[PreferenceCategory, Path()],
    body: ChannelSwitches,
    user: CurrentUser,
    service: PreferencesDep,
) -> PreferencesOut:
    """Turn channels of one category, or of every category (``*``), on or off."""
    return await service.set_switches(user.user_id, category, body.channels)


@router.put("/webhook", response_model=WebhookOut)
async def set_webhook(body: WebhookIn, user: CurrentUser, service: PreferencesDep) -> WebhookOut:
    """Send your notices to a webhook; the answer holds its signing secret, shown once."""
    return await service.set_webhook(user.user_id, body.url)


@router.delete("/webhook", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(user: CurrentUser, service: PreferencesDep) -> Response:
    """Stop sending your notices to a webhook."""
    await service.delete_webhook(user.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
