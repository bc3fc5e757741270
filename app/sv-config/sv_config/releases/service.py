"""Releases: publish the draft, roll back, diff, and gray release to chosen instances.

Releases are immutable and numbered per namespace. Rollback and promotion never edit
history: each makes a new release whose content is copied from an earlier one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from edgelib.identity import Identity
from sv_config.content import (
    Content,
    ContentLimits,
    Diff,
    canonical,
    diff,
    draft_content,
    require_valid,
)
from sv_config.exceptions import (
    ConcurrentChange,
    GrayInProgress,
    InvalidTargets,
    NoGrayRelease,
    NothingToPublish,
    NotRollbackable,
    ReleaseNotFound,
    ReleaseTooLarge,
)
from sv_config.metrics import RELEASES
from sv_config.models import GrayRelease, Namespace, Release, utcnow
from sv_config.outbox import mark_changed
from sv_config.refs import NamespaceRef, load_namespace, record
from sv_config.repository import ConfigRepository
from sv_config.targeting import targets_empty


@dataclass(frozen=True)
class ReleaseHistory:
    releases: Sequence[Release]
    current: int | None
    gray: int | None


@dataclass(frozen=True)
class GrayView:
    release: Release
    gray: GrayRelease
    base: Release | None


def _summary(change: Diff) -> dict[str, list[str]]:
    return {
        "added": list(change.added),
        "removed": list(change.removed),
        "changed": list(change.changed),
    }


class ReleaseService:
    def __init__(self, repository: ConfigRepository, limits: ContentLimits) -> None:
        self.repository = repository
        self.limits = limits

    # --- main line ------------------------------------------------------------

    async def publish(self, ref: NamespaceRef, comment: str, actor: Identity) -> Release:
        """Make the draft the namespace's next release, for every client."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        await self._no_gray(namespace)
        content = draft_content(await self.repository.items(namespace.id))
        current = await self._current(namespace)
        change = diff(current.content if current else {}, content)
        if current is not None and change.empty:
            raise NothingToPublish(
                f"the draft of {ref} equals release {current.number}; edit it first"
            )
        self._check(namespace, content, "the draft")
        release = await self._new_release(namespace, "publish", content, comment, actor)
        namespace.current_release_id = release.id
        await record(
            self.repository,
            actor,
            "release.published",
            namespace,
            release_number=release.number,
            comment=comment,
            changes=_summary(change),
        )
        mark_changed(self.repository.session, namespace.environment, namespace.name)
        return release

    async def rollback(self, ref: NamespaceRef, to: int, comment: str, actor: Identity) -> Release:
        """Make release ``to``'s content current again, as a new release."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        await self._no_gray(namespace)
        target = await self._numbered(namespace, to)
        if target.kind == "gray":
            raise NotRollbackable(
                f"release {to} was a gray release and never ran for everyone; "
                "restore a main-line release"
            )
        current = await self._current(namespace)
        if current is not None and diff(current.content, target.content).empty:
            raise NothingToPublish(f"release {current.number} already has the content of {to}")
        self._check(namespace, target.content, f"release {to}")
        release = await self._new_release(
            namespace, "rollback", dict(target.content), comment, actor, source=to
        )
        namespace.current_release_id = release.id
        await record(
            self.repository,
            actor,
            "release.rolled_back",
            namespace,
            release_number=release.number,
            restored=to,
            replaced=current.number if current else None,
            comment=comment,
        )
        mark_changed(self.repository.session, namespace.environment, namespace.name)
        return release

    async def history(self, ref: NamespaceRef, *, limit: int, before: int | None) -> ReleaseHistory:
        namespace = await load_namespace(self.repository, ref)
        releases = await self.repository.releases(namespace.id, limit=limit, before=before)
        current = await self._current(namespace)
        gray = await self.repository.gray(namespace.id)
        gray_release = await self.repository.release_by_id(gray.release_id) if gray else None
        return ReleaseHistory(
            releases,
            current.number if current else None,
            gray_release.number if gray_release else None,
        )

    async def get(self, ref: NamespaceRef, number: int) -> Release:
        namespace = await load_namespace(self.repository, ref)
        return await self._numbered(namespace, number)

    async def diff(self, ref: NamespaceRef, old: int, new: int) -> Diff:
        """What changed from release ``old`` to release ``new``."""
        namespace = await load_namespace(self.repository, ref)
        first = await self._numbered(namespace, old)
        second = await self._numbered(namespace, new)
        return diff(first.content, second.content)

    # --- gray -----------------------------------------------------------------

    async def start_gray(
        self, ref: NamespaceRef, targets: dict[str, Any], comment: str, actor: Identity
    ) -> GrayView:
        """Release the draft to the targeted instances only; the rest keep the current one."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        await self._no_gray(namespace)
        self._check_targets(targets)
        content = draft_content(await self.repository.items(namespace.id))
        current = await self._current(namespace)
        change = diff(current.content if current else {}, content)
        if change.empty:
            raise NothingToPublish(f"the draft of {ref} equals the current release; edit it first")
        self._check(namespace, content, "the draft")
        release = await self._new_release(
            namespace, "gray", content, comment, actor, targets=targets
        )
        gray = GrayRelease(
            namespace_id=namespace.id,
            release_id=release.id,
            targets=targets,
            started_by=actor.username,
        )
        await self.repository.add(gray)
        await record(
            self.repository,
            actor,
            "gray.started",
            namespace,
            release_number=release.number,
            targets=targets,
            comment=comment,
            changes=_summary(change),
        )
        mark_changed(self.repository.session, namespace.environment, namespace.name)
        return GrayView(release, gray, current)

    async def gray(self, ref: NamespaceRef) -> GrayView:
        namespace = await load_namespace(self.repository, ref)
        return await self._gray(namespace)

    async def retarget(
        self, ref: NamespaceRef, targets: dict[str, Any], actor: Identity
    ) -> GrayView:
        """Change who runs the gray release (widen it step by step, for example)."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        view = await self._gray(namespace)
        self._check_targets(targets)
        old = view.gray.targets
        view.gray.targets = targets
        await self.repository.session.flush()
        await record(
            self.repository,
            actor,
            "gray.targets_changed",
            namespace,
            release_number=view.release.number,
            old=old,
            new=targets,
        )
        mark_changed(self.repository.session, namespace.environment, namespace.name)
        return view

    async def promote(self, ref: NamespaceRef, comment: str, actor: Identity) -> Release:
        """Make the gray release's content current for every client, as a new release."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        view = await self._gray(namespace)
        self._check(namespace, view.release.content, f"gray release {view.release.number}")
        await self.repository.end_gray(view.gray)
        release = await self._new_release(
            namespace,
            "promote",
            dict(view.release.content),
            comment,
            actor,
            source=view.release.number,
        )
        namespace.current_release_id = release.id
        await record(
            self.repository,
            actor,
            "gray.promoted",
            namespace,
            release_number=release.number,
            gray_release=view.release.number,
            comment=comment,
        )
        mark_changed(self.repository.session, namespace.environment, namespace.name)
        return release

    async def abort(self, ref: NamespaceRef, comment: str, actor: Identity) -> Release:
        """End the gray release: its instances go back to the current release."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        view = await self._gray(namespace)
        await self.repository.end_gray(view.gray)
        namespace.updated_at = utcnow()
        await record(
            self.repository,
            actor,
            "gray.aborted",
            namespace,
            release_number=view.release.number,
            comment=comment,
        )
        mark_changed(self.repository.session, namespace.environment, namespace.name)
        return view.release

    # --- shared ---------------------------------------------------------------

    async def _current(self, namespace: Namespace) -> Release | None:
        if namespace.current_release_id is None:
            return None
        return await self.repository.release_by_id(namespace.current_release_id)

    async def _numbered(self, namespace: Namespace, number: int) -> Release:
        release = await self.repository.release(namespace.id, number)
        if release is None:
            raise ReleaseNotFound(f"{namespace.name} has no release {number}", number=number)
        return release

    async def _gray(self, namespace: Namespace) -> GrayView:
        gray = await self.repository.gray(namespace.id)
        if gray is None:
            raise NoGrayRelease(f"{namespace.name} has no gray release running")
        release = await self.repository.release_by_id(gray.release_id)
        assert release is not None  # the foreign key keeps it
        return GrayView(release, gray, await self._current(namespace))

    async def _no_gray(self, namespace: Namespace) -> None:
        gray = await self.repository.gray(namespace.id)
        if gray is not None:
            release = await self.repository.release_by_id(gray.release_id)
            number = release.number if release else "?"
            raise GrayInProgress(
                f"gray release {number} of {namespace.name} is running; promote or abort it first",
                gray_release=number,
            )

    def _check_targets(self, targets: dict[str, Any]) -> None:
        if targets_empty(targets):
            raise InvalidTargets("name at least one instance, region or label")

    def _check(self, namespace: Namespace, content: Content, what: str) -> None:
        size = len(canonical(content))
        if size > self.limits.max_release_bytes:
            raise ReleaseTooLarge(
                f"{what} is {size} bytes; a release holds at most {self.limits.max_release_bytes}"
            )
        require_valid(namespace.json_schema, content, what)

    async def _new_release(
        self,
        namespace: Namespace,
        kind: str,
        content: Content,
        comment: str,
        actor: Identity,
        *,
        source: int | None = None,
        targets: dict[str, Any] | None = None,
    ) -> Release:
        release = Release(
            namespace_id=namespace.id,
            number=await self.repository.last_number(namespace.id) + 1,
            kind=kind,
            content=content,
            comment=comment,
            author_id=actor.user_id,
            author=actor.username,
            source_number=source,
            targets=targets,
        )
        try:
            await self.repository.add(release)
        except IntegrityError as exc:
            raise ConcurrentChange(
                f"another release of {namespace.name} was made at the same time; retry"
            ) from exc
        RELEASES.labels(kind).inc()
        namespace.updated_at = utcnow()
        return release
