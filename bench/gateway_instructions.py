"""``make bench-gateway-instructions``: CPU instructions per gateway request, under callgrind.

Wall-clock and CPU-time figures on a shared machine move by 10-30% between runs, too
much to tell whether a change to the hot path saved 2 µs. Instruction counts do not
move: callgrind counts the same total for the same code and input whatever else the
machine does. This runs, in one process, a tiny upstream, the gateway's real server,
proxy and forwarding core, and a client sending requests one after another on a
keep-alive connection. Instrumentation is switched on (``callgrind_control``) only
around the requests, after one that warms the caches; the count divided by the
requests is what one request costs: gateway, client and upstream together (the client
and upstream are fixed work, so a difference between two versions is the gateway's).

    python bench/gateway_instructions.py --route pipeline       # under callgrind
    python bench/gateway_instructions.py --serve --requests 2000  # the workload alone

Two cases measure quotas (issue 19) on the pipeline route: ``pipeline-quota-other``
(quotas exist, but none for this caller: the cost every caller pays once any quota is
set) and ``pipeline-app-quota`` (the caller is an app with a QPS quota, admitted by one
Lua call to the Redis at ``EDGE_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``;
the Redis server's own work is another process and not counted). ``pipeline-console-public``
is the pipeline route with ``GATEWAY_CONSOLE_PUBLIC`` on (the console's ``/admin``
prefix tested before the proxy; issue 21).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from callgrind import count, instrument  # noqa: E402 (bench/ on the path first)

BODY = b'{"ok":true,"service":"bench","items":[1,2,3]}'
UPSTREAM_ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
    % (len(BODY), BODY)
)


class Upstream(asyncio.Protocol):
    """Answers every request head with the same small response (like the nginx upstream)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(UPSTREAM_ANSWER)


