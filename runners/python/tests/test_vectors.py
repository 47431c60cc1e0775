"""Golden vectors (protocol/vectors): decoding, chunked decoding, byte-identical re-encoding."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import pytest

from rrqkit.codec import MAX_FRAME_BYTES, FrameDecoder, encode_body, encode_frame, parse_header
from rrqkit.errors import DecodeError, FrameTooLargeError

from helpers import VECTORS_DIR

MANIFEST = json.loads((VECTORS_DIR / "manifest.json").read_text())
VALID = [v for v in MANIFEST["vectors"] if v["kind"] == "valid"]
INVALID = [v for v in MANIFEST["vectors"] if v["kind"] == "invalid"]


def _id(vector: dict[str, Any]) -> str:
    return f"{vector['encoding']}-{vector['name']}"


def _read(vector: dict[str, Any]) -> bytes:
    return (VECTORS_DIR / vector["file"]).read_bytes()


def _decode_chunked(data: bytes, encoding: str, sizes: list[int]) -> list[dict[str, Any]]:
    decoder = FrameDecoder(encoding)  # type: ignore[arg-type]
    frames: list[dict[str, Any]] = []
    offset, i = 0, 0
    while offset < len(data):
        size = sizes[i % len(sizes)]
        frames += [f.raw for f in decoder.feed(data[offset : offset + size])]
        offset += size
        i += 1
    decoder.close()
    return frames


def test_manifest_is_complete() -> None:
    assert MANIFEST["max_frame_bytes"] == MAX_FRAME_BYTES
    assert len(VALID) >= 36 and len(INVALID) >= 30
    for vector in MANIFEST["vectors"]:
        assert (VECTORS_DIR / vector["file"]).is_file()


@pytest.mark.parametrize("vector", VALID, ids=_id)
def test_valid_vector_decodes_whole(vector: dict[str, Any]) -> None:
    decoder = FrameDecoder(vector["encoding"])
    frames = decoder.feed(_read(vector))
    decoder.close()
    assert [f.raw for f in frames] == vector["frames"]
    assert [f.type for f in frames] == [f["type"] for f in vector["frames"]]


@pytest.mark.parametrize("vector", VALID, ids=_id)
def test_valid_vector_decodes_in_small_chunks(vector: dict[str, Any]) -> None:
    data = _read(vector)
    for size in range(1, 8):
        assert _decode_chunked(data, vector["encoding"], [size]) == vector["frames"]
    rng = random.Random(vector["name"])
    for _ in range(5):
        sizes = [rng.randint(1, 7) for _ in range(16)]
        assert _decode_chunked(data, vector["encoding"], sizes) == vector["frames"]


@pytest.mark.parametrize("vector", VALID, ids=_id)
def test_valid_vector_reencodes_byte_identically(vector: dict[str, Any]) -> None:
    decoder = FrameDecoder(vector["encoding"])
    frames = decoder.feed(_read(vector))
    encoded = b"".join(encode_frame(f.raw, vector["encoding"]) for f in frames)
    assert encoded == _read(vector)
    # Writing the manifest's frames gives the same bytes too.
    assert b"".join(encode_frame(f, vector["encoding"]) for f in vector["frames"]) == _read(vector)


@pytest.mark.parametrize("vector", VALID, ids=_id)
def test_typed_payload_round_trip(vector: dict[str, Any]) -> None:
    """Typed payloads emit every schema field in order; absent fields come back as defaults."""
    defaults = {"params": {}, "protocol_version": "2", "hard_kill": False}
    decoder = FrameDecoder(vector["encoding"])
    for item in decoder.feed(_read(vector)):
        raw = item.raw["payload"]
        wire = item.payload.to_wire()
        for key, value in wire.items():
            expected = raw.get(key)
            if key == "context":
                expected = {k: expected.get(k) for k in value}
            elif expected is None:
                expected = defaults.get(key)
            assert value == expected, key
        if item.type == "cancel" and raw.get("request_id") is None:
            assert "request_id" not in wire  # a job-wide cancel omits request_id


@pytest.mark.parametrize("vector", INVALID, ids=_id)
def test_invalid_vector_error_code(vector: dict[str, Any]) -> None:
    data = _read(vector)
    for sizes in ([len(data) or 1], [1], [3]):
        decoder = FrameDecoder(vector["encoding"])
        if vector["error"] is None:
            frames = _decode_chunked(data, vector["encoding"], sizes)
            assert len(frames) == 1
            continue
        with pytest.raises(DecodeError) as caught:
            _decode_chunked(data, vector["encoding"], sizes)
        assert caught.value.code == vector["error"]
        del decoder


def test_oversize_rejected_from_header_alone() -> None:
    decoder = FrameDecoder("json")
    with pytest.raises(DecodeError) as caught:
        decoder.feed(struct.pack(">I", MAX_FRAME_BYTES + 1))
    assert caught.value.code == "frame_too_large"
    # The decoder stays failed.
    with pytest.raises(DecodeError):
        decoder.feed(b"{}")


def test_frame_of_exactly_max_size_is_valid() -> None:
    """A frame of exactly 16 MiB is written and read; one byte more is refused by the writer."""

    def envelope(n: int) -> dict[str, Any]:
        return {"type": "ping", "payload": {"nonce": "n" * n}}

    for encoding in ("json", "msgpack"):
        overhead = len(encode_body(envelope(70_000), encoding)) - 70_000  # type: ignore[arg-type]
        size = MAX_FRAME_BYTES - overhead
        data = encode_frame(envelope(size), encoding)  # type: ignore[arg-type]
        assert len(data) == 4 + MAX_FRAME_BYTES
        assert parse_header(data[:4]) == MAX_FRAME_BYTES
        (frame,) = FrameDecoder(encoding).feed(data)  # type: ignore[arg-type]
        assert len(frame.raw["payload"]["nonce"]) == size
        with pytest.raises(FrameTooLargeError):
            encode_frame(envelope(size + 1), encoding)  # type: ignore[arg-type]


def test_json_frame_at_exact_cap_decodes() -> None:
    body_prefix = b'{"type":"ping","payload":{"nonce":"'
    body_suffix = b'"}}'
    filler = MAX_FRAME_BYTES - len(body_prefix) - len(body_suffix)
    data = struct.pack(">I", MAX_FRAME_BYTES) + body_prefix + b"a" * filler + body_suffix
    (frame,) = FrameDecoder("json").feed(data)
    assert len(frame.raw["payload"]["nonce"]) == filler


def test_clean_close_between_frames_and_truncation() -> None:
    data = (VECTORS_DIR / "valid/json/ping.bin").read_bytes()
    decoder = FrameDecoder("json")
    decoder.feed(data)
    decoder.close()  # clean: ended between frames
    decoder = FrameDecoder("json")
    decoder.feed(data[:-1])
    with pytest.raises(DecodeError) as caught:
        decoder.close()
    assert caught.value.code == "frame_truncated"
