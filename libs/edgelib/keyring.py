"""Service keys: one HMAC key per (caller -> destination) pair, with key ids.

The deployer (``edgectl``, or whoever renders the Kubernetes Secrets) holds one root
secret and derives every pair's key from it with HKDF-SHA256 (RFC 5869):
``key = HKDF(root, info="edge-service-key|<caller>-><destination>|<kid>")``. Each
service is given only its own ring: the keys it signs with, one list per destination
(newest first: it signs with the first), and the keys it verifies, one set per allowed
caller (any kid in the set). A stolen ring therefore signs only as its own service, and
only towards the destinations it already calls.

Rotation without downtime: add the new kid to every verifier, then put it first in
the signers, then drop the old kid (``doc/decisions.md``).

A service given no ring (the local profile's default, and unit tests) derives keys on
demand from the shared development root: :meth:`Keyring.from_root`. That mode holds the
root, so it is refused outside the local profile (``edgelib.settings``).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: HKDF salt: fixed, so a deployer and a root-holding service derive the same keys.
_SALT = b"edge-service-keys-v1"
#: The kid a root-holding service signs with (deployers number theirs k1, k2, ...).
ROOT_KID = "k1"
#: Derived keys a root-holding verifier remembers (callers x kids); bounded because a
#: hostile caller chooses the names it sends.
_ROOT_CACHE = 256


class KeyringError(ValueError):
    """A keyring document is malformed, or a key is missing for a destination."""


def derive_key(root: bytes | str, caller: str, destination: str, kid: str) -> bytes:
    """The 32-byte key ``caller`` signs with towards ``destination`` under ``kid``."""
    secret = root.encode() if isinstance(root, str) else root
    prk = hmac.digest(_SALT, secret, "sha256")
    info = f"edge-service-key|{caller}->{destination}|{kid}".encode()
    return hmac.digest(prk, info + b"\x01", "sha256")


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Keyring:
    """One service's keys: ``signing[destination]`` newest first, ``verifying[caller][kid]``."""

    service: str
    signing: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    verifying: dict[str, dict[str, bytes]] = field(default_factory=dict)
    #: Set only for a root-holding ring (local profile): keys are derived on demand.
    root: bytes | None = None

    @classmethod
    def from_root(cls, root: bytes | str, service: str) -> Keyring:
        """A ring that derives any pair's key from ``root`` (local profile and tests only)."""
        return cls(service=service, root=root.encode() if isinstance(root, str) else root)

    @classmethod
    def derived(
        cls,
        root: bytes | str,
        service: str,
        *,
        destinations: Iterable[str],
        callers: Iterable[str],
        kids: Iterable[str],
        signing_kid: str,
    ) -> Keyring:
        """The ring a deployer hands ``service``: only the pairs it needs, under ``kids``.

        It signs with ``signing_kid`` (kept first) and verifies every kid in ``kids``.
        """
        kid_list = list(dict.fromkeys(kids))
        if signing_kid not in kid_list:
            raise KeyringError(f"signing kid {signing_kid!r} is not among {kid_list}")
        order = [signing_kid] + [k for k in kid_list if k != signing_kid]
        return cls(
            service=service,
            signing={
                dest: [(kid, derive_key(root, service, dest, kid)) for kid in order]
                for dest in sorted(set(destinations))
            },
            verifying={
                caller: {kid: derive_key(root, caller, service, kid) for kid in kid_list}
                for caller in sorted(set(callers))
            },
        )

    def signing_key(self, destination: str) -> tuple[str, bytes]:
        """The (kid, key) this service signs with towards ``destination``."""
        if self.root is not None:
            return ROOT_KID, derive_key(self.root, self.service, destination, ROOT_KID)
        keys = self.signing.get(destination)
        if not keys:
            raise KeyringError(f"{self.service} holds no key for calls to {destination}")
        return keys[0]

    def verifying_key(self, caller: str, kid: str) -> bytes | None:
        """The key ``caller`` signs with towards this service under ``kid``, if held."""
        if self.root is not None:
            cache = self.verifying.setdefault(caller, {})
            key = cache.get(kid)
            if key is None:
                if sum(len(v) for v in self.verifying.values()) >= _ROOT_CACHE:
                    self.verifying.clear()
                    cache = self.verifying.setdefault(caller, {})
                key = cache[kid] = derive_key(self.root, caller, self.service, kid)
            return key
        return self.verifying.get(caller, {}).get(kid)

    def to_json(self) -> str:
        """The ring as the JSON document services load (``EDGE_SERVICE_KEYS[_FILE]``)."""
        if self.root is not None:
            raise KeyringError("a root-holding ring is never written out")
        return json.dumps(
            {
                "service": self.service,
                "sign": {
                    dest: [{"kid": kid, "key": _b64(key)} for kid, key in keys]
                    for dest, keys in self.signing.items()
                },
                "verify": {
                    caller: [{"kid": kid, "key": _b64(key)} for kid, key in keys.items()]
                    for caller, keys in self.verifying.items()
                },
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, *, service: str | None = None) -> Keyring:
        """Parse a ring document; ``service`` (when given) must be the one it was made for."""
        try:
            doc = json.loads(text)
            ring = cls(
                service=str(doc["service"]),
                signing={
                    str(dest): [(str(k["kid"]), _unb64(k["key"])) for k in keys]
                    for dest, keys in _mapping(doc.get("sign", {})).items()
                },
                verifying={
                    str(caller): {str(k["kid"]): _unb64(k["key"]) for k in keys}
                    for caller, keys in _mapping(doc.get("verify", {})).items()
                },
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"malformed service keyring: {exc}") from exc
        if service is not None and ring.service != service:
            raise KeyringError(f"the keyring is {ring.service!r}'s, not {service!r}'s")
        return ring

    @classmethod
    def load(cls, path: Path, *, service: str | None = None) -> Keyring:
        """Read a ring document from ``path``."""
        return cls.from_json(path.read_text(), service=service)

    def fingerprint(self) -> str:
        """A short digest naming the ring's kids (never its keys), for logs and /readyz."""
        if self.root is not None:
            return "root-derived"
        kids = sorted({kid for keys in self.signing.values() for kid, _ in keys[:1]})
        return ",".join(kids) or "verify-only"


def _mapping(value: object) -> Mapping[str, list[dict[str, str]]]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value
