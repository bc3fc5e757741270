"""Dependencies of sv-config's endpoints: the session, the services, the namespace named."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from edgelib.uow import SessionDep
from sv_config.namespaces.service import NamespaceService
from sv_config.refs import NamespaceRef
from sv_config.releases.service import ReleaseService
from sv_config.repository import ConfigRepository
from sv_config.schemas import ClusterPath, EnvironmentPath, NamePath
from sv_config.watch.hub import WatchHub


def _namespaces(request: Request, session: SessionDep) -> NamespaceService:
    return NamespaceService(ConfigRepository(session), request.app.state.content_limits)


def _releases(request: Request, session: SessionDep) -> ReleaseService:
    hub: WatchHub = request.app.state.watch_hub
    return ReleaseService(ConfigRepository(session), request.app.state.content_limits, hub.announce)


def _ref(environment: EnvironmentPath, cluster: ClusterPath, name: NamePath) -> NamespaceRef:
    return NamespaceRef(environment, cluster, name)


NamespacesDep = Annotated[NamespaceService, Depends(_namespaces)]
ReleasesDep = Annotated[ReleaseService, Depends(_releases)]
RefDep = Annotated[NamespaceRef, Depends(_ref)]
#: Writes check their permission here as well as at the gateway (reads need a login).
ConfigEditor = Annotated[Identity, RequirePermission("config:edit")]
ConfigPublisher = Annotated[Identity, RequirePermission("config:publish")]