async def workload(route: str, requests: int, tmp: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from gateway_bench import policy_document
    from jwt.algorithms import OKPAlgorithm

    from edgelib.jwt import JwksCache, TokenVerifier
    from gateway_api.config import Settings
    from gateway_api.gateway import Gateway
    from gateway_api.proxy import bad_request, create_public_app
    from gateway_api.security.authn import Authenticator
    from gateway_api.security.authz import Authorizer
    from gateway_api.security.sessions import RevokedSessions
    from gateway_api.transport.server import HttpServer

    loop = asyncio.get_running_loop()
    upstream = await loop.create_server(Upstream, "127.0.0.1", 0)
    up_port = upstream.sockets[0].getsockname()[1]
    topology = tmp / "topology.toml"
    topology.write_text(
        '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
        f'[[services]]\nname = "bench"\ninstances = [{{ port = {up_port} }}]\n'
        f'[[services]]\nname = "bench-regional"\nregion = "east"\n'
        f"instances = [{{ port = {up_port} }}]\n"
    )
    routes = tmp / "routes.toml"
    routes.write_text(
        '[[routes]]\nprefix = "/bench/public"\nservice = "bench"\naccess = "public"\n'
        '[[routes]]\nprefix = "/bench/private"\nservice = "bench-regional"\n'
        'scope = "regional"\naccess = "bench:read"\nrate_limit = "100000/m"\n'
        '[[routes]]\nprefix = "/bench/authenticated"\nservice = "bench-regional"\n'
        'scope = "regional"\naccess = "authenticated"\n'
    )
    redis_url = os.environ.get("EDGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings(
        topology=topology,
        routes=routes,
        var_dir=tmp,
        redis_url=redis_url if route == "pipeline-app-quota" else "memory://",
    )
    gateway = Gateway(settings)
    app_quota = {"kind": "app", "tenant": "default", "qps": 1_000_000}
    target = f"bench-{os.getpid()}"
    if route == "pipeline-quota-other":
        gateway.security.quotas.install(1, [{**app_quota, "target": "another-app"}])
    elif route == "pipeline-app-quota":
        gateway.security.quotas.install(1, [{**app_quota, "target": target}])
    key = Ed25519PrivateKey.generate()
    jwk = {**OKPAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "alg": "EdDSA"}

    async def jwks() -> dict[str, Any]:
        return {"keys": [jwk]}

    async def feed(since: float) -> dict[str, Any]:
        return {"now": time.time(), "revocations": []}

    verifier = TokenVerifier(
        JwksCache(jwks, algorithms=["EdDSA"]), issuer="edge-auth", audience="edge",
        algorithms=["EdDSA"],
    )  # fmt: skip
    await verifier.keys.refresh()
    gateway.security.authn = Authenticator(verifier, RevokedSessions(feed, poll_interval=3600))
    await gateway.security.authn.revoked.poll()  # loaded once: the gateway serves tokens only then
    gateway.security.authz = Authorizer(None)
    await gateway.security.authz.install(policy_document(["bench-user-0"]))
    now = int(time.time())
    token = jwt.encode(
        {"iss": "edge-auth", "aud": "edge", "sub": "bench-user-0",
         "preferred_username": "bench-user-0", "region": "east", "sid": "s1",
         "client_type": "web", "jti": "j1", "iat": now, "exp": now + 3600}
        | ({"client_id": target} if route == "pipeline-app-quota" else {}),
        key, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"},
    )  # fmt: skip
    handler: Any = create_public_app(gateway)
    if route == "pipeline-console-public":
        # GATEWAY_CONSOLE_PUBLIC: the console under /admin, tested before the proxy runs.
        from gateway_api.console.app import create_console_app
        from gateway_api.console.public import PublicConsole

        handler = PublicConsole(handler, create_console_app(settings, gateway))
    server = HttpServer(handler, bad_request=bad_request)
    await server.start("127.0.0.1", 0)
    path = {"pipeline": "/bench/private/item", "authenticated": "/bench/authenticated/item"}.get(
        route.split("-")[0], "/bench/public/item"
    )
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
    if route in ("pipeline", "authenticated", "public-token") or route.startswith("pipeline-"):
        request += f"Authorization: Bearer {token}\r\n".encode()
    request += b"\r\n"
    port = up_port if route == "direct" else server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(requests + 1):
        if i == 1:  # the first request warmed the caches: count from here
            instrument("on")
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"request {i}: {head[:200]!r}")
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
    instrument("off")
    quotas = gateway.security.quotas
    if route == "pipeline-app-quota" and (quotas.admitted != requests + 1 or quotas.fallbacks):
        raise SystemExit(f"the app quota was not enforced on Redis: {quotas.snapshot()}")
    writer.close()
    await server.stop(grace=0)
    gateway.egress.client.close()
    await gateway.security.quotas.close()
    upstream.close()


def serve(route: str, requests: int) -> None:
    import uvloop

    from gateway_api import native

    native.activate()  # an entry point: the compiled hot path when a current build exists

    with tempfile.TemporaryDirectory() as tmp:
        uvloop.run(workload(route, requests, Path(tmp)))


def callgrind(route: str, requests: int) -> int:
    """Instructions of the whole process for a run of ``requests`` requests."""
    return count(
        Path(__file__), ["--serve", "--route", route, "--requests", str(requests)],
        env=os.environ, cwd=ROOT,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--route",
        choices=[
            "direct",
            "public",
            "public-token",
            "authenticated",
            "pipeline",
            "pipeline-quota-other",
            "pipeline-app-quota",
            "pipeline-console-public",
        ],
        default="pipeline",
        help="direct: the client and upstream alone (the fixed part of the others); "
        "public-token: the public route with a bearer header; authenticated: a token "
        "but no permission or rate limit; pipeline-quota-other: quotas set, none for "
        "this caller; pipeline-app-quota: the caller is an app with a QPS quota on Redis; "
        "pipeline-console-public: pipeline with the console served on the public port",
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--serve", action="store_true", help="run the workload only")
    args = parser.parse_args()
    if args.serve:
        serve(args.route, args.requests)
        return
    total = callgrind(args.route, args.requests)
    from gateway_api import native  # the child activates the same way (serve)

    code = "compiled" if native.activate() else "plain Python"
    sys.stdout.write(
        f"{args.route}: {total / args.requests:,.0f} instructions per request "
        f"({args.requests} requests counted, after one to warm the caches; gateway {code})\n"
    )


if __name__ == "__main__":
    main()
