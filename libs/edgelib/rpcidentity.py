"""The gateway-signed caller of a gRPC call, as :mod:`edgelib.deps` finds it for HTTP.

The gateway signs a gRPC call as it signs an HTTP request (``edgelib.signing``), with
the signature fields as call metadata: the signed message covers ``POST``, the call's
path (``/package.Service/Method``), the destination service, a nonce and the encoded
identity. Messages stream, so they go unsigned (``UNSIGNED-PAYLOAD``), as a streamed
HTTP body does: the signature binds the caller and the method, and the nonce is
recorded so that the same metadata cannot be replayed.

Free of grpcio: the service's server passes the metadata as a mapping and turns the
problems raised here into gRPC statuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edgelib.backends import BackendError
from edgelib.identity import GATEWAY_SERVICE, Identity, IdentityError
from edgelib.problems import ServiceUnavailable, Unauthorized
from edgelib.replay import ReplayCache
from edgelib.signing import HEADER_IDENTITY, ServiceSigner, SignatureError


def metadata_map(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """Text metadata as a mapping (first value of each key; ``-bin`` keys left out)."""
    found: dict[str, str] = {}
    for key, value in metadata or ():
        if isinstance(value, str) and not key.endswith("-bin"):
            found.setdefault(key.lower(), value)
    return found


async def gateway_identity(
    signer: ServiceSigner, replay: ReplayCache, method: str, metadata: Mapping[str, str]
) -> Identity:
    """The caller the gateway authenticated for the call to ``method``.

    :class:`Unauthorized` without a gateway-signed identity (missing, forged, stale or
    replayed), :class:`ServiceUnavailable` when the replay cache is away.
    """
    if HEADER_IDENTITY not in metadata:
        raise Unauthorized("authentication required")
    try:
        caller = signer.verify_request("POST", method, metadata, None, require_body_digest=False)
    except SignatureError as exc:
        raise Unauthorized("identity was not signed by the gateway") from exc
    if caller.service != GATEWAY_SERVICE:
        raise Unauthorized("identity was not signed by the gateway")
    try:
        await replay.first_use(caller)
    except SignatureError as exc:
        raise Unauthorized(str(exc)) from exc
    except BackendError as exc:
        raise ServiceUnavailable("the replay cache is not answering") from exc
    try:
        return Identity.decode(metadata[HEADER_IDENTITY])
    except IdentityError as exc:
        raise Unauthorized(str(exc)) from exc
