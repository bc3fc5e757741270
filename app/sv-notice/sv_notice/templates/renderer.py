"""Templates render in worker processes, with a deadline, an output cap and a memory cap.

Jinja2's sandbox keeps a template away from Python internals, but not from the CPU or
memory: ``{% for i in range(99999) %}{% for j in range(99999) %}...`` loops for hours
and ``{{ "x" * 10**9 }}`` allocates a gigabyte, in one C call nothing in-process can
interrupt. So templates never run in the service's process. A worker that misses its
deadline is killed and replaced; the render fails with a 422 problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sv_notice.exceptions import RenderFailed
from sv_notice.templates.sandbox import RenderError, is_linear, render_fields

#: Longest answer line a worker may write: fields are capped well below this.
_LINE_LIMIT = 4 * 1024 * 1024
#: Seconds a new worker may take to start (imports, on a loaded machine).
_START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class RenderLimits:
    #: Seconds one render may take, worker round trip included.
    timeout: float = 1.0
    #: Characters each rendered field may have.
    max_output: int = 20_000
    #: Address space of a worker process, in bytes (0: no cap).
    memory: int = 512 * 1024 * 1024
    #: Worker processes per instance, started on first use.
    workers: int = 2


class _Worker:
    """One render process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, memory: int) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sv_notice.templates.render_worker",
            str(memory),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=_LINE_LIMIT,
            # The worker imports what this process imports, however it was started.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        worker = cls(process)
        try:
            # Starting Python is not the template's time: it has its own, generous bound.
            async with asyncio.timeout(_START_TIMEOUT):
                ready = await worker.read()
        except BaseException:
            await worker.stop()
            raise
        if not ready.get("ready"):
            await worker.stop()
            raise EOFError("the render worker did not start")
        return worker

    async def ask(self, request: bytes) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(request)
        await stdin.drain()
        return await self.read()

    async def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise EOFError("the render worker ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


class TemplateRenderer:
    """Renders template fields in a small pool of sandboxed worker processes."""

    def __init__(self, limits: RenderLimits | None = None) -> None:
        self.limits = limits or RenderLimits()
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.limits.workers)
        self._all: set[_Worker] = set()
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def render(self, fields: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
        """Each field rendered with ``context``; :class:`RenderFailed` when it cannot be."""
        if all(is_linear(source) for source in fields.values()):
            try:
                return render_fields(fields, context, max_output=self.limits.max_output)
            except RenderError as exc:
                raise RenderFailed(str(exc)) from exc
        request = json.dumps(
            {"fields": dict(fields), "context": dict(context), "max_output": self.limits.max_output}
        ).encode()
        async with self._slots:
            try:
                worker = await self._take()
            except (EOFError, OSError, TimeoutError) as exc:
                raise RenderFailed("rendering is unavailable: no worker could start") from exc
            try:
                async with asyncio.timeout(self.limits.timeout):
                    answer = await worker.ask(request + b"\n")
            except TimeoutError as exc:
                await self._discard(worker)
                raise RenderFailed(
                    f"rendering took longer than {self.limits.timeout:g} s and was stopped"
                ) from exc
            except (EOFError, OSError, ValueError) as exc:
                await self._discard(worker)
                raise RenderFailed("rendering failed: the template exhausted its worker") from exc
            except BaseException:
                await self._discard(worker)
                raise
            self._idle.put_nowait(worker)
        if "error" in answer:
            raise RenderFailed(str(answer["error"]))
        return {str(k): str(v) for k, v in answer["ok"].items()}

    @property
    def idle_workers(self) -> int:
        """Workers started and waiting for a template."""
        return self._idle.qsize()

    async def _take(self) -> _Worker:
        if self._closed:
            raise RenderFailed("the service is stopping")
        if not self._idle.empty():
            return self._idle.get_nowait()
        worker = await _Worker.start(self.limits.memory)
        self._all.add(worker)
        return worker

    async def _discard(self, worker: _Worker) -> None:
        self._all.discard(worker)
        await worker.stop()
        if not self._closed:
            # Replace it now, so the next render does not wait for Python to start.
            task = asyncio.create_task(self._replace())
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    async def _replace(self) -> None:
        try:
            worker = await _Worker.start(self.limits.memory)
        except (EOFError, OSError, TimeoutError):
            return  # the next render starts one itself, and reports if it cannot
        if self._closed:
            await worker.stop()
            return
        self._all.add(worker)
        self._idle.put_nowait(worker)

    async def aclose(self) -> None:
        """Stop every worker."""
        self._closed = True
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        workers, self._all = self._all, set()
        while not self._idle.empty():
            self._idle.get_nowait()
        for worker in workers:
            await worker.stop()
