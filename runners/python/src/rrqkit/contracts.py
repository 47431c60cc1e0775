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
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

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

#: Keys a contract file may have; any other is a mistake (a typo of one of these).
CONTRACT_KEYS: Final = ("$schema", "name", "description", "params", "result")
#: Keywords that would reach outside the contract's own schema (or change where ``$ref`` points).
FORBIDDEN_KEYWORDS: Final = ("$id", "$dynamicRef", "$dynamicAnchor", "$recursiveRef")
#: A job name: what runners register and producers enqueue (also the file name).
NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
#: The JSON Schema 2020-12 keywords (plus ``definitions``); any other is a schema error, as in
#: ajv's strict mode, so a misspelt keyword is not silently ignored.
KNOWN_KEYWORDS: Final = frozenset(
    {
        "$schema",
        "$id",
        "$ref",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$vocabulary",
        "$comment",
        "$defs",
        "definitions",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "dependentSchemas",
        "prefixItems",
        "items",
        "contains",
        "properties",
        "patternProperties",
        "additionalProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
        "required",
        "dependentRequired",
        "title",
        "description",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "examples",
        "format",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
    }
)
_SINGLE: Final = (
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "items",
    "contains",
    "unevaluatedItems",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
)
_LISTS: Final = ("prefixItems", "allOf", "anyOf", "oneOf")
_MAPS: Final = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
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


def pointer_token(token: str) -> str:
    """JSON Pointer escaping of one reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def walk_schema(
    schema: Any, visit: Callable[[Mapping[str, Any], str], None], pointer: str = ""
) -> None:
    """Calls ``visit`` with every schema object inside ``schema`` (itself included) and its JSON
    Pointer relative to ``schema``. Data (a property *named* ``$ref``, ``enum`` values) is not
    visited; boolean schemas are skipped."""
    if not isinstance(schema, Mapping):
        return
    visit(schema, pointer)
    for key in _SINGLE:
        walk_schema(schema.get(key), visit, f"{pointer}/{key}")
    for key in _LISTS:
        items = schema.get(key)
        if isinstance(items, list):
            for index, item in enumerate(items):
                walk_schema(item, visit, f"{pointer}/{key}/{index}")
    for key in _MAPS:
        entries = schema.get(key)
        if isinstance(entries, Mapping):
            for name, item in entries.items():
                walk_schema(item, visit, f"{pointer}/{key}/{pointer_token(str(name))}")


def _resolves(root: Mapping[str, Any], ref: str) -> bool:
    node: Any = root
    for raw in ref[2:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or token not in node:
            return False
        node = node[token]
    return isinstance(node, Mapping | bool)


def _schema_problems(schema: Mapping[str, Any], part: str) -> list[str]:
    """Local-only ``$ref``s that resolve, no forbidden or unknown keywords."""
    problems: list[str] = []

    def visit(node: Mapping[str, Any], pointer: str) -> None:
        ref = node.get("$ref")
        if ref is not None:
            if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
                problems.append(
                    f"{part}{pointer}/$ref {json.dumps(ref)}: only references to "
                    '"#/$defs/..." in the same schema are allowed'
                )
            elif not _resolves(schema, ref):
                problems.append(f"{part}{pointer}/$ref {json.dumps(ref)} does not resolve")
        for keyword in FORBIDDEN_KEYWORDS:
            if keyword in node:
                problems.append(f"{part}{pointer}/{keyword} is not allowed in a job contract")
        for keyword in node:
            if keyword not in KNOWN_KEYWORDS:
                problems.append(f'{part}{pointer}: unknown keyword "{keyword}"')

    walk_schema(schema, visit)
    return problems


def _shape_problems(raw: Any, expected_name: str | None) -> list[str]:
    """What is wrong with the shape of one contract (not yet its schemas' contents)."""
    if not isinstance(raw, Mapping):
        return ["a contract must be a JSON object"]
    allowed = ", ".join(CONTRACT_KEYS)
    problems = [
        f'unknown key "{key}" (allowed: {allowed})' for key in raw if key not in CONTRACT_KEYS
    ]
    name, description = raw.get("name"), raw.get("description")
    params, result = raw.get("params"), raw.get("result")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.append(
            f'"name" must be a job name (letters, digits, _ . : -), got {json.dumps(name)}'
        )
    elif expected_name is not None and name != expected_name:
        problems.append(f'"name" is "{name}" but the file is named "{expected_name}.json"')
    if description is not None and not isinstance(description, str):
        problems.append('"description" must be a string')
    if not isinstance(params, Mapping):
        problems.append('"params" must be a JSON Schema object')
    elif params.get("type") != "object":
        problems.append('"params" must have "type": "object" (params are keyword params)')
    else:
        problems.extend(_schema_problems(params, "params"))
    if "result" in raw and not isinstance(result, Mapping):
        problems.append('"result" must be a JSON Schema object')
    elif isinstance(result, Mapping):
        problems.extend(_schema_problems(result, "result"))
    return problems


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
            shape = _shape_problems(raw, file.name[: -len(".json")])
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
            shape = _shape_problems(raw, stem)
            if shape:
                problems.extend(f"{where}: {problem}" for problem in shape)
            else:
                valid.append(_contract_of(raw, file))
        return cls._build(valid, problems)

    @classmethod
    def _build(cls, contracts: Sequence[JobContract], problems: list[str]) -> JobCatalog:
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
