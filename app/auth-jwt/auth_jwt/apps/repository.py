"""SQL for apps and their secrets. No rules of the domain here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_jwt.models import App, AppSecret, Revocation
from edgelib.uow import after_commit


class AppRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def on_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        after_commit(self.session, action)

    async def get(self, client_id: str) -> App | None:
        return await self.session.get(App, client_id)

    async def of_tenant(self, tenant: str | None) -> list[App]:
        query = select(App).order_by(App.created_at, App.client_id)
        if tenant is not None:
            query = query.where(App.tenant == tenant)
        return list((await self.session.scalars(query)).all())

    async def add(self, app: App, secret: AppSecret) -> None:
        self.session.add(app)
        await self.session.flush()
        self.session.add(secret)
        await self.session.flush()

    async def add_secret(self, secret: AppSecret) -> None:
        self.session.add(secret)
        await self.session.flush()

    async def live_secrets(self, client_id: str, now: datetime) -> list[AppSecret]:
        """The app's secrets that still open it: current, or within their overlap."""
        rows = await self.session.scalars(
            select(AppSecret).where(
                AppSecret.client_id == client_id,
                or_(AppSecret.expires_at.is_(None), AppSecret.expires_at > now),
            )
        )
        return list(rows.all())

    async def expire_secrets(self, client_id: str, until: datetime) -> None:
        """End every current or later-ending secret of the app at ``until``."""
        await self.session.execute(
            update(AppSecret)
            .where(
                AppSecret.client_id == client_id,
                or_(AppSecret.expires_at.is_(None), AppSecret.expires_at > until),
            )
            .values(expires_at=until)
        )

    async def revoke_tokens(self, app: App, *, now: datetime, expires_at: datetime) -> None:
        """Record the app's token ``sid`` as revoked, as the sessions' revocations are."""
        self.session.add(
            Revocation(
                session_id=app.token_sid,
                user_id=app.client_id,
                reason="app-disabled",
                revoked_at=now,
                expires_at=expires_at,
            )
        )
        await self.session.flush()
