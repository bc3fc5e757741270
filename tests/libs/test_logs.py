"""Log lines: written in batches, never lost at a clean stop, warnings at once."""

from __future__ import annotations

import io
import logging
import threading
import time

import pytest

from edgelib.logs import FLUSH_SECONDS, BufferedLineHandler, JsonFormatter


class CountingStream(io.StringIO):
    """A text stream that counts how often it is written to."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self.lock = threading.Lock()

    def write(self, s: str) -> int:
        with self.lock:
            self.chunks.append(s)
            return super().write(s)


def logger_to(stream: CountingStream) -> tuple[logging.Logger, BufferedLineHandler]:
    handler = BufferedLineHandler(stream)
    handler.setFormatter(JsonFormatter("svc", "svc-1", "east"))
    log = logging.getLogger(f"test.buffered.{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return log, handler


def test_info_lines_are_written_together_within_the_flush_interval() -> None:
    stream = CountingStream()
    log, handler = logger_to(stream)
    try:
        for n in range(100):
            log.info("line %d", n)
        assert stream.getvalue() == ""  # nothing written per line
        deadline = time.monotonic() + FLUSH_SECONDS + 2.0
        while stream.getvalue().count("\n") < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stream.getvalue().count("\n") == 100
        # A few writes for the lot (each at most a pipe's atomic size), not one per line.
        assert len(stream.chunks) <= len(stream.getvalue()) // 4096 + 1
    finally:
        handler.close()


def test_a_warning_is_written_at_once_with_the_lines_before_it() -> None:
    stream = CountingStream()
    log, handler = logger_to(stream)
    try:
        log.info("before")
        log.warning("trouble")
        lines = stream.getvalue().splitlines()
        assert [line.split('"message":"')[1].split('"')[0] for line in lines] == [
            "before",
            "trouble",
        ]
    finally:
        handler.close()


def test_close_writes_what_waits_and_ends_the_writer_thread() -> None:
    stream = CountingStream()
    log, handler = logger_to(stream)
    log.info("last words")
    handler.close()
    assert "last words" in stream.getvalue()
    handler._writer.join(timeout=FLUSH_SECONDS + 2.0)
    assert not handler._writer.is_alive()


def test_secrets_are_redacted_by_attribute_name() -> None:
    stream = CountingStream()
    log, handler = logger_to(stream)
    log.warning("login", extra={"password": "hunter2", "Refresh_Token": "abc", "user": "al"})
    handler.close()
    out = stream.getvalue()
    assert "hunter2" not in out
    assert "abc" not in out
    assert '"user":"al"' in out


def test_a_batch_is_written_in_pieces_a_pipe_takes_whole() -> None:
    stream = CountingStream()
    log, handler = logger_to(stream)
    for n in range(200):
        log.info("line %d %s", n, "x" * 100)
    handler.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 200
    # Each write ends on a line boundary and stays within PIPE_BUF.
    assert len(stream.chunks) > 1
    assert all(len(chunk) <= 4096 for chunk in stream.chunks)
    assert all(chunk.endswith("\n") for chunk in stream.chunks)


def test_httpx_does_not_log_each_call_once_logging_is_configured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edgelib.logs import configure_logging, flush_logs

    configure_logging(service="svc", instance="svc-1", region=None)
    logging.getLogger("httpx").info('HTTP Request: GET http://peer/x?secret=1 "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("a call went wrong")
    flush_logs()
    out = capsys.readouterr().out
    assert "HTTP Request" not in out
    assert "a call went wrong" in out
