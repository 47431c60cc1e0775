"""Producer configuration and ``rrq.toml`` resolution (PRODUCER.md §2).

The file is, in order: an explicit path, ``RRQ_CONFIG`` (when set and non-empty), ``./rrq.toml``
(when it is a file). If the file has a top-level ``[rrq]`` table only that table is read,
otherwise the root table. ``RRQ_REDIS_DSN`` overrides ``redis_dsn``.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .errors import ProducerError

__all__ = [
    "CONFIG_NOT_FOUND_MESSAGE",
    "DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS",
    "ProducerConfig",
    "dsn_problem",
    "load_toml",
    "normalize_queue_name",
    "redact_dsn",
    "resolve_config_path",
]

CONFIG_NOT_FOUND_MESSAGE: Final = (
    "RRQ config not found. Provide --config, set RRQ_CONFIG, or add rrq.toml."
)
QUEUE_PREFIX: Final = "rrq:queue:"
#: Default of ``redis_connect_timeout_seconds`` (env ``RRQ_REDIS_CONNECT_TIMEOUT``).
DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS: Final = 5.0
_CONNECT_TIMEOUT_KEY: Final = "redis_connect_timeout_seconds"
_SCHEMES: Final = ("redis", "rediss", "unix", "redis+unix")

#: producer config key → rrq.toml key
TOML_KEYS: Final = {
    "redis_dsn": "redis_dsn",
    "queue_name": "default_queue_name",
    "max_retries": "default_max_retries",
    "job_timeout_seconds": "default_job_timeout_seconds",
    "result_ttl_seconds": "default_result_ttl_seconds",
    "idempotency_ttl_seconds": "default_unique_job_lock_ttl_seconds",
    "correlation_mappings": "correlation_mappings",
}


def normalize_queue_name(name: str) -> str:
    return name if name.startswith(QUEUE_PREFIX) else QUEUE_PREFIX + name


def redact_dsn(dsn: str) -> str:
    """The DSN with its user and password replaced by ``***``, for messages."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        scheme, rest = "", dsn
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{tail}"


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with a Redis DSN in words (with the corrected URL when it only lacks its
    scheme), or None; the same rules as the TypeScript and Rust producers."""
    shown = redact_dsn(dsn)
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        bare = dsn.rpartition("@")[2]
        host_port, _, db = bare.partition("/")
        db = db if db.isdigit() else "0"
        return (
            f'"{shown}" has no scheme; use a URL such as redis://{host_port or "localhost:6379"}'
            f"/{db} (or rediss:// for TLS, unix:///path/redis.sock?db=0)"
        )
    if scheme not in _SCHEMES:
        return (
            f"\"{shown}\" has the unsupported scheme '{scheme}'; use redis://, rediss:// (TLS), "
            "unix:// or redis+unix://"
        )
    if "unix" not in scheme:
        path = rest.split("?")[0].split("#")[0]
        db = path.partition("/")[2]
        if db and not db.isdigit():
            return f"\"{shown}\" names the database '{db}'; a database is a number (redis://host:6379/0)"
    return None


def _timeout(value: Any, label: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and math.isfinite(value) and 0 < value <= 2147483:
        return float(value)
    raise ProducerError("invalid_config", f"{label} must be a finite number > 0 (seconds)")


def as_int(value: Any) -> int | None:
    """``value`` as an int if it is an integer (an integral float counts), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


