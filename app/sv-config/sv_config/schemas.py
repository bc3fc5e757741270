"""Request and response bodies of sv-config's API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Environment = Literal["local", "dev", "test", "prod"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
CLUSTER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
#: Release numbers and ids are 32-bit columns: larger ones are refused as input.
INT32_MAX = 2**31 - 1
ItemTypeName = Literal["string", "integer", "number", "boolean", "object", "array", "json"]

EnvironmentPath = Annotated[Environment, Path(description="local, dev, test or prod")]
ClusterPath = Annotated[
    str, Path(pattern=CLUSTER_PATTERN, description="a region, or `default` for all")
]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="the namespace")]
KeyPath = Annotated[str, Path(pattern=KEY_PATTERN)]

APP_PATTERN = r"^[A-Za-z0-9_.:-]{0,64}$"


def _plain_text(value: str) -> str:
    # Databases refuse NUL characters and lone surrogates: say so as a 422, not a 500.
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("not valid Unicode text (a lone surrogate)") from exc
    return value


PlainText = AfterValidator(_plain_text)
Comment = Annotated[str, Field(max_length=500), PlainText]
Label = Annotated[str, Field(min_length=1, max_length=64), PlainText]
LabelValue = Annotated[str, Field(max_length=128), PlainText]
ItemKey = Annotated[str, Field(pattern=KEY_PATTERN)]


class NamespaceCreate(BaseModel):
    """A namespace of one environment and cluster; ``schema`` is an optional JSON Schema."""

    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    environment: Environment
    cluster: str = Field("default", pattern=CLUSTER_PATTERN)
    app: str = Field(
        "", pattern=APP_PATTERN, description="the application or service it configures"
    )
    description: Comment = ""
    json_schema: dict[str, Any] | None = Field(None, alias="schema")


class SchemaUpdate(BaseModel):
    """The namespace's new JSON Schema, or null to drop it."""

    model_config = ConfigDict(populate_by_name=True)

    json_schema: dict[str, Any] | None = Field(alias="schema")


class ReleaseRef(BaseModel):
    number: int
    author: str
    comment: str
    created_at: datetime


class NamespaceOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: str
    environment: str
    cluster: str
    app: str
    description: str
    json_schema: dict[str, Any] | None = Field(alias="schema")
    created_by: str
    created_at: datetime
    current_release: ReleaseRef | None
    gray_release: ReleaseRef | None


class NamespaceDetail(NamespaceOut):
    """The namespace and the values its current release gives clients."""

    values: dict[str, Any]


class ItemWrite(BaseModel):
    """A key's new value; ``type`` defaults to the key's type (or is inferred for a new key)."""

    value: Any
    type: ItemTypeName | None = None
    comment: Comment | None = None


class DraftEdit(BaseModel):
    """Several edits of one draft, applied together or not at all."""

    set: dict[ItemKey, ItemWrite] = Field(default_factory=dict, max_length=1000)
    delete: list[ItemKey] = Field(default_factory=list, max_length=1000)


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    type: str
    value: Any
    comment: str
    updated_by: str
    updated_at: datetime


class DiffOut(BaseModel):
    added: dict[str, dict[str, Any]]
    removed: dict[str, dict[str, Any]]
    changed: dict[str, dict[str, Any]]


class Violation(BaseModel):
    pointer: str
    message: str


class DraftOut(BaseModel):
    """The working copy, what publishing it would change, and whether the schema accepts it."""

    namespace: str
    environment: str
    cluster: str
    base_release: int | None
    items: list[ItemOut]
    changes: DiffOut
    schema_violations: list[Violation]


class PublishRequest(BaseModel):
    comment: Comment = ""


class RollbackRequest(BaseModel):
    to: int = Field(
        ge=1, le=INT32_MAX, description="the release whose content becomes current again"
    )
    comment: Comment = ""


class GrayTargets(BaseModel):
    """A client is in the gray if its instance id is listed, or its region is, or it
    carries every listed label."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Annotated[str, Field(min_length=1, max_length=128), PlainText]] = Field(
        default_factory=list, max_length=1000
    )
    regions: list[Annotated[str, Field(pattern=CLUSTER_PATTERN)]] = Field(
        default_factory=list, max_length=100
    )
    labels: dict[Label, LabelValue] = Field(default_factory=dict, max_length=20)


class GrayRequest(BaseModel):
    targets: GrayTargets
    comment: Comment = ""


class GrayTargetsUpdate(BaseModel):
    targets: GrayTargets


class ReleaseSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    kind: Literal["publish", "rollback", "gray", "promote"]
    comment: str
    author_id: str
    author: str
    source_number: int | None
    targets: dict[str, Any] | None
    created_at: datetime


class ReleaseOut(ReleaseSummary):
    """One release; ``content`` maps each key to its type and value."""

    content: dict[str, dict[str, Any]]
    values: dict[str, Any]


class ReleasePage(BaseModel):
    items: list[ReleaseSummary]
    current: int | None
    gray: int | None
    next_before: int | None


class GrayOut(BaseModel):
    release: ReleaseOut
    targets: GrayTargets
    base_release: int | None
    started_by: str
    started_at: datetime


class ReleaseDiff(DiffOut):
    from_release: int
    to_release: int


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: str
    actor: str
    action: str
    environment: str
    cluster: str
    namespace: str
    release_number: int | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_before: int | None
