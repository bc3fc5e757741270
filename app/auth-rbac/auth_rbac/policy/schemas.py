"""Request and response bodies of the policy API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from auth_rbac.policy.enforcer import DEFAULT_DOMAIN

#: Names of subjects, roles, domains, objects and actions: no separators, no spaces.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=128)]
MAX_BATCH = 1000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyRule(_Body):
    """A permission: ``sub`` (a role, or a user) may do ``act`` on ``obj`` in ``dom``."""

    sub: Name
    dom: Name = DEFAULT_DOMAIN
    obj: Name
    act: Name


class PolicyRuleOut(PolicyRule):
    version: int = Field(description="Policy version after the change.")


class Assignment(_Body):
    """``user`` (or a role, for inheritance) holds ``role`` in ``dom``."""

    user: Name
    role: Name
    dom: Name = DEFAULT_DOMAIN


class AssignmentOut(Assignment):
    version: int


class EnforceRequest(_Body):
    sub: Name
    dom: Name = DEFAULT_DOMAIN
    obj: Name
    act: Name


class EnforceResult(BaseModel):
    allowed: bool
    version: int = Field(description="Policy version that decided.")


class BatchEnforceRequest(_Body):
    requests: list[EnforceRequest] = Field(max_length=MAX_BATCH)


class BatchResult(BaseModel):
    allowed: bool


class BatchEnforceResult(BaseModel):
    results: list[BatchResult]
    version: int


class RoleIn(_Body):
    name: Name
    dom: Name = DEFAULT_DOMAIN
    description: str = Field(default="", max_length=512)


class Permission(BaseModel):
    obj: str
    act: str


class Role(BaseModel):
    name: str
    dom: str
    description: str
    builtin: bool
    created_at: datetime
    permissions: list[Permission]
    #: Direct members; left empty with ``?members=false`` (``member_count`` still counts).
    members: list[str]
    member_count: int = 0


class RoleMembers(BaseModel):
    """One page of a role's direct members, by id (``q``: a part of the id)."""

    role: str
    dom: str
    items: list[str]
    total: int
    offset: int
    limit: int


class UserRoles(BaseModel):
    user: str
    dom: str
    roles: list[str] = Field(description="Roles assigned directly.")
    implicit_roles: list[str] = Field(description="Every role held, through inheritance too.")


class EffectivePermission(Permission):
    via: str = Field(description="The subject the rule grants it to (the user or a role).")


class UserPermissions(BaseModel):
    user: str
    dom: str
    permissions: list[EffectivePermission]


class PolicyDocument(BaseModel):
    """The whole policy at ``version``, for the gateway's embedded enforcer."""

    version: int
    changed: bool
    model: str | None = None
    rules: list[list[str]] | None = None
