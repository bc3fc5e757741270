"""A small Kubernetes API server for EndpointSlices: list and watch, nothing else.

It speaks the real protocol on 127.0.0.1, so the watcher runs its real client
(lightkube) against it:

* ``GET /apis/discovery.k8s.io/v1/namespaces/<ns>/endpointslices`` lists the slices of
  a namespace (an ``EndpointSliceList`` with ``metadata.resourceVersion``), with
  equality ``labelSelector``s;
* the same with ``watch=true`` streams ``{"type": ..., "object": ...}`` lines from
  ``resourceVersion`` on: first the history after it, then each change as it happens;
  ``timeoutSeconds`` ends the stream, as the real server does;
* a ``resourceVersion`` older than the kept history gets the real server's answer: an
  ``ERROR`` event holding a ``Status`` with code 410 (Gone), after which a client must
  list again;
* a request without the bearer token gets 401;
* ``allowWatchBookmarks=true`` adds a ``BOOKMARK`` event after the history.

Every object change bumps one resourceVersion counter, as etcd's revision does in a real
cluster. Clearing ``watches_open`` holds new watch requests back. :meth:`compact`
forgets the history; :meth:`end_watches` ends every open stream cleanly (a server-side
timeout); :meth:`stop` and :meth:`start` take the server away.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
from aiohttp import web

from tests.worker import free_port

PATH = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


def endpoint_slice(
    name: str,
    *,
    service: str,
    region: str | None = None,
    endpoints: list[tuple[str, str, bool | None]],
    port: int = 7110,
) -> dict[str, Any]:
    """An EndpointSlice as the controller writes it: ``endpoints`` are (pod, ip, ready)."""
    labels = {"kubernetes.io/service-name": f"{service}-{region}" if region else service}
    labels["app.kubernetes.io/name"] = service
    if region:
        labels["edge/region"] = region
    items = []
    for pod, ip, ready in endpoints:
        conditions = {} if ready is None else {"ready": ready, "serving": ready}
        items.append(
            {
                "addresses": [ip],
                "conditions": conditions,
                "targetRef": {"kind": "Pod", "name": pod, "namespace": "edge"},
                "zone": "zone-a",
            }
        )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": labels},
        "addressType": "IPv4",
        "endpoints": items,
        "ports": [{"name": "metrics", "port": 9100}, {"name": "http", "port": port}],
    }


class FakeKubeApi:
    def __init__(self, namespace: str = "edge") -> None:
        self.namespace = namespace
        #: The service account token a client must send (``Authorization: Bearer``).
        self.token = "edge-gateway-test-token"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.version = 100
        self.objects: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        #: The oldest resourceVersion a watch may start from (later: 410 Gone).
        self.oldest = self.version
        self.changed = asyncio.Condition()
        #: Every request: ("list", None) or ("watch", resourceVersion asked for).
        self.requests: list[tuple[str, str | None]] = []
        self._generation = 0
        #: Cleared: new watch requests wait (a slow API server) until it is set again.
        self.watches_open = asyncio.Event()
        self.watches_open.set()
        self._runner: web.AppRunner | None = None

    # -- the cluster's side ---------------------------------------------------------------

    async def apply(self, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        name = obj["metadata"]["name"]
        kind = "MODIFIED" if name in self.objects else "ADDED"
        await self._record(kind, obj)
        self.objects[name] = obj

    async def delete(self, name: str) -> None:
        obj = self.objects.pop(name)
        await self._record("DELETED", obj)

    async def _record(self, kind: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.history.append((self.version, kind, copy.deepcopy(obj)))
        async with self.changed:
            self.changed.notify_all()

    def compact(self) -> None:
        """Forget the history: a watch from before now gets 410 Gone."""
        self.history.clear()
        self.oldest = self.version

    async def end_watches(self) -> None:
        self._generation += 1
        async with self.changed:
            self.changed.notify_all()

    # -- the server -----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._endpointslices)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self.end_watches()
            await self._runner.cleanup()
            self._runner = None

    async def _endpointslices(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401},
                status=401,
            )
        if request.match_info["namespace"] != self.namespace:
            return web.json_response({"kind": "EndpointSliceList", "items": [], "metadata": {}})
        selector = _selector(request.query.get("labelSelector", ""))
        if request.query.get("watch") in ("true", "1"):
            return await self._watch(request, selector)
        self.requests.append(("list", None))
        items = [o for o in self.objects.values() if _matches(o, selector)]
        return web.json_response(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSliceList",
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            },
            dumps=lambda v: orjson.dumps(v).decode(),
        )

    async def _watch(self, request: web.Request, selector: dict[str, str]) -> web.StreamResponse:
        since = request.query.get("resourceVersion")
        self.requests.append(("watch", since))
        await self.watches_open.wait()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def send(kind: str, obj: dict[str, Any]) -> None:
            await response.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")

        if since not in (None, "", "0") and int(since) < self.oldest:
            await send(
                "ERROR",
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"too old resource version: {since} ({self.oldest})",
                    "reason": "Expired",
                    "code": 410,
                },
            )
            return response
        if since in (None, "", "0"):
            # No version: the current state as ADDED events, then changes.
            for obj in self.objects.values():
                if _matches(obj, selector):
                    await send("ADDED", obj)
            sent = self.version
        else:
            sent = int(since)
        timeout = float(request.query.get("timeoutSeconds", "300"))
        generation = self._generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
        first = True
        while generation == self._generation and loop.time() < deadline:
            for version, kind, obj in self.history:
                if version > sent:
                    if _matches(obj, selector):
                        await send(kind, obj)
                    sent = version
            if first and bookmarks:
                await send(
                    "BOOKMARK",
                    {
                        "kind": "EndpointSlice",
                        "apiVersion": "discovery.k8s.io/v1",
                        "metadata": {"resourceVersion": str(self.version)},
                        "addressType": "IPv4",
                    },
                )
            first = False
            async with self.changed:
                try:
                    await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
        return response


def _selector(text: str) -> dict[str, str]:
    pairs = [p for p in text.split(",") if p]
    result = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        result[key] = value.lstrip("=")
    return result


def _matches(obj: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = obj["metadata"].get("labels", {})
    return all(labels.get(k) == v for k, v in selector.items())