@dataclass(slots=True)
class ProducerConfig:
    """The seven producer settings every rrqkit binding accepts, plus how long one Redis
    connection attempt may take (``redis_connect_timeout_seconds``; not one of the seven, so
    :meth:`to_dict` leaves it out).

    Omitted settings take **RRQ's built-in defaults**, not ``rrq.toml``'s: a config given in
    code never reads a file. :func:`load_toml` (``Producer.from_toml``) starts from ``rrq.toml``
    as the CLI does; change fields of its result for overrides.
    """

    redis_dsn: str = "redis://localhost:6379/0"
    queue_name: str = "rrq:queue:default"
    max_retries: int = 5
    job_timeout_seconds: int = 300
    result_ttl_seconds: int = 86400
    idempotency_ttl_seconds: int = 21600
    correlation_mappings: dict[str, str] = field(default_factory=dict)
    redis_connect_timeout_seconds: float = DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, labels: Mapping[str, str] | None = None
    ) -> ProducerConfig:
        """Validate a config mapping; unknown keys and wrong types are ``invalid_config``.

        ``labels`` maps a config key to the name used in messages (the rrq.toml key)."""
        if not isinstance(data, Mapping):
            raise ProducerError("invalid_config", "producer config must be an object")
        unknown = [key for key in data if key not in TOML_KEYS and key != _CONNECT_TIMEOUT_KEY]
        if unknown:
            raise ProducerError("invalid_config", f"unknown config key '{unknown[0]}'")
        label = {key: key for key in TOML_KEYS}
        label.update(labels or {})
        config = cls()
        present = {key: value for key, value in data.items() if value is not None}

        if "redis_dsn" in present:
            dsn = present["redis_dsn"]
            if not isinstance(dsn, str) or not dsn.strip():
                raise ProducerError(
                    "invalid_config", f"{label['redis_dsn']} must be a non-empty string"
                )
            problem = dsn_problem(dsn)
            if problem:
                raise ProducerError("invalid_config", f"{label['redis_dsn']} {problem}")
            config.redis_dsn = dsn
        if _CONNECT_TIMEOUT_KEY in present:
            config.redis_connect_timeout_seconds = _timeout(
                present[_CONNECT_TIMEOUT_KEY], label.get(_CONNECT_TIMEOUT_KEY, _CONNECT_TIMEOUT_KEY)
            )
        if "queue_name" in present:
            queue = present["queue_name"]
            if not isinstance(queue, str) or not queue.strip():
                raise ProducerError(
                    "invalid_config", f"{label['queue_name']} must be a non-empty string"
                )
            config.queue_name = normalize_queue_name(queue)
        checks: list[tuple[str, int, str]] = [
            ("max_retries", 0, "a non-negative integer"),
            ("job_timeout_seconds", 1, "a positive integer"),
            ("result_ttl_seconds", -(2**63), "an integer"),
            ("idempotency_ttl_seconds", 1, "a positive integer"),
        ]
        for key, minimum, description in checks:
            if key in present:
                number = as_int(present[key])
                if number is None or number < minimum:
                    raise ProducerError("invalid_config", f"{label[key]} must be {description}")
                setattr(config, key, number)
        if "correlation_mappings" in present:
            mappings = present["correlation_mappings"]
            if not isinstance(mappings, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in mappings.items()
            ):
                raise ProducerError(
                    "invalid_config",
                    f"{label['correlation_mappings']} must be a table of strings",
                )
            config.correlation_mappings = dict(mappings)
        return config

    def to_dict(self) -> dict[str, Any]:
        return {
            "redis_dsn": self.redis_dsn,
            "queue_name": self.queue_name,
            "max_retries": self.max_retries,
            "job_timeout_seconds": self.job_timeout_seconds,
            "result_ttl_seconds": self.result_ttl_seconds,
            "idempotency_ttl_seconds": self.idempotency_ttl_seconds,
            "correlation_mappings": dict(self.correlation_mappings),
        }


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Explicit path → ``RRQ_CONFIG`` → ``./rrq.toml``; else ``config_not_found``."""
    if path is not None and str(path) != "":
        candidate = Path(path)
        if not candidate.is_file():
            raise ProducerError("config_not_found", f"RRQ config file not found: {candidate}")
        return candidate
    env = os.environ.get("RRQ_CONFIG")
    if env:
        candidate = Path(env)
        if not candidate.is_file():
            raise ProducerError(
                "config_not_found", f"RRQ config file not found: {candidate} (from RRQ_CONFIG)"
            )
        return candidate
    local = Path("rrq.toml")
    if local.is_file():
        return local
    raise ProducerError("config_not_found", CONFIG_NOT_FOUND_MESSAGE)


def load_toml(path: str | os.PathLike[str] | None = None) -> ProducerConfig:
    """Resolve and read ``rrq.toml`` into a :class:`ProducerConfig`."""
    resolved = resolve_config_path(path)
    try:
        with resolved.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ProducerError("invalid_config", f"cannot parse {resolved}: {exc}") from None
    except OSError as exc:
        raise ProducerError("invalid_config", f"cannot read {resolved}: {exc}") from None
    table: Any = document.get("rrq") if isinstance(document.get("rrq"), dict) else document
    values = {key: table[toml_key] for key, toml_key in TOML_KEYS.items() if toml_key in table}
    labels = dict(TOML_KEYS)
    if _CONNECT_TIMEOUT_KEY in table:
        values[_CONNECT_TIMEOUT_KEY] = table[_CONNECT_TIMEOUT_KEY]
    env_dsn = os.environ.get("RRQ_REDIS_DSN")
    if env_dsn:
        values["redis_dsn"] = env_dsn
        labels["redis_dsn"] = "RRQ_REDIS_DSN"
    env_timeout = os.environ.get("RRQ_REDIS_CONNECT_TIMEOUT", "").strip()
    if env_timeout:
        try:
            values[_CONNECT_TIMEOUT_KEY] = float(env_timeout)
        except ValueError:
            values[_CONNECT_TIMEOUT_KEY] = env_timeout
        labels[_CONNECT_TIMEOUT_KEY] = "RRQ_REDIS_CONNECT_TIMEOUT"
    return ProducerConfig.from_mapping(values, labels=labels)
