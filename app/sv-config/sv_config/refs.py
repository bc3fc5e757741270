"""How the API names a namespace, and the audit trail every change writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgelib.identity import Identity
from sv_config.exceptions import NamespaceNotFound
from sv_config.models import AuditEntry, Namespace
from sv_config.repository import ConfigRepository


@dataclass(frozen=True, slots=True)
class NamespaceRef:
    environment: str
    cluster: str
    name: str

    def __str__(self) -> str:
        return f"{self.environment}/{self.cluster}/{self.name}"


async def load_namespace(
    repository: ConfigRepository, ref: NamespaceRef, *, for_update: bool = False
) -> Namespace:
    """The namespace ``ref`` names, or a 404 problem."""
    namespace = await repository.namespace(
        ref.environment, ref.cluster, ref.name, for_update=for_update
    )
    if namespace is None:
        raise NamespaceNotFound(f"no namespace {ref}")
    return namespace


async def record(
    repository: ConfigRepository,
    actor: Identity,
    action: str,
    namespace: Namespace,
    *,
    release_number: int | None = None,
    **detail: Any,
) -> None:
    """Write one audit entry in the current transaction."""
    await repository.add(
        AuditEntry(
            actor_id=actor.user_id,
            actor=actor.username,
            action=action,
            environment=namespace.environment,
            cluster=namespace.cluster,
            namespace=namespace.name,
            namespace_id=namespace.id,
            release_number=release_number,
            detail=detail,
        )
    )
