"""TLS termination on the public port (``GATEWAY_TLS_CERT_FILE``/``GATEWAY_TLS_KEY_FILE``).

One :class:`ssl.SSLContext` (TLS 1.2 and up, Python's default ciphers) offers ALPN
``h2`` and ``http/1.1``: a client that picks ``h2`` sends the HTTP/2 preface first, and
the HTTP/1.1 server hands the connection to :mod:`gateway_api.transport.h2` as it does
for h2c. The certificate and key files are watched (size and modification time, every
``check_interval`` seconds); when they change they are loaded into the same context, so
new handshakes present the new certificate while open connections go on. A file that
cannot be loaded (half-written, mismatched key) is logged and the old certificate kept.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from edgelib.tasks import cancel

logger = logging.getLogger("gateway.tls")


class TlsFiles:
    """The public listener's TLS context, following its certificate and key files."""

    def __init__(
        self, cert: Path, key: Path, *, http2: bool = True, check_interval: float = 5.0
    ) -> None:
        self.cert = cert
        self.key = key
        self.check_interval = check_interval
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
        self.context.load_cert_chain(cert, key)  # a bad pair stops the start
        self.reloads = 0
        self._stamp = self.stamp()
        self._task: asyncio.Task[None] | None = None

    def stamp(self) -> tuple[tuple[int, int], tuple[int, int]]:
        stats = [path.stat() for path in (self.cert, self.key)]
        return (stats[0].st_mtime_ns, stats[0].st_size), (stats[1].st_mtime_ns, stats[1].st_size)

    def reload_if_changed(self) -> bool:
        """Load the files again when they changed; True when the new pair is in force."""
        try:
            stamp = self.stamp()
        except OSError as exc:
            logger.warning(
                "TLS files unreadable; the old certificate stays", extra={"error": str(exc)}
            )
            return False
        if stamp == self._stamp:
            return False
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            # Perhaps caught between writing the certificate and the key: tried again.
            logger.warning(
                "TLS files changed but do not load; the old certificate stays",
                extra={"error": str(exc)},
            )
            return False
        self._stamp = stamp
        self.reloads += 1
        logger.info("TLS certificate reloaded", extra={"cert": str(self.cert)})
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="gateway-tls-files")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            self.reload_if_changed()
