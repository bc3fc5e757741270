"""The watch protocol between sv-config and the client in ``edgelib.configclient``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from sv_config.schemas import (
    CLUSTER_PATTERN,
    INT32_MAX,
    NAME_PATTERN,
    Environment,
    Label,
    LabelValue,
    PlainText,
)


class WatchingClient(BaseModel):
    """Who is asking: gray releases are chosen by these."""

    instance: Annotated[str, Field(min_length=1, max_length=128), PlainText]
    service: Annotated[str, Field(max_length=64), PlainText] = ""
    region: str | None = Field(None, pattern=CLUSTER_PATTERN)
    labels: dict[Label, LabelValue] = Field(default_factory=dict, max_length=20)


class WatchedNamespace(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    cluster: str = Field("default", pattern=CLUSTER_PATTERN)
    #: The release id the client holds (0: none); a different one is sent back.
    known: int = Field(0, ge=0, le=INT32_MAX)


class WatchRequest(BaseModel):
    """Answer at once with every namespace whose release differs from ``known``; else wait
    up to ``wait`` seconds for one to change (304 when none did)."""

    environment: Environment
    client: WatchingClient
    namespaces: list[WatchedNamespace] = Field(min_length=1, max_length=50)
    wait: float = Field(0.0, ge=0)


class NamespaceSnapshot(BaseModel):
    """The release a client should run for one namespace."""

    name: str
    environment: str
    cluster: str
    #: The cluster whose namespace answered (``default`` when the asked one has none).
    resolved_cluster: str | None
    release_id: int
    release: int
    gray: bool
    missing: bool
    values: dict[str, Any]
    types: dict[str, str]


class WatchResponse(BaseModel):
    changes: list[NamespaceSnapshot]
