"""Edge's shared plumbing. Generic only: nothing here knows about a service."""

from edgelib.app import create_service_app
from edgelib.backends import Backend, BackendError, open_backend
from edgelib.client import ServiceCallError, ServiceClient
from edgelib.db import Base, Database
from edgelib.deps import BackendDep, CurrentUser, InternalCaller, OptionalUser, SessionDep
from edgelib.identity import Identity
from edgelib.keyring import Keyring
from edgelib.permissions import RequirePermission
from edgelib.problems import Problem
from edgelib.settings import ServiceSettings
from edgelib.signing import PeerSigner, ServiceSigner, SignatureError

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
    "create_service_app",
    "open_backend",
]
