"""Namespaces and their drafts: create, schema, and edits to the working copy.

Edits never reach clients: only a release does (see :mod:`sv_config.releases`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import flag_modified

from edgelib.identity import Identity
from sv_config.content import (
    ContentLimits,
    Diff,
    check_item,
    check_schema,
    diff,
    draft_content,
    infer_type,
    require_valid,
    values_of,
    violations,
)
from sv_config.exceptions import InvalidItem, ItemNotFound, NamespaceExists, TooManyItems
from sv_config.models import Item, Namespace, Release, utcnow
from sv_config.refs import NamespaceRef, load_namespace, record
from sv_config.repository import ConfigRepository
from sv_config.schemas import DraftEdit, ItemWrite, NamespaceCreate


@dataclass(frozen=True)
class NamespaceView:
    namespace: Namespace
    current: Release | None
    gray: Release | None


@dataclass(frozen=True)
class DraftView:
    namespace: Namespace
    base: Release | None
    items: Sequence[Item]
    changes: Diff
    violations: list[dict[str, str]]


class NamespaceService:
    def __init__(self, repository: ConfigRepository, limits: ContentLimits) -> None:
        self.repository = repository
        self.limits = limits

    async def create(self, body: NamespaceCreate, actor: Identity) -> NamespaceView:
        """Make an empty namespace; it has no release until its first publish."""
        if body.json_schema is not None:
            check_schema(body.json_schema, max_bytes=self.limits.max_schema_bytes)
        ref = NamespaceRef(body.environment, body.cluster, body.name)
        if await self.repository.namespace(ref.environment, ref.cluster, ref.name) is not None:
            raise NamespaceExists(f"namespace {ref} already exists")
        namespace = Namespace(
            name=body.name,
            environment=body.environment,
            cluster=body.cluster,
            app=body.app,
            description=body.description,
            json_schema=body.json_schema,
            created_by=actor.username,
        )
        try:
            await self.repository.add(namespace)
        except IntegrityError as exc:
            raise NamespaceExists(f"namespace {ref} already exists") from exc
        await record(
            self.repository,
            actor,
            "namespace.created",
            namespace,
            app=body.app,
            has_schema=body.json_schema is not None,
        )
        return NamespaceView(namespace, None, None)

    async def list(
        self, *, environment: str | None, cluster: str | None, app: str | None
    ) -> list[NamespaceView]:
        found = await self.repository.namespaces(environment=environment, cluster=cluster, app=app)
        return [await self._view(namespace) for namespace in found]

    async def describe(self, ref: NamespaceRef) -> NamespaceView:
        return await self._view(await load_namespace(self.repository, ref))

    async def _view(self, namespace: Namespace) -> NamespaceView:
        current = await self._release(namespace.current_release_id)
        gray_row = await self.repository.gray(namespace.id)
        gray = await self._release(gray_row.release_id if gray_row else None)
        return NamespaceView(namespace, current, gray)

    async def _release(self, release_id: int | None) -> Release | None:
        if release_id is None:
            return None
        return await self.repository.release_by_id(release_id)

    async def set_schema(
        self, ref: NamespaceRef, schema: dict[str, Any] | None, actor: Identity
    ) -> NamespaceView:
        """Replace the schema; refused if what clients run now would break it."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        if schema is not None:
            check_schema(schema, max_bytes=self.limits.max_schema_bytes)
            view = await self._view(namespace)
            for release in (view.current, view.gray):
                if release is not None:
                    require_valid(schema, release.content, f"release {release.number}")
        namespace.json_schema = schema
        namespace.updated_at = utcnow()
        await record(self.repository, actor, "namespace.schema_set", namespace, schema=schema)
        return await self._view(namespace)

    # --- drafts ---------------------------------------------------------------

    async def draft(self, ref: NamespaceRef) -> DraftView:
        """The working copy and how it differs from the release clients run."""
        namespace = await load_namespace(self.repository, ref)
        return await self._draft(namespace)

    async def _draft(self, namespace: Namespace) -> DraftView:
        base = await self._release(namespace.current_release_id)
        items = await self.repository.items(namespace.id)
        content = draft_content(items)
        found = (
            violations(namespace.json_schema, values_of(content))
            if namespace.json_schema is not None
            else []
        )
        return DraftView(namespace, base, items, diff(base.content if base else {}, content), found)

    async def set_item(
        self, ref: NamespaceRef, key: str, write: ItemWrite, actor: Identity
    ) -> Item:
        """Create or change one key of the draft."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        item = await self._set(namespace, key, write, actor)
        await self._check_count(namespace)
        return item

    async def edit(self, ref: NamespaceRef, edit: DraftEdit, actor: Identity) -> DraftView:
        """Apply several sets and deletes to the draft, all or nothing."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        both = sorted(set(edit.set) & set(edit.delete))
        if both:
            raise InvalidItem(f"keys both set and deleted: {', '.join(both)}", keys=both)
        for key in sorted(set(edit.delete)):
            await self._delete(namespace, key, actor)
        for key, write in edit.set.items():
            await self._set(namespace, key, write, actor)
        await self._check_count(namespace)
        return await self._draft(namespace)

    async def delete_item(self, ref: NamespaceRef, key: str, actor: Identity) -> None:
        namespace = await load_namespace(self.repository, ref, for_update=True)
        await self._delete(namespace, key, actor)

    async def discard(self, ref: NamespaceRef, actor: Identity) -> DraftView:
        """Reset the draft to the content of the release clients run (empty if none)."""
        namespace = await load_namespace(self.repository, ref, for_update=True)
        base = await self._release(namespace.current_release_id)
        await self.repository.clear_items(namespace.id)
        await self._fill(namespace, base.content if base else {}, actor)
        await record(
            self.repository,
            actor,
            "draft.discarded",
            namespace,
            release_number=base.number if base else None,
        )
        return await self._draft(namespace)

    async def _fill(
        self, namespace: Namespace, content: Mapping[str, Any], actor: Identity
    ) -> None:
        for key, item in content.items():
            self.repository.session.add(
                Item(
                    namespace_id=namespace.id,
                    key=key,
                    type=item["type"],
                    value=item["value"],
                    updated_by=actor.username,
                )
            )
        await self.repository.session.flush()

    async def _set(self, namespace: Namespace, key: str, write: ItemWrite, actor: Identity) -> Item:
        item = await self.repository.item(namespace.id, key)
        item_type = write.type or (item.type if item else infer_type(write.value))
        check_item(key, write.value, item_type, max_value_bytes=self.limits.max_value_bytes)
        old = {"type": item.type, "value": item.value} if item else None
        if item is None:
            item = Item(
                namespace_id=namespace.id,
                key=key,
                type=item_type,
                value=write.value,
                comment=write.comment or "",
                updated_by=actor.username,
            )
            await self.repository.add(item)
        else:
            if write.comment is not None:
                item.comment = write.comment
            item.type = item_type
            item.value = write.value
            # JSON equality is Python's (True == 1): flag it so the new value is written.
            flag_modified(item, "value")
            item.updated_by = actor.username
            item.updated_at = utcnow()
            await self.repository.session.flush()
        await record(
            self.repository,
            actor,
            "item.set",
            namespace,
            key=key,
            old=old,
            new={"type": item_type, "value": write.value},
        )
        return item

    async def _delete(self, namespace: Namespace, key: str, actor: Identity) -> None:
        item = await self.repository.item(namespace.id, key)
        if item is None:
            raise ItemNotFound(f"the draft of {namespace.name} has no key {key!r}", key=key)
        old = {"type": item.type, "value": item.value}
        await self.repository.remove_item(item)
        await record(self.repository, actor, "item.deleted", namespace, key=key, old=old)

    async def _check_count(self, namespace: Namespace) -> None:
        count = await self.repository.count_items(namespace.id)
        if count > self.limits.max_items:
            raise TooManyItems(
                f"a namespace holds at most {self.limits.max_items} keys",
                limit=self.limits.max_items,
            )
