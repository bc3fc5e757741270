"""Edge's shared plumbing. Generic only: nothing here knows about a service.

The names below are loaded on first use (PEP 562), so ``import edgelib`` costs nothing
and pulls in no framework: import what you need from its module, or from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgelib.app import create_service_app
    from edgelib.backends import Backend, BackendError, open_backend
    from edgelib.client import ServiceCallError, ServiceClient
    from edgelib.db import Base, Database
    from edgelib.deps import BackendDep, CurrentUser, InternalCaller, OptionalUser
    from edgelib.identity import Identity
    from edgelib.keyring import Keyring
    from edgelib.permissions import RequirePermission
    from edgelib.problems import Problem
    from edgelib.settings import ServiceSettings
    from edgelib.signing import PeerSigner, ServiceSigner, SignatureError
    from edgelib.uow import SessionDep, Transactions, after_commit, unit_of_work

_HOMES = {
    "Backend": "edgelib.backends",
    "BackendDep": "edgelib.deps",
    "BackendError": "edgelib.backends",
    "Base": "edgelib.db",
    "CurrentUser": "edgelib.deps",
    "Database": "edgelib.db",
    "Identity": "edgelib.identity",
    "InternalCaller": "edgelib.deps",
    "Keyring": "edgelib.keyring",
    "OptionalUser": "edgelib.deps",
    "PeerSigner": "edgelib.signing",
    "Problem": "edgelib.problems",
    "RequirePermission": "edgelib.permissions",
    "ServiceCallError": "edgelib.client",
    "ServiceClient": "edgelib.client",
    "ServiceSettings": "edgelib.settings",
    "ServiceSigner": "edgelib.signing",
    "SessionDep": "edgelib.uow",
    "SignatureError": "edgelib.signing",
    "Transactions": "edgelib.uow",
    "after_commit": "edgelib.uow",
    "create_service_app": "edgelib.app",
    "open_backend": "edgelib.backends",
    "unit_of_work": "edgelib.uow",
}

__all__ = [
    "Backend",
    "BackendDep",
    "BackendError",
    "Base",
    "CurrentUser",
    "Database",
    "Identity",
    "InternalCaller",
    "Keyring",
    "OptionalUser",
    "PeerSigner",
    "Problem",
    "RequirePermission",
    "ServiceCallError",
    "ServiceClient",
    "ServiceSettings",
    "ServiceSigner",
    "SessionDep",
    "SignatureError",
    "Transactions",
    "after_commit",
    "create_service_app",
    "open_backend",
    "unit_of_work",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgelib' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
