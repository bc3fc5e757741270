"""Reserved usernames: privileged names and their case and look-alike variants.

Usernames are ASCII (``USERNAME_PATTERN``) and stored lower-cased, so ``Admin`` and
``ADMIN`` are ``admin``. What is left to confuse a reader are look-alikes inside
that alphabet: separators (``ad.min``, ``admin_``), digits for letters (``adm1n``,
``r00t``) and ``rn`` for ``m``. A name is reserved when its skeleton (after the
idea of Unicode TS #39's confusable skeletons, for this alphabet) equals the
skeleton of a reserved name.
"""

from __future__ import annotations

from collections.abc import Iterable

_SEPARATORS = str.maketrans("", "", "_.-")
_LOOK_ALIKE = str.maketrans("01i3457", "ollease")


def skeleton(name: str) -> str:
    """The form two names share when a reader could take one for the other."""
    bare = name.lower().translate(_SEPARATORS)
    return bare.replace("rn", "m").replace("vv", "w").translate(_LOOK_ALIKE)


class ReservedNames:
    def __init__(self, names: Iterable[str]) -> None:
        self.skeletons = frozenset(skeleton(n.strip()) for n in names if n.strip())

    @classmethod
    def from_setting(cls, value: str, *extra: str) -> ReservedNames:
        return cls([*value.split(","), *extra])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and skeleton(name) in self.skeletons
