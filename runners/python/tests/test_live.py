"""Live jobs, runner side (issue 23): hello tags and features, progress and output frames.

Most tests serve an in-process :class:`RunnerRuntime` on loopback TCP and speak frames to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rrqkit import Registry, job_context
from rrqkit.codec import Encoding, FrameDecoder, decode_envelope, encode_frame, frame
from rrqkit.errors import DecodeError
from rrqkit.live import JobContext
from rrqkit.models import (
    ExecutionRequest,
    Hello,
    LiveOptions,
    OutputChunk,
    ProgressUpdate,
    normalize_tags,
)
from rrqkit.runtime import FEATURES, RunnerRuntime, runner_tags

from helpers import FrameClient, running
from helpers import request as request_payload

# -- models and codec ---------------------------------------------------------------------


def _decode(frame_type: str, payload: dict[str, Any]) -> Any:
    return decode_envelope({"type": frame_type, "payload": payload}).payload


def test_progress_frame_round_trip_and_validation() -> None:
    payload = {"job_id": "j", "request_id": "r", "progress": 0.5, "message": "half", "detail": {}}
    update = _decode("progress", payload)
    assert update == ProgressUpdate("j", "r", 0.5, "half", {})
    assert update.to_wire() == payload
    assert list(update.to_wire()) == ["job_id", "request_id", "progress", "message", "detail"]
    assert _decode("progress", {"job_id": "j", "request_id": "r"}) == ProgressUpdate("j", "r")
    for bad in (
        {"progress": 1.5},
        {"progress": -0.1},
        {"progress": "0.5"},
        {"progress": True},
        {"message": 3},
        {"message": "m" * 1025},
        {"request_id": None},
        {"request_id": ""},
    ):
        with pytest.raises(DecodeError) as caught:
            _decode("progress", {**payload, **bad})
        assert caught.value.code == "invalid_frame", bad
    assert _decode("progress", {**payload, "message": "m" * 1024}).message == "m" * 1024
    # readers leave the detail's size to writers (schema)
    assert _decode("progress", {**payload, "detail": "v" * 5000}).detail == "v" * 5000


def test_output_frame_round_trip_and_validation() -> None:
    payload = {
        "job_id": "j",
        "request_id": "r",
        "seq": 0,
        "stream": "handler",
        "data": "line\n",
        "truncated": False,
        "dropped_bytes": 0,
    }
    chunk = _decode("output", payload)
    assert chunk == OutputChunk("j", "r", 0, "handler", "line\n")
    assert chunk.to_wire() == payload
    for bad in (
        {"seq": -1},
        {"seq": 1.5},
        {"stream": "log"},
        {"data": None},
        {"data": "é" * 32769},  # 65538 bytes of UTF-8
        {"truncated": "yes"},
        {"dropped_bytes": -3},
    ):
        with pytest.raises(DecodeError) as caught:
            _decode("output", {**payload, **bad})
        assert caught.value.code == "invalid_frame", bad


def test_request_live_field() -> None:
    wire = request_payload("echo")
    assert ExecutionRequest.from_wire(wire).live is None
    assert "live" not in ExecutionRequest.from_wire(wire).to_wire()  # RRQ's bytes unchanged
    wire["live"] = None
    assert ExecutionRequest.from_wire(wire).live is None
    wire["live"] = {"progress": True, "output": False, "progress_interval_ms": 100}
    decoded = ExecutionRequest.from_wire(wire)
    assert decoded.live == LiveOptions(progress=True, progress_interval_ms=100)
    assert decoded.to_wire()["live"] == {
        "progress": True,
        "output": False,
        "progress_interval_ms": 100,
        "output_max_bytes": 8 * 1024 * 1024,  # absent reads as the default, written as a value
    }
    for bad in ([], {"progress": 1}, {"output_max_bytes": -1}, {"progress_interval_ms": 0.5}):
        wire["live"] = bad
        with pytest.raises(DecodeError) as caught:
            ExecutionRequest.from_wire(wire)
        assert caught.value.code == "invalid_frame", bad


def test_hello_tags() -> None:
    hello = Hello(runtime="x", features=[], tags=["gpu"])
    assert hello.to_wire()["tags"] == ["gpu"]
    assert "tags" not in Hello(runtime="x", features=[]).to_wire()
    assert "tags" not in Hello(runtime="x", features=[], tags=[]).to_wire()
    base = {"protocol_version": "2", "runtime": "x", "features": []}
    assert Hello.from_wire({**base, "tags": ["a", "region:eu"]}).tags == ["a", "region:eu"]
    assert Hello.from_wire(base).tags is None
    for bad in ("gpu", [""], ["a b"], ["x" * 65], [f"t{i}" for i in range(33)], [1], ["a", "a"]):
        with pytest.raises(DecodeError):
            Hello.from_wire({**base, "tags": bad})


def test_tags_are_checked_merged_and_sorted() -> None:
    assert normalize_tags(["gpu", "a", "gpu"]) == ["a", "gpu"]
    assert runner_tags(["gpu"], env=" region:eu , ,gpu,cuda=12") == ["cuda=12", "gpu", "region:eu"]
    assert runner_tags(None, env="") == []
    with pytest.raises(ValueError):
        runner_tags(["no spaces"], env="")
    with pytest.raises(ValueError):
        runner_tags(None, env="ok,bad!")
    with pytest.raises(ValueError):
        normalize_tags([f"t{i}" for i in range(33)])
    with pytest.raises(TypeError):
        normalize_tags("gpu")


def test_runtime_tags_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRQ_RUNNER_TAGS", "gpu,region:eu")
    assert RunnerRuntime(Registry(), tags=["fast", "gpu"]).tags == ["fast", "gpu", "region:eu"]
    monkeypatch.setenv("RRQ_RUNNER_TAGS", "bad tag")
    with pytest.raises(ValueError):
        RunnerRuntime(Registry())


def test_job_context_outside_a_handler_does_nothing() -> None:
    ctx = job_context()
    assert ctx.job_id is None and not ctx.progress_enabled and not ctx.output.enabled
    ctx.progress(0.5, "half", {"n": 1})
    ctx.output.write("text")
    ctx.output.json({"a": 1})
    # Mistakes still show, whether or not anything is sent.
    with pytest.raises(TypeError):
        ctx.progress("half")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ctx.output.write(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ctx.output.json({"when": object()})
    with pytest.raises(ValueError):
        ctx.output.json(float("nan"))
    # a detail JSON cannot hold is left out with a log line, never raised (§13.2)
    ctx.progress(0.5, None, {"when": object()})
    ctx.progress(0.5, None, float("inf"))


# -- an in-process runner ------------------------------------------------------------------


class Peer:
    """An orchestrator stand-in on one connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, encoding: Encoding
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.encoding: Encoding = encoding
        self.decoder = FrameDecoder(encoding)
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()

    async def send_request(
        self, function_name: str, params: Any = None, live: Any = None, **kwargs: Any
    ) -> str:
        payload = request_payload(function_name, params, **kwargs)
        if live is not None:
            payload["live"] = live
        self.writer.write(encode_frame({"type": "request", "payload": payload}, self.encoding))
        await self.writer.drain()
        return str(payload["request_id"])

    async def next(self) -> tuple[str, dict[str, Any]]:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(1 << 16), 5)
            if not data:
                raise EOFError
            self.pending += [(f.type, f.raw["payload"]) for f in self.decoder.feed(data)]
        return self.pending.popleft()

    async def until_response(self, request_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Frames of ``request_id`` up to and including its response."""
        got: list[tuple[str, dict[str, Any]]] = []
        while True:
            frame_type, payload = await self.next()
            if payload.get("request_id") != request_id:
                continue
            got.append((frame_type, payload))
            if frame_type == "response":
                return got


@contextlib.asynccontextmanager
async def serve(
    registry: Registry, encoding: Encoding = "json", **kwargs: Any
) -> AsyncIterator[Peer]:
    runtime = RunnerRuntime(registry, hello=True, **kwargs)
    ready: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        runtime.serve_tcp("127.0.0.1", 0, encoding=encoding, on_ready=ready.set_result)
    )
    host, port = await ready
    reader, writer = await asyncio.open_connection(host, port)
    peer = Peer(reader, writer, encoding)
    try:
        yield peer
    finally:
        writer.close()
        runtime.stop()
        await task


ALL_ON = {"progress": True, "output": True, "progress_interval_ms": 0, "output_max_bytes": 1000}


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_hello_announces_features_and_tags(
    encoding: Encoding, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RRQ_RUNNER_TAGS", "region:eu")
    async with serve(Registry(), encoding, tags=["gpu"]) as peer:
        frame_type, hello = await peer.next()
    assert frame_type == "hello"
    assert hello["features"] == list(FEATURES)
    assert {"progress", "output"} <= set(hello["features"])
    assert hello["tags"] == ["gpu", "region:eu"]
    assert list(hello)[-1] == "tags"


def _live_registry() -> Registry:
    registry = Registry()

    @registry.handler("work")
    async def work(request: ExecutionRequest) -> Any:
        ctx = job_context()
        assert ctx.job_id == request.job_id and ctx.request_id == request.request_id
        ctx.progress(0.25, "quarter")
        ctx.output.write("hello ")
        ctx.output.json({"n": 1})
        ctx.progress(1, "done", {"items": 3})
        return {"ok": True}

    @registry.handler("sync_work")
    def sync_work(_request: ExecutionRequest) -> Any:
        ctx = job_context()
        ctx.progress(0.5)
        ctx.output.write("from a thread\n")

        def other_thread() -> None:  # a thread the handler starts gets the context passed on
            ctx.output.write("and another\n")

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        return "ok"

    return registry


async def _frames_of(peer: Peer, rid: str) -> list[tuple[str, dict[str, Any]]]:
    return await peer.until_response(rid)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_frames_precede_the_response(encoding: Encoding) -> None:
    async with serve(_live_registry(), encoding) as peer:
        rid = await peer.send_request("work", live=ALL_ON, job_id="job-1")
        frames = await _frames_of(peer, rid)
    # the two writes of one event-loop turn share a frame; the progress report flushes it first
    assert [t for t, _ in frames] == ["progress", "output", "progress", "response"]
    assert frames[0][1] == {
        "job_id": "job-1",
        "request_id": rid,
        "progress": 0.25,
        "message": "quarter",
        "detail": None,
    }
    assert frames[1][1] == {
        "job_id": "job-1",
        "request_id": rid,
        "seq": 0,
        "stream": "handler",
        "data": 'hello {"n":1}\n',
        "truncated": False,
        "dropped_bytes": 0,
    }
    assert frames[2][1]["progress"] == 1 and frames[2][1]["detail"] == {"items": 3}
    assert frames[3][1]["status"] == "success"


async def test_sync_handler_and_its_threads() -> None:
    async with serve(_live_registry()) as peer:
        rid = await peer.send_request("sync_work", live=ALL_ON)
        frames = await _frames_of(peer, rid)
    assert [t for t, _ in frames][:2] == ["progress", "output"]
    assert frames[-1][0] == "response"
    assert "".join(p["data"] for t, p in frames if t == "output") == "from a thread\nand another\n"


@pytest.mark.parametrize(
    "live",
    [None, {}, {"progress": False, "output": False}, {"progress": True}, {"output": True}],
)
async def test_nothing_is_sent_unless_enabled(live: Any) -> None:
    async with serve(_live_registry()) as peer:
        rid = await peer.send_request("work", live=live)
        frames = await _frames_of(peer, rid)
    expected = {"progress"} if live == {"progress": True} else set()
    if live == {"output": True}:
        expected = {"output"}
    assert {t for t, _ in frames[:-1]} == expected
    assert frames[-1][0] == "response"


async def test_progress_is_coalesced_with_a_trailing_update() -> None:
    registry = Registry()

    @registry.handler("burst")
    async def burst(_request: ExecutionRequest) -> Any:
        ctx = job_context()
        for i in range(1, 101):
            ctx.progress(i / 100, f"step {i}")
            if i % 10 == 0:
                await asyncio.sleep(0.03)
        return None

    async with serve(registry) as peer:
        rid = await peer.send_request("burst", live={"progress": True, "progress_interval_ms": 100})
        frames = await _frames_of(peer, rid)
    updates = [p for t, p in frames if t == "progress"]
    # ~300 ms of work in 10 bursts at one update per 100 ms: the first at once, then a few more
    # (at most one per burst however slow the machine) and the trailing one
    assert 2 <= len(updates) <= 12, updates
    assert updates[0]["message"] == "step 1"
    assert updates[-1] == {
        "job_id": updates[0]["job_id"],
        "request_id": rid,
        "progress": 1,
        "message": "step 100",
        "detail": None,
    }


async def test_output_cap_sends_one_truncated_frame() -> None:
    registry = Registry()

    @registry.handler("chatty")
    async def chatty(_request: ExecutionRequest) -> Any:
        out = job_context().output
        out.write("a" * 6)
        await asyncio.sleep(0)  # a frame of its own
        out.write("é" * 4)  # 8 bytes: 3 fit, the cut falls inside an é (dropped whole)
        await asyncio.sleep(0)
        out.write("tail")
        out.write("more")
        return None

    async with serve(registry) as peer:
        rid = await peer.send_request("chatty", live={"output": True, "output_max_bytes": 9})
        frames = await _frames_of(peer, rid)
    outputs = [p for t, p in frames if t == "output"]
    assert [(p["seq"], p["data"], p["truncated"], p["dropped_bytes"]) for p in outputs] == [
        (0, "aaaaaa", False, 0),
        (1, "é", False, 0),
        (2, "", True, 6 + 8),
    ]
    assert frames[-1][0] == "response"


async def test_large_writes_are_split_into_64_kib_chunks() -> None:
    registry = Registry()
    text = "ü" * 40000  # 80000 bytes

    @registry.handler("big")
    async def big(_request: ExecutionRequest) -> Any:
        job_context().output.write(text)

    async with serve(registry, "msgpack") as peer:
        rid = await peer.send_request("big", live={"output": True})
        frames = await _frames_of(peer, rid)
    outputs = [p for t, p in frames if t == "output"]
    assert [len(p["data"].encode()) for p in outputs] == [65536, 80000 - 65536]
    assert "".join(p["data"] for p in outputs) == text


async def test_oversize_detail_is_left_out_and_message_cut() -> None:
    registry = Registry()

    @registry.handler("detail")
    async def detail(_request: ExecutionRequest) -> Any:
        job_context().progress(float("nan"), "m" * 2000, {"blob": "x" * 5000})
        job_context().progress(7, None, None)

    async with serve(registry) as peer:
        rid = await peer.send_request("detail", live=ALL_ON)
        frames = await _frames_of(peer, rid)
    first, second = (p for t, p in frames if t == "progress")
    assert (first["progress"], len(first["message"]), first["detail"]) == (None, 1024, None)
    assert second["progress"] == 1


async def test_cancel_flushes_pending_progress_before_the_cancelled_outcome() -> None:
    registry = Registry()
    started = asyncio.Event()

    @registry.handler("slow")
    async def slow(_request: ExecutionRequest) -> Any:
        job_context().progress(0.1)
        job_context().progress(0.2)  # within the interval: pending
        started.set()
        await asyncio.sleep(30)

    async with serve(registry) as peer:
        rid = await peer.send_request(
            "slow", live={"progress": True, "progress_interval_ms": 60000}, job_id="job-c"
        )
        await asyncio.wait_for(started.wait(), 5)
        cancel = {"protocol_version": "2", "job_id": "job-c", "request_id": rid}
        peer.writer.write(frame("cancel", cancel, "json"))
        frames = await _frames_of(peer, rid)
    assert [(t, p.get("progress")) for t, p in frames[:-1]] == [
        ("progress", 0.1),
        ("progress", 0.2),
    ]
    assert frames[-1][1]["error"]["type"] == "cancelled"


def test_job_context_type_is_exported() -> None:
    assert isinstance(job_context(), JobContext)


async def test_writes_of_one_turn_share_frames() -> None:
    registry = Registry()

    @registry.handler("lines")
    async def lines(_request: ExecutionRequest) -> Any:
        out = job_context().output
        for i in range(1000):
            out.write(f"line {i}\n")
        await asyncio.sleep(0)
        out.write("after\n")

    async with serve(registry) as peer:
        rid = await peer.send_request("lines", live={"output": True})
        frames = await _frames_of(peer, rid)
    outputs = [p for t, p in frames if t == "output"]
    assert [p["seq"] for p in outputs] == [0, 1]
    assert outputs[0]["data"] == "".join(f"line {i}\n" for i in range(1000))
    assert outputs[1]["data"] == "after\n"


# -- the conformance runner over every transport × encoding -------------------------------


def _live_frames(client: FrameClient, payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    client.send("request", payload)
    rid = payload["request_id"]
    outcome = client.response(rid)
    got = [
        (f.type, f.raw["payload"])
        for f in client._others
        if f.raw["payload"].get("request_id") == rid
    ]
    client._others[:] = [f for f in client._others if f.raw["payload"].get("request_id") != rid]
    return [*got, ("response", outcome)]


def test_conformance_live_handlers(client: FrameClient) -> None:
    hello = client.hello
    assert hello is not None and {"progress", "output"} <= set(hello["features"])
    payload = request_payload("report_progress", {"values": [0.5, None, 1]})
    payload["live"] = {"progress": True, "output": True, "progress_interval_ms": 0}
    frames = _live_frames(client, payload)
    assert [(p["progress"], p["message"]) for t, p in frames if t == "progress"] == [
        (0.5, "step 1 of 3"),
        (None, "step 2 of 3"),
        (1, "step 3 of 3"),
    ]
    assert frames[-1][1]["result"] == {"reported": 3}

    payload = request_payload("write_output", {"lines": 2, "json": True, "text": "t"})
    payload["live"] = {"progress": False, "output": True}
    frames = _live_frames(client, payload)
    data = "".join(p["data"] for t, p in frames if t == "output")
    assert data == '{"line":0,"text":"t"}\n{"line":1,"text":"t"}\n'
    assert frames[-1][1]["result"] == {"lines": 2}

    payload = request_payload("write_output", {"lines": 3, "size": 10})
    payload["live"] = {"output": True, "output_max_bytes": 25}
    frames = _live_frames(client, payload)
    outputs = [p for t, p in frames if t == "output"]
    assert "".join(p["data"] for p in outputs) == "x" * 25
    assert (outputs[-1]["truncated"], outputs[-1]["dropped_bytes"]) == (True, 5)
    assert [p["seq"] for p in outputs] == list(range(len(outputs)))

    # without live: the same handlers, the same outcome, no live frame
    for name in ("report_progress", "write_output"):
        frames = _live_frames(client, request_payload(name, {}))
        assert [t for t, _ in frames] == ["response"]
        assert frames[0][1]["status"] == "success"


def test_tags_from_the_environment_on_every_connection() -> None:
    with running("unix", env={"RRQ_RUNNER_TAGS": "region:eu,gpu"}) as runner:
        for _ in range(2):
            conn = runner.connect()
            assert conn.hello is not None and conn.hello["tags"] == ["gpu", "region:eu"]
            conn.close()


def test_an_invalid_tag_stops_the_runner() -> None:
    with running("tcp", env={"RRQ_RUNNER_TAGS": "gpu,not valid"}) as runner:
        assert runner.wait(10) == 2
        assert "capability tags" in runner.stderr_text


async def test_detail_is_a_snapshot_and_lone_surrogates_become_replacement_characters() -> None:
    registry = Registry()

    @registry.handler("snap")
    async def snap(_request: ExecutionRequest) -> Any:
        detail: dict[str, Any] = {"n": 1}
        ctx = job_context()
        ctx.progress(0.1)
        ctx.progress(0.2, None, detail)  # pending: the interval is long
        detail["n"] = 2  # after the call: not in the report
        ctx.output.write("a\ud800b\ud83d\ude00")  # a lone surrogate, then a pair as escapes

    async with serve(registry) as peer:
        rid = await peer.send_request(
            "snap", live={"progress": True, "output": True, "progress_interval_ms": 60000}
        )
        frames = await _frames_of(peer, rid)
    updates = [p for t, p in frames if t == "progress"]
    assert [(p["progress"], p["detail"]) for p in updates] == [(0.1, None), (0.2, {"n": 1})]
    (out,) = (p for t, p in frames if t == "output")
    assert out["data"] == "a\ufffdb\U0001f600"
