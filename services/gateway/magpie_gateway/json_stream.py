"""Reading a JSON request body incrementally: the whole document except one big array, which is handed over in
pieces as it is parsed (``create_aim_send_task``'s ``resolve_task.params``, up to a million recipients).

One pass of ijson's C backend (yajl2_c) over the file: ``ijson.items(file, "")`` builds the document, but the maps
it builds are ``HeadMap`` objects until the array named by ``path`` starts; that array's list is captured and its
complete items are moved to ``on_items`` every time the parser asks the file for more bytes (every ``buf_size``
bytes), so only one buffer's worth of its items exists at a time. Maps inside the array are plain dicts (nothing
Python-level per key). In the returned document the array's key is absent; ``StreamedDocument.found`` says whether
the array was there, ``count`` how many items it had.

A repeated key on the way to the array (two ``resolve_task`` or two ``params``) is refused (``RepeatedKey``): JSON
parsers disagree on which wins, and the items of the first were already handed over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import ijson

BUF_SIZE = 64 * 1024
ItemsHandler = Callable[[list[Any], int], None]  # (items, position of the first) -> None


class RepeatedKey(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass
class StreamedDocument:
    value: Any  # the document; the array's key removed from its map
    found: bool  # the array was present (and a JSON array)
    count: int  # its items


class _Capture:
    def __init__(self, path: tuple[str, ...], on_items: ItemsHandler) -> None:
        self.path = path
        self.on_items = on_items
        self.inside = False  # between the array's start and the next key set on a HeadMap
        self.items: list[Any] | None = None
        self.count = 0
        self.top: HeadMap | None = None
        self.error: Exception | None = None  # raised at the next read: C code calling a map must not see it

    def new_map(self) -> dict[str, Any]:
        if self.inside:
            return {}
        head = HeadMap(self, 0 if self.top is None else -1)
        if self.top is None:
            self.top = head
        return head

    def drain(self, *, final: bool = False) -> None:
        """Hand over the items built so far; the last one may still be under construction (the builder appends a
        map or list when it starts), so it stays until the next drain, unless the parse is over."""
        items = self.items
        keep = 0 if final else 1
        if items and len(items) > keep:
            taken = items[: len(items) - keep]
            del items[: len(items) - keep]
            first = self.count
            self.count += len(taken)
            self.on_items(taken, first)


class HeadMap(dict[str, Any]):
    """A map outside the streamed array; ``depth`` along the path to it (-1: off the path)."""

    __slots__ = ("capture", "depth")

    def __init__(self, capture: _Capture, depth: int) -> None:
        super().__init__()
        self.capture = capture
        self.depth = depth

    def __setitem__(self, key: str, value: Any) -> None:
        capture = self.capture
        capture.inside = False
        path = capture.path
        depth = self.depth
        if 0 <= depth < len(path) and key == path[depth]:
            if key in self:
                capture.error = capture.error or RepeatedKey(".".join(path[: depth + 1]))
                return
            if depth == len(path) - 1:
                if type(value) is list:
                    capture.items = value
                    capture.inside = True
                    dict.__setitem__(self, key, _ARRAY_MARK)
                    return
            elif isinstance(value, HeadMap):
                value.depth = depth + 1
        dict.__setitem__(self, key, value)


_ARRAY_MARK = object()


class _DrainingReader:
    def __init__(self, file: IO[bytes], capture: _Capture) -> None:
        self.file = file
        self.capture = capture

    def read(self, size: int = -1) -> bytes:
        capture = self.capture
        if capture.error is not None:
            raise capture.error
        capture.drain()
        return self.file.read(size)


def _plain(value: Any) -> Any:
    """The document as plain dicts, the array's key removed."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not _ARRAY_MARK}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def stream_document(
    file: IO[bytes], path: tuple[str, ...], on_items: ItemsHandler, *, buf_size: int = BUF_SIZE
) -> StreamedDocument:
    """Parse ``file`` (one JSON value) handing the items of the array at ``path`` to ``on_items`` in order.

    Raises ``ijson.JSONError`` (malformed or truncated JSON) and ``RepeatedKey``."""
    capture = _Capture(path, on_items)
    found = False
    values = list(
        ijson.items(_DrainingReader(file, capture), "", map_type=capture.new_map, use_float=True, buf_size=buf_size)
    )
    if capture.error is not None:
        raise capture.error
    if capture.items is not None:
        found = True
        capture.drain(final=True)
    if len(values) != 1:
        raise ijson.JSONError("the body must be one JSON value")
    return StreamedDocument(_plain(values[0]), found, capture.count)
