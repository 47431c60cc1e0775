"""Job contracts: a catalog of JSON Schemas for each job's params (and result).

A catalog is a directory of JSON files, one per job, named ``<function_name>.json``::

    {"name": "send_email", "description": "Sends one email.",
     "params": {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]},
     "result": {"type": "object"}}

Schemas are JSON Schema 2020-12, checked with ``jsonschema``'s ``Draft202012Validator``;
``format`` is an annotation only (as in the TypeScript and Rust catalogs, so all three accept and
refuse the same params), and ``$ref`` may only point into the contract's own ``#/$defs/...``.

>>> catalog = load_job_catalog("jobs")
>>> catalog.check_params("send_email", {"to": 1})
ParamsProblem(function_name='send_email', field='/to', message="send_email: params/to 1 is ...")

The producer (``Producer(..., catalog=...)``) refuses params that break their contract with
``ProducerError`` code ``invalid_params``; the runner (``run_runner(..., catalog=...)`` or
``RRQ_JOB_CATALOG``) answers them with an ``error`` outcome of type ``invalid_params``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .contract_shape import pointer_token, shape_problems

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

__all__ = [
    "CATALOG_ENV",
    "CatalogError",
    "JobCatalog",
    "JobContract",
    "ParamsProblem",
    "catalog_from_env",
    "catalog_path_from_toml",
    "load_job_catalog",
]

#: The environment variable that gives a runner its catalog directory.
CATALOG_ENV: Final = "RRQ_JOB_CATALOG"

#: Longest library message kept in a problem: a message can quote a (large) params value.
_MAX_DETAIL: Final = 300


class CatalogError(ValueError):
    """A catalog (or a contract in it) is unusable; ``problems`` lists every one, each naming
    its file. ``code`` is ``invalid_catalog``."""

    code: Final = "invalid_catalog"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid job catalog: {self.problems[0]}"
        else:
            joined = "\n  ".join(self.problems)
            message = f"invalid job catalog ({len(self.problems)} problems):\n  {joined}"
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class JobContract:
    """One job contract: a function name and the JSON Schemas of its params and result."""

    name: str
    params: dict[str, Any]
    description: str | None = None
    result: dict[str, Any] | None = None
    #: The file the contract was read from, when it came from a directory.
    file: str | None = None


@dataclass(frozen=True, slots=True)
class ParamsProblem:
    """Why params (or a result) break their job's contract: the first failing location.

    ``field`` is a JSON Pointer into the params (``""`` is the root); ``message`` is
    ``<function>: params<field> <what is wrong>`` (``result<field>`` for a result)."""

    function_name: str
    field: str
    message: str


_Checker = Callable[[Any], tuple[str, str] | None]


def _pointer(path: Iterable[Any]) -> str:
    return "".join("/" + pointer_token(str(part)) for part in path)


def _first(errors: Iterable[ValidationError]) -> ValidationError | None:
    """The error that decides ``field``: the one whose instance pointer sorts first in UTF-8
    byte order; on a tie the first one reported. The TypeScript and Rust catalogs use the same
    rule, so the three agree on ``field`` though their messages are worded differently."""
    best: tuple[bytes, ValidationError] | None = None
    for error in errors:
        key = _pointer(error.absolute_path).encode("utf-8", "surrogatepass")
        if best is None or key < best[0]:
            best = (key, error)
    return None if best is None else best[1]


def _compile(schema: Mapping[str, Any]) -> _Checker:
    """A checker of one schema; raises SchemaError when the schema itself is invalid."""
    # imported here: reading rrq.toml without a job_catalog need not load jsonschema
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)  # no format_checker: format is an annotation

    def check(value: Any) -> tuple[str, str] | None:
        error = _first(validator.iter_errors(value))
        if error is None:
            return None
        detail = error.message
        if len(detail) > _MAX_DETAIL:
            detail = detail[:_MAX_DETAIL] + "…"
        return _pointer(error.absolute_path), detail

    return check


@dataclass(frozen=True, slots=True)
class _Entry:
    contract: JobContract
    params: _Checker
    result: _Checker | None


def _contract_of(raw: Mapping[str, Any], file: str | None) -> JobContract:
    return JobContract(
        name=raw["name"],
        params=dict(raw["params"]),
        description=raw.get("description"),
        result=dict(raw["result"]) if raw.get("result") is not None else None,
        file=file,
    )


class JobCatalog:
    """A set of job contracts, loaded once and validated. Functions that are not in the catalog
    are never checked."""

    def __init__(self, entries: Mapping[str, _Entry]) -> None:
        self._entries = dict(sorted(entries.items(), key=lambda item: item[0].encode("utf-8")))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> JobCatalog:
        """Loads a directory of contract files (``<name>.json``; other files are left alone).
        Raises :class:`CatalogError` listing every problem."""
        directory = Path(path).resolve()
        if not directory.is_dir():
            raise CatalogError([f"{directory} is not a directory"])
        problems: list[str] = []
        contracts: list[JobContract] = []
        for file in sorted(p for p in directory.iterdir() if p.suffix == ".json" and p.is_file()):
            try:
                raw = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problems.append(f"{file}: cannot read JSON: {exc}")
                continue
            shape = shape_problems(raw, file.name[: -len(".json")])
            if shape:
                problems.extend(f"{file}: {problem}" for problem in shape)
            else:
                contracts.append(_contract_of(raw, str(file)))
        return cls._build(contracts, problems)

    @classmethod
    def from_contracts(cls, contracts: Iterable[JobContract | Mapping[str, Any]]) -> JobCatalog:
        """A catalog from contracts in memory (:class:`JobContract` or contract-file mappings),
        validated like :meth:`load`."""
        problems: list[str] = []
        valid: list[JobContract] = []
        for item in contracts:
            if isinstance(item, JobContract):
                file = item.file
                raw: dict[str, Any] = {"name": item.name, "params": item.params}
                if item.description is not None:
                    raw["description"] = item.description
                if item.result is not None:
                    raw["result"] = item.result
            else:
                file, raw = None, dict(item)
            where = file or f"contract {json.dumps(raw.get('name'))}"
            stem = Path(file).name.removesuffix(".json") if file else None
            shape = shape_problems(raw, stem)
            if shape:
                problems.extend(f"{where}: {problem}" for problem in shape)
            else:
                valid.append(_contract_of(raw, file))
        return cls._build(valid, problems)

    @classmethod
    def _build(cls, contracts: Sequence[JobContract], problems: list[str]) -> JobCatalog:
        from jsonschema.exceptions import SchemaError

        entries: dict[str, _Entry] = {}
        for contract in contracts:
            where = contract.file or contract.name
            if contract.name in entries:
                problems.append(f'{where}: job "{contract.name}" is defined twice')
                continue
            checkers: dict[str, _Checker] = {}
            for part, schema in (("params", contract.params), ("result", contract.result)):
                if schema is None:
                    continue
                try:
                    checkers[part] = _compile(schema)
                except SchemaError as exc:
                    at = _pointer(exc.absolute_path)
                    problems.append(f"{where}: {part}{at}: {exc.message}")
            if "params" in checkers and (contract.result is None or "result" in checkers):
                entries[contract.name] = _Entry(
                    contract, checkers["params"], checkers.get("result")
                )
        if problems:
            raise CatalogError(problems)
        return cls(entries)

    def get(self, name: str) -> JobContract | None:
        """The contract of a job, or None when it is not catalogued."""
        entry = self._entries.get(name)
        return None if entry is None else entry.contract

    def names(self) -> list[str]:
        """The catalogued job names, sorted."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def check_params(self, name: str, params: Any) -> ParamsProblem | None:
        """Checks a job's params against its contract: the first failing location, or None
        when they are valid or when ``name`` is not catalogued."""
        entry = self._entries.get(name)
        failure = None if entry is None else entry.params(params)
        return None if failure is None else _problem(name, "params", failure)

    def check_result(self, name: str, result: Any) -> ParamsProblem | None:
        """Checks a handler's result; None when valid, uncatalogued, or without a result
        schema."""
        entry = self._entries.get(name)
        checker = None if entry is None else entry.result
        failure = None if checker is None else checker(result)
        return None if failure is None else _problem(name, "result", failure)


