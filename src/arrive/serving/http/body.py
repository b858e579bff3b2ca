"""Reading a request body under a size cap (413 before and while streaming)."""

from __future__ import annotations

from starlette.requests import Request

from arrive.serving.http.errors import HttpError


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refusing with 413 once it exceeds ``max_bytes``.

    A ``Content-Length`` above the cap is refused before reading; the bytes are
    counted while streaming too (chunked bodies, or a lying header).

    Raises:
        HttpError: 413 (too large) or 400 (a malformed ``Content-Length``).
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HttpError(
                400, "the Content-Length header is not a number", field="Content-Length"
            )
        if int(declared) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        if chunk:
            chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(max_bytes: int) -> HttpError:
    return HttpError(413, f"the body is larger than {max_bytes} bytes", field="body")
