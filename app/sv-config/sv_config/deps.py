"""Dependencies of sv-config's endpoints: the session, the services, the namespace named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from edgelib.db import Database
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from sv_config.namespaces.service import NamespaceService
from sv_config.outbox import take_changes
from sv_config.refs import NamespaceRef
from sv_config.releases.service import ReleaseService
from sv_config.repository import ConfigRepository
from sv_config.schemas import ClusterPath, EnvironmentPath, NamePath
from sv_config.watch.hub import WatchHub


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    hub: WatchHub = request.app.state.watch_hub
    database: Database = request.app.state.database
    async with database.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    # Only reached once the transaction committed: watchers then read the new state.
    changes = take_changes(session)
    if changes:
        await hub.announce(changes)


# Committed (and announced) before the response leaves ("function" scope): whoever
# published a release may read it, or watch it arrive, right after the answer.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


def _namespaces(request: Request, session: SessionDep) -> NamespaceService:
    return NamespaceService(ConfigRepository(session), request.app.state.content_limits)


def _releases(request: Request, session: SessionDep) -> ReleaseService:
    return ReleaseService(ConfigRepository(session), request.app.state.content_limits)


def _ref(environment: EnvironmentPath, cluster: ClusterPath, name: NamePath) -> NamespaceRef:
    return NamespaceRef(environment, cluster, name)


NamespacesDep = Annotated[NamespaceService, Depends(_namespaces)]
ReleasesDep = Annotated[ReleaseService, Depends(_releases)]
RefDep = Annotated[NamespaceRef, Depends(_ref)]
#: Writes check their permission here as well as at the gateway (reads need a login).
ConfigEditor = Annotated[Identity, RequirePermission("config:edit")]
ConfigPublisher = Annotated[Identity, RequirePermission("config:publish")]
