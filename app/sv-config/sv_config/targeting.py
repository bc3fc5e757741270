"""Who a gray release is for: instances, regions or labels a client reports about itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClientIdentity:
    """What a watching client says about itself."""

    instance: str
    region: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def targets_match(targets: Mapping[str, Any], client: ClientIdentity) -> bool:
    """True if the client is listed by instance id, by region, or carries every label."""
    if client.instance in targets.get("instances", ()):
        return True
    if client.region is not None and client.region in targets.get("regions", ()):
        return True
    labels: Mapping[str, str] = targets.get("labels") or {}
    return bool(labels) and all(client.labels.get(k) == v for k, v in labels.items())


def targets_empty(targets: Mapping[str, Any]) -> bool:
    return not (targets.get("instances") or targets.get("regions") or targets.get("labels"))
