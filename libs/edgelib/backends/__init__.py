"""Redis features behind one interface: :func:`open_backend` picks the implementation."""

from edgelib.backends.base import Backend, BackendError, Subscription
from edgelib.backends.memory import MemoryBackend
from edgelib.backends.redis import RedisBackend


def open_backend(url: str) -> Backend:
    """``memory://`` gives the in-process backend; ``redis://`` or ``rediss://`` Redis."""
    if url.startswith("memory://"):
        return MemoryBackend()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBackend(url)
    raise ValueError(f"unsupported backend URL scheme: {url.split(':', 1)[0]!r}")


__all__ = [
    "Backend",
    "BackendError",
    "MemoryBackend",
    "RedisBackend",
    "Subscription",
    "open_backend",
]
