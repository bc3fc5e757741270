"""Following Kubernetes EndpointSlices: pools of ready pods instead of Service VIPs.

The watcher lists the EndpointSlices of one namespace, then watches them from the
listing's ``resourceVersion`` (lightkube's async client). A slice belongs to the pool of
its Service: the service is the slice's ``app.kubernetes.io/name`` label (the
EndpointSlice controller copies the Service's labels) or else its
``kubernetes.io/service-name``, and the region its ``edge/region`` label, else the
watcher's own ``region``. A member is one endpoint whose ``ready`` condition is not
false (Kubernetes says an unknown readiness counts as ready), at the slice's port named
``port_name`` (else its first port). ``410 Gone`` (the version is too old) and any
broken stream lead to a full list again; while the API server does not answer the
membership is stale and keeps its members. The choice of client is in doc/decisions.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.discovery_v1 import EndpointSlice

from edgelib.discovery.model import Member, Membership
from edgelib.tasks import cancel

logger = logging.getLogger("edgelib.discovery")

SERVICE_LABEL = "app.kubernetes.io/name"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
REGION_LABEL = "edge/region"


def slice_members(
    slice_: EndpointSlice, *, region: str | None, port_name: str = "http", scheme: str = "http"
) -> list[Member]:
    """The ready endpoints of one EndpointSlice, as members of its service's pool."""
    meta = slice_.metadata
    labels = (meta.labels if meta else None) or {}
    service = labels.get(SERVICE_LABEL) or labels.get(SERVICE_NAME_LABEL)
    if not service:
        return []
    ports = slice_.ports or []
    port = next((p.port for p in ports if p.name == port_name and p.port), None)
    if port is None:
        port = next((p.port for p in ports if p.port), None)
    if port is None:
        return []
    pool_region = labels.get(REGION_LABEL, region)
    members: list[Member] = []
    for endpoint in slice_.endpoints or []:
        conditions = endpoint.conditions
        if conditions is not None and conditions.ready is False:
            continue
        if not endpoint.addresses:
            continue
        address = endpoint.addresses[0]
        host = f"[{address}]" if ":" in address else address
        target = endpoint.targetRef
        instance = (target.name if target else None) or endpoint.hostname or address
        members.append(
            Member(
                service=service,
                region=pool_region,
                instance=instance,
                url=f"{scheme}://{host}:{port}",
                zone=endpoint.zone,
            )
        )
    return members


class EndpointSliceWatcher:
    """The ready endpoints of one namespace's EndpointSlices, kept current."""

    def __init__(
        self,
        namespace: str,
        *,
        region: str | None = None,
        config: KubeConfig | None = None,
        labels: dict[str, Any] | None = None,
        port_name: str = "http",
        scheme: str = "http",
        retry: float = 0.2,
        max_retry: float = 2.0,
    ) -> None:
        self.namespace = namespace
        self.region = region
        self.labels = labels
        self.port_name = port_name
        self.scheme = scheme
        self.retry = retry
        self.max_retry = max_retry
        self.membership = Membership(f"k8s:{namespace}")
        # None: in the cluster (service account), else $KUBECONFIG / ~/.kube/config.
        self._client = AsyncClient(config=config, namespace=namespace)
        self._task: asyncio.Task[None] | None = None
        self._slices: dict[str, list[Member]] = {}
        #: The resourceVersion the current watch resumes from (None: list first).
        self.resource_version: str | None = None
        self.lists = 0

    async def __aenter__(self) -> EndpointSliceWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"discovery-k8s:{self.namespace}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        self.membership.close()
        await self._client.close()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.membership.synced.wait(), timeout)

    def status(self) -> dict[str, Any]:
        return {**self.membership.status(), "resource_version": self.resource_version}

    async def _run(self) -> None:
        delay = self.retry
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                    delay = self.retry
                await self._watch()
            except ApiError as exc:
                if exc.status.code == 410:
                    logger.info("discovery: %s: version gone (410); listing again", self.namespace)
                    self.resource_version = None
                    continue
                self._broken(exc)
            except Exception as exc:  # a discovery loop must outlive any failure
                self._broken(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry)

    def _broken(self, exc: BaseException) -> None:
        self.membership.mark_stale(exc)
        # The stream broke: what happened meanwhile is read by listing again.
        self.resource_version = None

    async def _list(self) -> None:
        listing = self._client.list(EndpointSlice, namespace=self.namespace, labels=self.labels)
        slices: dict[str, list[Member]] = {}
        async for item in listing:
            if item.metadata and item.metadata.name:
                slices[item.metadata.name] = self._members(item)
        self.resource_version = listing.resourceVersion
        self._slices = slices
        self.membership.replace(self._all())
        self.lists += 1
        self.membership.mark_fresh()
        logger.info(
            "discovery: listed %d EndpointSlices in %s at resourceVersion %s",
            len(slices),
            self.namespace,
            self.resource_version,
        )

    async def _watch(self) -> None:
        async for op, item in self._client.watch(
            EndpointSlice,
            namespace=self.namespace,
            labels=self.labels,
            resource_version=self.resource_version,
        ):
            meta = item.metadata
            if meta is not None and meta.resourceVersion:
                self.resource_version = meta.resourceVersion
            if meta is None or not meta.name or op not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            if op == "DELETED":
                self._slices.pop(meta.name, None)
            else:
                self._slices[meta.name] = self._members(item)
            self.membership.replace(self._all(), resync=False)

    def _members(self, item: EndpointSlice) -> list[Member]:
        return slice_members(item, region=self.region, port_name=self.port_name, scheme=self.scheme)

    def _all(self) -> list[Member]:
        return [m for members in self._slices.values() for m in members]
