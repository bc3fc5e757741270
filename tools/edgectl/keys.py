"""Service keys for a deployment: one root secret, and a keyring per service derived from it.

The root stays with the deployer (``var/keys/root`` locally, mode 0600). Each service
gets only the keys of the calls it makes and of the callers it accepts, in
``var/keys/<service>.json`` (0600), named by ``EDGE_SERVICE_KEYS_FILE``. Key ids live in
``var/keys/kids.json``; rotation without downtime is three steps, each followed by a
(rolling) restart of the services: ``add`` (verifiers accept a new kid), ``promote``
(signers use it), ``retire`` (the old kids go). ``render`` prints the rings as one
Kubernetes Secret per service (``edge-keys-<service>``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from edgectl.registry import Registry, load_registry
from edgelib.keyring import Keyring

#: Which services each service calls, with a signature (the trust graph). The gateway
#: forwards to every service; every service ships logs to sv-log, may follow its
#: configuration in sv-config and asks auth-rbac about its admin endpoints.
_COMMON = {"sv-log", "sv-config", "auth-rbac"}
CALLS: dict[str, frozenset[str]] = {
    "gateway-api": frozenset(
        _COMMON | {"sv-region", "auth-jwt", "sv-user", "sv-money", "sv-notice"}
    ),
    "sv-region": frozenset(_COMMON),
    "auth-jwt": frozenset(_COMMON | {"sv-region", "sv-user", "sv-notice"}),
    "auth-rbac": frozenset({"sv-log", "sv-config"}),
    "sv-config": frozenset({"sv-log", "auth-rbac"}),
    "sv-log": frozenset(_COMMON),
    "sv-user": frozenset(_COMMON | {"sv-region", "auth-jwt", "sv-user"}),
    "sv-money": frozenset(_COMMON | {"sv-region", "sv-money", "sv-notice"}),
    "sv-notice": frozenset(_COMMON | {"sv-region", "sv-notice"}),
}


def trust_graph(registry: Registry | None = None) -> dict[str, frozenset[str]]:
    """:data:`CALLS`, plus each service of ``deploy/services.toml`` that it does not name
    (one added with ``edgectl new-service``): the gateway forwards to it, and it calls the
    common services and the peers its registry entry lists."""
    graph = dict(CALLS)
    registry = registry if registry is not None else load_registry()
    added = [s for s in registry.services if s.name not in graph]
    for service in added:
        graph[service.name] = frozenset((_COMMON | set(service.peers.values())) - {service.name})
    graph["gateway-api"] = graph["gateway-api"] | {s.name for s in added}
    return graph


def callers_of(service: str, graph: dict[str, frozenset[str]] | None = None) -> set[str]:
    """The services that call ``service``."""
    graph = graph if graph is not None else CALLS
    return {caller for caller, dests in graph.items() if service in dests}


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class KeyStore:
    """The deployer's side: the root, the kids, and the rings written from them."""

    def __init__(self, directory: Path, graph: dict[str, frozenset[str]] | None = None) -> None:
        self.directory = directory
        self.graph = graph if graph is not None else trust_graph()

    @property
    def root_path(self) -> Path:
        return self.directory / "root"

    @property
    def kids_path(self) -> Path:
        return self.directory / "kids.json"

    def ring_path(self, service: str) -> Path:
        return self.directory / f"{service}.json"

    def root(self) -> bytes:
        """The root secret, made (32 random bytes) on first use."""
        if not self.root_path.exists():
            _write_private(self.root_path, secrets.token_hex(32).encode())
        return self.root_path.read_bytes().strip()

    def kids(self) -> tuple[list[str], str]:
        """The kids every verifier accepts, and the one signers use."""
        if not self.kids_path.exists():
            return ["k1"], "k1"
        doc = json.loads(self.kids_path.read_text())
        return list(doc["kids"]), str(doc["signing"])

    def _save_kids(self, kids: list[str], signing: str) -> None:
        _write_private(self.kids_path, json.dumps({"kids": kids, "signing": signing}).encode())

    def ring(self, service: str) -> Keyring:
        """``service``'s ring: keys for its destinations and from its callers only."""
        kids, signing = self.kids()
        return Keyring.derived(
            self.root(),
            service,
            destinations=self.graph.get(service, ()),
            callers=callers_of(service, self.graph),
            kids=kids,
            signing_kid=signing,
        )

    def write(self, services: Iterable[str] | None = None) -> dict[str, Path]:
        """Write the rings of ``services`` (default: all); returns where each one is."""
        kids, signing = self.kids()
        if not self.kids_path.exists():
            self._save_kids(kids, signing)
        paths = {}
        for service in services if services is not None else self.graph:
            path = self.ring_path(service)
            _write_private(path, self.ring(service).to_json().encode())
            paths[service] = path
        return paths

    def add(self) -> str:
        """Rotation step 1: a new kid that every verifier accepts; signers keep theirs."""
        kids, signing = self.kids()
        number = 1 + max(int(k[1:]) for k in kids if k[1:].isdigit())
        kid = f"k{number}"
        self._save_kids([*kids, kid], signing)
        self.write()
        return kid

    def promote(self) -> str:
        """Rotation step 2: signers use the newest kid (verifiers already accept it)."""
        kids, _ = self.kids()
        self._save_kids(kids, kids[-1])
        self.write()
        return kids[-1]

    def retire(self) -> list[str]:
        """Rotation step 3: verifiers drop every kid but the signing one."""
        kids, signing = self.kids()
        self._save_kids([signing], signing)
        self.write()
        return [k for k in kids if k != signing]

    def render_secrets(self, namespace: str = "edge") -> str:
        """One Kubernetes Secret per service holding its ring (``edge-keys-<service>``)."""
        docs = []
        for service in self.graph:
            ring = json.dumps(self.ring(service).to_json())
            docs.append(
                "apiVersion: v1\nkind: Secret\n"
                f"metadata:\n  name: edge-keys-{service}\n  namespace: {namespace}\n"
                f"type: Opaque\nstringData:\n  keys.json: {ring}\n"
            )
        return "---\n".join(docs)
