"""A render worker process: one JSON request per line on stdin, one answer per line on stdout.

Run by :class:`~sv_notice.templates.renderer.TemplateRenderer` as
``python -m sv_notice.templates.render_worker <memory bytes>``. Its address space is
capped, so a template that allocates without end fails with MemoryError here; one
that loops without end is killed by the parent at its deadline. Either way the
service's own process never runs template code.
"""

from __future__ import annotations

import json
import resource
import sys

from sv_notice.templates.sandbox import RenderError, render_fields


def _limit_memory(limit: int) -> None:
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def serve(memory_limit: int) -> None:
    """Answer requests until stdin closes."""
    _limit_memory(memory_limit)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # Imports are done: from here on, the parent's deadline measures template work only.
    stdout.write(b'{"ready": true}\n')
    stdout.flush()
    for line in stdin:
        request = json.loads(line)
        try:
            answer: dict[str, object] = {
                "ok": render_fields(
                    request["fields"], request["context"], max_output=request["max_output"]
                )
            }
        except RenderError as exc:
            answer = {"error": str(exc)}
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
