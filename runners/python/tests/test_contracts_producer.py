"""The producer with a job catalog: every enqueue path checks the params of a catalogued
function before anything is written (ProducerError ``invalid_params`` with ``function_name``
and ``field``); functions not in the catalog are not checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rrqkit import Producer, ProducerError
from rrqkit.contracts import load_job_catalog
from rrqkit.producer_adapter import Adapter

FIXTURE = Path(__file__).resolve().parents[3] / "conformance" / "fixtures" / "catalog"
GOOD = {"to": "a@b", "subject": "hi"}
BAD = {"to": 1, "subject": "hi"}


@pytest.fixture
async def checked(env: tuple[Producer, Any]) -> tuple[Producer, Any]:
    """conftest's producer and client, the producer with the fixture catalog."""
    producer, client = env
    producer.catalog = load_job_catalog(FIXTURE)
    return producer, client


async def assert_refused(call: Any, field: str, prefix: str = "") -> None:
    with pytest.raises(ProducerError) as caught:
        await call
    assert caught.value.code == "invalid_params"
    assert caught.value.function_name == "send_email"
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{prefix}send_email: params{field} ")


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("enqueue", {}),
        ("enqueue", {"defer_by_seconds": 60}),
        ("enqueue", {"unique_key": "u1"}),
        ("enqueue_with_rate_limit", {"rate_limit_key": "r", "rate_limit_seconds": 5}),
        ("enqueue_with_debounce", {"debounce_key": "d", "debounce_seconds": 5}),
    ],
)
async def test_every_enqueue_path_refuses_and_writes_nothing(
    checked: tuple[Producer, Any], method: str, options: dict[str, Any]
) -> None:
    producer, client = checked
    await assert_refused(getattr(producer, method)("send_email", BAD, options), "/to")
    assert await client.keys("*") == []
    assert await getattr(producer, method)("send_email", GOOD, options)


async def test_enqueue_many_names_the_item_and_writes_nothing(
    checked: tuple[Producer, Any],
) -> None:
    producer, client = checked
    items = [
        {"function_name": "send_email", "params": GOOD},
        {"function_name": "other", "params": {"anything": 1}},
        {"function_name": "send_email", "params": {**GOOD, "cc": ["x", 2]}},
    ]
    await assert_refused(producer.enqueue_many(items), "/cc/1", prefix="items[2]: ")
    assert await client.keys("*") == []
    assert len(await producer.enqueue_many(items[:2])) == 2


async def test_uncatalogued_functions_and_no_catalog(env: tuple[Producer, Any]) -> None:
    producer, _client = env
    assert producer.catalog is None
    assert await producer.enqueue("send_email", BAD)  # no catalog: nothing is checked
    producer.catalog = load_job_catalog(FIXTURE)
    assert await producer.enqueue("not_catalogued", {"to": 1})


async def test_params_given_as_an_option_and_missing_params(
    checked: tuple[Producer, Any],
) -> None:
    producer, _client = checked
    await assert_refused(producer.enqueue("send_email", options={"params": BAD}), "/to")
    await assert_refused(producer.enqueue("send_email"), "")  # {} lacks to and subject


async def test_constructor_and_from_toml(redis_dsn: str, tmp_path: Path) -> None:
    catalog = load_job_catalog(FIXTURE)
    producer = Producer({"redis_dsn": redis_dsn}, catalog=catalog)
    assert producer.catalog is catalog
    await producer.close()

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for file in FIXTURE.glob("*.json"):
        (jobs / file.name).write_text(file.read_text())
    toml = tmp_path / "rrq.toml"
    toml.write_text(f'[rrq]\nredis_dsn = "{redis_dsn}"\njob_catalog = "jobs"\n')
    async with Producer.from_toml(toml) as producer:
        assert producer.catalog is not None
        assert producer.catalog.names() == ["resize_image", "send_email"]
        await assert_refused(producer.enqueue("send_email", BAD), "/to")

    toml.write_text(f'[rrq]\nredis_dsn = "{redis_dsn}"\n')
    async with Producer.from_toml(toml) as producer:
        assert producer.catalog is None

    (jobs / "send_email.json").write_text('{"name": "send_email"}')
    toml.write_text(f'[rrq]\nredis_dsn = "{redis_dsn}"\njob_catalog = "jobs"\n')
    with pytest.raises(ProducerError) as caught:
        Producer.from_toml(toml)
    assert caught.value.code == "invalid_config"
    assert '"params" must be a JSON Schema object' in caught.value.message


async def test_adapter_load_config_reads_the_catalog(redis_dsn: str, tmp_path: Path) -> None:
    toml = tmp_path / "rrq.toml"
    toml.write_text(f'[rrq]\nredis_dsn = "{redis_dsn}"\njob_catalog = "{FIXTURE}"\n')
    adapter = Adapter()
    try:
        loaded = await adapter.handle(json.dumps({"id": 1, "op": "load_config", "path": str(toml)}))
        assert loaded["ok"] is True
        reply = await adapter.handle(
            json.dumps({"id": 2, "op": "enqueue", "function_name": "send_email", "params": BAD})
        )
        assert reply["ok"] is False
        assert reply["error"]["code"] == "invalid_params"
        assert reply["error"]["field"] == "/to"
    finally:
        await adapter.close()
