"""HTML form bodies (``application/x-www-form-urlencoded``), read with a size bound.

The console's forms are small: a route table of 1,000 routes in TOML is about 150 KB.
Anything larger, or another media type, is refused before it is parsed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

#: Bytes of a form body at most.
MAX_FORM_BYTES = 1024 * 1024
#: Fields of one form at most.
MAX_FORM_FIELDS = 1000


class FormError(Exception):
    """A form body the console does not read (too large, wrong media type, malformed)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Form:
    """A parsed form: the first value of a field, or all of them."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.pairs:
            if key == name:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.pairs)


async def read_form(request: Request) -> Form:
    """The request's form (parsed once per request, kept on ``request.state``)."""
    cached = getattr(request.state, "console_form", None)
    if isinstance(cached, Form):
        return cached
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(413, f"a form may have at most {MAX_FORM_BYTES} bytes")
    if body and media != "application/x-www-form-urlencoded":
        raise FormError(415, "the console takes application/x-www-form-urlencoded forms")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(400, f"the form cannot be read: {exc}") from None
    form = Form(pairs)
    request.state.console_form = form
    return form
