"""Dependencies of the policy endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from auth_rbac.policy.enforcer import DEFAULT_DOMAIN, PolicySnapshot
from auth_rbac.policy.exceptions import NotPolicyAdmin
from auth_rbac.policy.repository import CHANGED_KEY
from auth_rbac.policy.service import ADMIN_PERMISSION
from auth_rbac.policy.sync import PolicySync
from edgelib.deps import CurrentUser
from edgelib.identity import Identity
from edgelib.uow import SessionDep, after_commit


def _sync(request: Request) -> PolicySync:
    sync: PolicySync = request.app.state.policy_sync
    return sync


def _snapshot(request: Request) -> PolicySnapshot:
    return _sync(request).snapshot


async def _change_session(request: Request, session: SessionDep) -> AsyncSession:
    """The request's session, for a policy change: once committed, applied here and announced.

    The unit of work runs the hook before the response is sent: a client that got its
    answer can read its own write from this instance.
    """
    sync = _sync(request)

    async def apply() -> None:
        if session.info.pop(CHANGED_KEY, False):
            await sync.after_change()

    after_commit(session, apply)
    return session


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
PolicyChangeSession = Annotated[AsyncSession, Depends(_change_session)]
PolicyAdmin = Annotated[Identity, Depends(_policy_admin)]
