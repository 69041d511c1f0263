"""The metadata of a GGUF file (its key/value pairs and tensor names), read without its tensors.

``gguf.GGUFReader`` parses every field into numpy arrays, a tokenizer's 262k strings included, which
takes 4-15 s on the packaged models; a wizard asking which model fits cannot wait that long. This reads
the header as the GGUF specification lays it out (magic, version, counts, key/value pairs, tensor
infos), keeps scalars and the lengths of arrays, and stops before the tensor data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..core.errors import LangbuildError

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GgufHeader:
    metadata: dict  # key -> scalar or string; arrays are given as their length
    tensors: tuple[str, ...]  # tensor names, e.g. token_embd.weight, output.weight


def _unpack(handle: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    data = handle.read(size)
    if len(data) < size:
        raise EOFError("the file ends inside its header")
    return struct.unpack(fmt, data)[0]


def _string(handle: BinaryIO) -> str:
    length = _unpack(handle, "<Q")
    return handle.read(length).decode("utf-8", errors="replace")


def _skip_strings(handle: BinaryIO, count: int) -> None:
    for _ in range(count):
        handle.seek(_unpack(handle, "<Q"), 1)


def _value(handle: BinaryIO, kind: int):
    if kind in _SCALARS:
        return _unpack(handle, _SCALARS[kind])
    if kind == _STRING:
        return _string(handle)
    if kind == _ARRAY:
        item_kind, count = _unpack(handle, "<I"), _unpack(handle, "<Q")
        if item_kind == _STRING:
            _skip_strings(handle, count)
        elif item_kind in _SCALARS:
            handle.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
        else:
            raise ValueError(f"array of unsupported type {item_kind}")
        return count
    raise ValueError(f"unknown value type {kind}")


def read_gguf_header(path: Path) -> GgufHeader:
    """The key/value metadata and tensor names of the GGUF file at ``path`` (version 2 or 3)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"GGUF":
                raise ValueError("not a GGUF file")
            version = _unpack(handle, "<I")
            if version < 2:
                raise ValueError(f"GGUF version {version} is too old")
            tensor_count, kv_count = _unpack(handle, "<Q"), _unpack(handle, "<Q")
            metadata = {}
            for _ in range(kv_count):
                key = _string(handle)
                metadata[key] = _value(handle, _unpack(handle, "<I"))
            names = []
            for _ in range(tensor_count):
                names.append(_string(handle))
                dims = _unpack(handle, "<I")
                handle.seek(8 * dims + 4 + 8, 1)  # dimensions, type, offset
            return GgufHeader(metadata, tuple(names))
    except (OSError, EOFError, ValueError, struct.error) as err:
        raise LangbuildError(f"cannot read the GGUF header of {path} ({err}): reinstall the package that ships it") from None
