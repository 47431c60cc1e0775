"""rrq.toml resolution for the producer (PRODUCER.md §2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrqkit import Producer, ProducerError
from rrqkit.config import CONFIG_NOT_FOUND_MESSAGE, load_toml, resolve_config_path

FULL = """
[rrq]
redis_dsn = "redis://from-file:6379/3"
default_queue_name = "work"
default_max_retries = 2
default_job_timeout_seconds = 30
default_result_ttl_seconds = 60
default_unique_job_lock_ttl_seconds = 90
default_runner_name = "python"

[rrq.correlation_mappings]
tenant = "params.tenant.id"
order = "order_id"

[rrq.runners.python]
cmd = ["rrqkit-runner", "--settings", "app:registry"]
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RRQ_CONFIG", raising=False)
    monkeypatch.delenv("RRQ_REDIS_DSN", raising=False)
    monkeypatch.delenv("RRQ_REDIS_CONNECT_TIMEOUT", raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_explicit_path_reads_rrq_table(tmp_path: Path) -> None:
    config = load_toml(write(tmp_path / "custom.toml", FULL))
    assert config.to_dict() == {
        "redis_dsn": "redis://from-file:6379/3",
        "queue_name": "rrq:queue:work",
        "max_retries": 2,
        "job_timeout_seconds": 30,
        "result_ttl_seconds": 60,
        "idempotency_ttl_seconds": 90,
        "correlation_mappings": {"tenant": "params.tenant.id", "order": "order_id"},
    }
    assert list(config.correlation_mappings) == ["tenant", "order"]  # mapping order is kept


def test_root_table_when_there_is_no_rrq_table(tmp_path: Path) -> None:
    config = load_toml(
        write(tmp_path / "root.toml", 'redis_dsn = "redis://root/1"\ndefault_max_retries = 0\n')
    )
    assert config.redis_dsn == "redis://root/1"
    assert config.max_retries == 0
    assert config.queue_name == "rrq:queue:default"


def test_only_the_rrq_table_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.toml", 'redis_dsn = "redis://ignored/0"\n[rrq]\ndefault_max_retries = 4\n'
    )
    config = load_toml(path)
    assert config.redis_dsn == "redis://localhost:6379/0"
    assert config.max_retries == 4


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = write(tmp_path / "rrq.toml", 'redis_dsn = "redis://local/0"\n')
    env_file = write(tmp_path / "env.toml", 'redis_dsn = "redis://env/0"\n')
    explicit = write(tmp_path / "explicit.toml", 'redis_dsn = "redis://explicit/0"\n')
    assert resolve_config_path() == Path("rrq.toml")
    assert load_toml().redis_dsn == "redis://local/0"
    monkeypatch.setenv("RRQ_CONFIG", str(env_file))
    assert load_toml().redis_dsn == "redis://env/0"
    assert load_toml(explicit).redis_dsn == "redis://explicit/0"
    monkeypatch.setenv("RRQ_CONFIG", "")  # empty: ignored
    assert load_toml().redis_dsn == "redis://local/0"
    del local


def test_redis_dsn_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "rrq.toml", FULL)
    monkeypatch.setenv("RRQ_REDIS_DSN", "redis://override:1/0")
    assert load_toml().redis_dsn == "redis://override:1/0"
    assert Producer.from_toml().config.redis_dsn == "redis://override:1/0"


def test_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProducerError) as caught:
        load_toml()
    assert caught.value.code == "config_not_found"
    assert caught.value.message == CONFIG_NOT_FOUND_MESSAGE
    assert (
        str(caught.value)
        == "RRQ config not found. Provide --config, set RRQ_CONFIG, or add rrq.toml."
    )
    with pytest.raises(ProducerError) as caught:
        load_toml(tmp_path / "missing.toml")
    assert caught.value.code == "config_not_found"
    monkeypatch.setenv("RRQ_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ProducerError) as caught:
        load_toml()
    assert caught.value.code == "config_not_found"
    (tmp_path / "rrq.toml").mkdir()  # a directory is not a config file
    monkeypatch.delenv("RRQ_CONFIG")
    with pytest.raises(ProducerError) as caught:
        load_toml()
    assert caught.value.code == "config_not_found"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('default_max_retries = "5"', "default_max_retries"),
        ("default_max_retries = -1", "default_max_retries"),
        ("default_job_timeout_seconds = 0", "default_job_timeout_seconds"),
        ("default_result_ttl_seconds = 1.5", "default_result_ttl_seconds"),
        ("default_unique_job_lock_ttl_seconds = false", "default_unique_job_lock_ttl_seconds"),
        ("redis_dsn = 5", "redis_dsn"),
        ('default_queue_name = ""', "default_queue_name"),
        ('correlation_mappings = "x"', "correlation_mappings"),
        ("[rrq.correlation_mappings]\na = 1", "correlation_mappings"),
    ],
)
def test_wrong_types_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(
        tmp_path / "bad.toml", f"[rrq]\n{text}\n" if not text.startswith("[") else text + "\n"
    )
    with pytest.raises(ProducerError) as caught:
        load_toml(path)
    assert caught.value.code == "invalid_config"
    assert key in caught.value.message


def test_unparsable_toml(tmp_path: Path) -> None:
    with pytest.raises(ProducerError) as caught:
        load_toml(write(tmp_path / "broken.toml", "[rrq\n"))
    assert caught.value.code == "invalid_config"


def test_redis_connect_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "rrq.toml", "[rrq]\nredis_connect_timeout_seconds = 1.5\n")
    config = load_toml(path)
    assert config.redis_connect_timeout_seconds == 1.5
    assert "redis_connect_timeout_seconds" not in config.to_dict()  # not one of the seven
    monkeypatch.setenv("RRQ_REDIS_CONNECT_TIMEOUT", "2")
    assert load_toml(path).redis_connect_timeout_seconds == 2
    monkeypatch.setenv("RRQ_REDIS_CONNECT_TIMEOUT", "soon")
    with pytest.raises(ProducerError) as caught:
        load_toml(path)
    assert caught.value.code == "invalid_config"
    assert "RRQ_REDIS_CONNECT_TIMEOUT" in caught.value.message


def test_malformed_redis_dsn_in_the_file_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "rrq.toml", '[rrq]\nredis_dsn = "localhost:6391"\n')
    with pytest.raises(ProducerError) as caught:
        load_toml(path)
    assert caught.value.code == "invalid_config"
    assert caught.value.message.startswith('redis_dsn "localhost:6391" has no scheme')
    assert "redis://localhost:6391/0" in caught.value.message