def _problem(name: str, part: str, failure: tuple[str, str]) -> ParamsProblem:
    field, detail = failure
    return ParamsProblem(name, field, f"{name}: {part}{field} {detail}")


def load_job_catalog(path: str | os.PathLike[str]) -> JobCatalog:
    """Loads a catalog directory (:meth:`JobCatalog.load`)."""
    return JobCatalog.load(path)


def catalog_path_from_toml(config_path: str | os.PathLike[str]) -> Path | None:
    """The ``job_catalog`` directory an ``rrq.toml`` names (relative to the file's directory),
    or None when it names none. Only the ``[rrq]`` table is read when there is one. Raises
    :class:`CatalogError` when the key is not a non-empty string or the file cannot be read."""
    path = Path(config_path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError([f"cannot read {path}: {exc}"]) from None
    table: Any = document.get("rrq") if isinstance(document.get("rrq"), dict) else document
    value = table.get("job_catalog")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CatalogError([f"{path}: job_catalog must be a non-empty string (a directory)"])
    return path.resolve().parent / value


def catalog_from_env() -> JobCatalog | None:
    """The catalog ``RRQ_JOB_CATALOG`` names (a directory), or None when it is unset or
    empty. Raises :class:`CatalogError` when it cannot be loaded."""
    value = os.environ.get(CATALOG_ENV, "").strip()
    return load_job_catalog(value) if value else None
