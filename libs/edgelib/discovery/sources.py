"""A region's discovery source, as sv-region stores it: ``static``, ``etcd:<prefix>`` or
``k8s:<namespace>``; and the one interface both watchers offer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from edgelib.discovery.model import Membership
from edgelib.discovery.watcher import EtcdWatcher

#: The values sv-region accepts for a region's ``discovery`` (its schema has the same).
SOURCE_PATTERN = re.compile(r"static|k8s:[a-z0-9-]{1,63}|etcd:/[\w/.-]{0,100}")


class MembershipSource(Protocol):
    """What the gateway follows: :class:`EtcdWatcher` or ``EndpointSliceWatcher``."""

    membership: Membership

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def wait_synced(self, timeout: float | None = None) -> None: ...

    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: Literal["static", "etcd", "k8s"]
    #: The etcd prefix or the Kubernetes namespace ("" for static).
    where: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "static" else f"{self.kind}:{self.where}"


def parse_source(value: str) -> SourceSpec:
    """``static``, ``etcd:/edge/services`` or ``k8s:edge``; ``ValueError`` otherwise."""
    if not SOURCE_PATTERN.fullmatch(value):
        raise ValueError(
            f"discovery source {value!r} is not static, etcd:/<prefix> or k8s:<namespace>"
        )
    if value == "static":
        return SourceSpec("static")
    kind, _, where = value.partition(":")
    if kind == "etcd":
        return SourceSpec("etcd", where.rstrip("/") or "/")
    return SourceSpec("k8s", where)


def open_source(
    spec: SourceSpec | str,
    *,
    etcd_url: str,
    region: str | None = None,
    kube_config: Any = None,
) -> MembershipSource | None:
    """The watcher for ``spec`` (not started), or ``None`` for ``static``.

    ``kube_config`` is a lightkube ``KubeConfig`` (``None``: in-cluster or ~/.kube/config).
    """
    if isinstance(spec, str):
        spec = parse_source(spec)
    if spec.kind == "static":
        return None
    if spec.kind == "etcd":
        return EtcdWatcher(etcd_url, prefix=spec.where)
    from edgelib.discovery.kubernetes import EndpointSliceWatcher  # lightkube: only when used

    return EndpointSliceWatcher(spec.where, region=region, config=kube_config)
