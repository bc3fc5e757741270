"""SQL of the users domain."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sv_user.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def by_username(self, username: str) -> User | None:
        result = await self.session.execute(select(User).where(User.username == username))
        return result.scalar_one_or_none()

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def page(self, *, after: str | None, limit: int) -> list[User]:
        """Users ordered by username, starting after ``after``."""
        query = select(User).order_by(User.username).limit(limit)
        if after is not None:
            query = query.where(User.username > after)
        return list((await self.session.execute(query)).scalars())

    async def flush(self) -> None:
        await self.session.flush()
