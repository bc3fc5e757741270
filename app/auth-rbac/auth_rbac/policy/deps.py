"""Dependencies of the policy endpoints."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from auth_rbac.policy.enforcer import DEFAULT_DOMAIN, PolicySnapshot
from auth_rbac.policy.exceptions import NotPolicyAdmin
from auth_rbac.policy.repository import CHANGED_KEY
from auth_rbac.policy.service import ADMIN_PERMISSION
from auth_rbac.policy.sync import PolicySync
from edgelib.db import Database
from edgelib.deps import CurrentUser
from edgelib.identity import Identity

logger = logging.getLogger("auth_rbac.policy")


def _sync(request: Request) -> PolicySync:
    sync: PolicySync = request.app.state.policy_sync
    return sync


def _snapshot(request: Request) -> PolicySnapshot:
    return _sync(request).snapshot


async def _change_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for a policy change: committed, then applied here and announced.

    Runs with ``scope="function"``, so all of this happens before the response is
    sent: a client that got its answer can read its own write from this instance.
    """
    database: Database = request.app.state.database
    async with database.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        changed = session.info.pop(CHANGED_KEY, False)
    if changed:
        try:
            await _sync(request).after_change()
        except Exception:
            # Committed all the same: the next poll, here and everywhere, picks it up.
            logger.exception("policy change committed but not applied at once")


def caller_domain(identity: Identity) -> str:
    """The domain the caller acts in: its active tenant (``default`` without one)."""
    return identity.tenant or DEFAULT_DOMAIN


async def _policy_admin(request: Request, identity: CurrentUser) -> Identity:
    """The gateway-verified caller, who must hold rbac:admin in its own tenant's domain
    (the gateway checks too); which domains it may then touch, ``in_scope`` says."""
    obj, act = ADMIN_PERMISSION
    if not _snapshot(request).enforce(identity.user_id, caller_domain(identity), obj, act):
        raise NotPolicyAdmin()
    return identity


PolicySyncDep = Annotated[PolicySync, Depends(_sync)]
SnapshotDep = Annotated[PolicySnapshot, Depends(_snapshot)]
ChangeSessionDep = Annotated[AsyncSession, Depends(_change_session, scope="function")]
PolicyAdmin = Annotated[Identity, Depends(_policy_admin)]
