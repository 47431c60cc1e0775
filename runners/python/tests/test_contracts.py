"""Job contracts: loading a catalog and checking params against it (rrqkit.contracts).

The expected ``field`` values are the same as the TypeScript catalog's tests
(test/contracts-catalog.test.ts) for the same params: the three languages agree on ``field``;
their messages are the validation libraries' own words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rrqkit.contracts import (
    CatalogError,
    JobCatalog,
    JobContract,
    ParamsProblem,
    catalog_path_from_toml,
    load_job_catalog,
)

FIXTURE = Path(__file__).resolve().parents[3] / "conformance" / "fixtures" / "catalog"


def object_params(properties: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties or {}}


def catalog_dir(tmp_path: Path, files: dict[str, Any]) -> Path:
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def load_problems(tmp_path: Path, files: dict[str, Any]) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_job_catalog(catalog_dir(tmp_path, files))
    assert caught.value.code == "invalid_catalog"
    return caught.value.problems


@pytest.fixture(scope="module")
def catalog() -> JobCatalog:
    return load_job_catalog(FIXTURE)


def test_fixture_lists_its_jobs_sorted(catalog: JobCatalog) -> None:
    assert catalog.names() == ["resize_image", "send_email"]
    contract = catalog.get("send_email")
    assert contract is not None
    assert contract.description == "Sends one email."
    assert contract.file is not None and contract.file.endswith("send_email.json")
    assert catalog.get("nope") is None
    assert "send_email" in catalog and len(catalog) == 2


def test_valid_params_and_uncatalogued_functions(catalog: JobCatalog) -> None:
    ok = {"to": "a@b", "subject": "hi", "cc": ["c@d"], "priority": "low"}
    assert catalog.check_params("send_email", ok) is None
    assert catalog.check_params("not_catalogued", 42) is None
    assert catalog.check_params("resize_image", {"url": "u", "width": 1, "height": 2}) is None
    # an integral float is an integer, as in JSON
    assert catalog.check_params("resize_image", {"url": "u", "width": 1.0, "height": 2}) is None


@pytest.mark.parametrize(
    ("params", "field", "detail"),
    [
        ({"to": 1, "subject": "x"}, "/to", "1 is not of type 'string'"),
        ({"subject": "x"}, "", "'to' is a required property"),
        ({"to": "a", "subject": "b", "x": 1}, "", "Additional properties are not allowed"),
        ({"to": "a", "subject": "b", "priority": "mid"}, "/priority", "'mid' is not one of"),
        (
            {
                "to": "a",
                "subject": "b",
                "attachments": [{"name": "f", "bytes": 1}, {"name": "g", "bytes": -1}],
            },
            "/attachments/1/bytes",
            "-1 is less than the minimum of 0",
        ),
        (["a"], "", "['a'] is not of type 'object'"),
        ({"to": "a", "subject": "b", "cc": ["x", True]}, "/cc/1", "True is not of type"),
    ],
)
def test_refuses_bad_params(catalog: JobCatalog, params: Any, field: str, detail: str) -> None:
    problem = catalog.check_params("send_email", params)
    assert problem is not None
    assert problem.function_name == "send_email"
    assert problem.field == field
    assert problem.message.startswith(f"send_email: params{field} {detail}")


def test_first_failing_location_by_byte_order(catalog: JobCatalog) -> None:
    # three failures: /to, /subject and /cc/0 — "/cc/0" < "/subject" < "/to"
    problem = catalog.check_params("send_email", {"to": 1, "subject": 2, "cc": [3]})
    assert problem is not None and problem.field == "/cc/0"
    # a missing required key reports the object itself (""), which sorts before every child
    problem = catalog.check_params("send_email", {"to": 1, "cc": [3]})
    assert problem is not None and problem.field == ""
    problem = catalog.check_params("resize_image", {"url": "u", "width": 0, "height": "x"})
    assert problem is not None and problem.field == "/height"


def test_byte_order_not_utf16_units() -> None:
    # UTF-8 bytes (what all three languages compare) put "～" U+FF5E (EF BD 9E) before "😀"
    # U+1F600 (F0 9F 98 80); UTF-16 code units (JavaScript's string order) would not (D83D)
    catalog = JobCatalog.from_contracts(
        [
            {
                "name": "u",
                "params": object_params({"😀": {"type": "string"}, "～": {"type": "string"}}),
            }
        ]
    )
    problem = catalog.check_params("u", {"😀": 1, "～": 1})
    assert problem is not None and problem.field == "/～"


def test_pointer_escapes_slash_and_tilde() -> None:
    catalog = JobCatalog.from_contracts(
        [{"name": "p", "params": object_params({"a/b~c": {"type": "string"}})}]
    )
    problem = catalog.check_params("p", {"a/b~c": 1})
    assert problem is not None and problem.field == "/a~1b~0c"


def test_results(catalog: JobCatalog) -> None:
    assert catalog.check_result("send_email", {"message_id": "m1"}) is None
    assert catalog.check_result("send_email", {"message_id": 7}) == ParamsProblem(
        "send_email", "/message_id", "send_email: result/message_id 7 is not of type 'string'"
    )
    assert catalog.check_result("resize_image", "anything") is None


def test_long_messages_are_capped() -> None:
    catalog = JobCatalog.from_contracts(
        [{"name": "s", "params": object_params({"n": {"type": "integer"}})}]
    )
    problem = catalog.check_params("s", {"n": "x" * 10_000})
    assert problem is not None and len(problem.message) < 400


def test_ignores_schema_key_other_files_and_format(tmp_path: Path) -> None:
    catalog = load_job_catalog(
        catalog_dir(
            tmp_path,
            {
                "notify.json": {
                    "$schema": "../schemas/job-contract.schema.json",
                    "name": "notify",
                    "params": object_params({"email": {"type": "string", "format": "email"}}),
                },
                "README.md": "not a contract",
            },
        )
    )
    assert catalog.names() == ["notify"]
    assert catalog.check_params("notify", {"email": "not an address"}) is None


def test_nullable_type_arrays() -> None:
    catalog = JobCatalog.from_contracts(
        [JobContract("n", object_params({"note": {"type": ["string", "null"]}}))]
    )
    assert catalog.check_params("n", {"note": None}) is None
    problem = catalog.check_params("n", {"note": 1})
    assert problem is not None and problem.field == "/note"


@pytest.mark.parametrize(
    ("contract", "problem"),
    [
        ({"name": "a", "params": object_params(), "parms": {}}, 'unknown key "parms"'),
        (
            {"name": "b", "params": object_params()},
            '"name" is "b" but the file is named "a.json"',
        ),
        ({"name": "a", "params": {"type": "array"}}, '"params" must have "type": "object"'),
        ({"name": "a"}, '"params" must be a JSON Schema object'),
        (
            {"name": "a", "description": 1, "params": object_params()},
            '"description" must be a string',
        ),
        (
            {"name": "a", "params": object_params({"s": {"type": "string", "minLenght": 1}})},
            'unknown keyword "minLenght"',
        ),
        (
            {"name": "a", "params": object_params({"s": {"type": "string", "minimum": 1}})},
            'keyword "minimum" applies to numbers',
        ),
        (
            {"name": "a", "params": {**object_params(), "required": ["x"]}},
            'required property "x" is not defined',
        ),
        (
            {"name": "a", "params": object_params({"s": {"$ref": "other.json#/x"}})},
            'params/properties/s/$ref "other.json#/x": only references to "#/$defs/..."',
        ),
        (
            {"name": "a", "params": object_params({"s": {"$ref": "#/$defs/nope"}})},
            'params/properties/s/$ref "#/$defs/nope" does not resolve',
        ),
        ({"name": "a", "params": {**object_params(), "$id": "urn:x"}}, "params/$id is not"),
        (
            {"name": "a", "params": object_params({"s": {"type": "strin"}})},
            "params/properties/s/type:",
        ),
        ({"name": "a", "params": object_params(), "result": True}, '"result" must be a JSON'),
    ],
)
def test_refuses_bad_contracts_naming_the_file(
    tmp_path: Path, contract: dict[str, Any], problem: str
) -> None:
    problems = load_problems(tmp_path, {"a.json": contract})
    assert len(problems) == 1
    assert "a.json: " in problems[0]
    assert problem in problems[0]


def test_lists_every_problem_of_every_file(tmp_path: Path) -> None:
    problems = load_problems(
        tmp_path,
        {
            "a.json": "{ not json",
            "b.json": {"name": "b", "params": object_params(), "extra": 1},
            "c.json": {"name": "c", "params": object_params()},
        },
    )
    assert len(problems) == 2
    assert "a.json: cannot read JSON" in problems[0]
    assert 'b.json: unknown key "extra"' in problems[1]


def test_refuses_a_missing_directory() -> None:
    with pytest.raises(CatalogError, match="invalid job catalog: /nonexistent/catalog is not a"):
        JobCatalog.load("/nonexistent/catalog")


def test_duplicates_and_contracts_in_memory() -> None:
    contract = JobContract("x", object_params())
    with pytest.raises(CatalogError, match='"x" is defined twice'):
        JobCatalog.from_contracts([contract, contract])
    with pytest.raises(CatalogError, match=r'/c/y\.json: "name" is "x" but the file is named'):
        JobCatalog.from_contracts([JobContract("x", object_params(), file="/c/y.json")])


def test_catalog_path_from_toml(tmp_path: Path) -> None:
    toml = tmp_path / "rrq.toml"
    toml.write_text('job_catalog = "ignored"\n[rrq]\njob_catalog = "jobs"\n')
    assert catalog_path_from_toml(toml) == tmp_path / "jobs"
    toml.write_text('[rrq]\nredis_dsn = "redis://x:6379/0"\n')
    assert catalog_path_from_toml(toml) is None
    toml.write_text("[rrq]\njob_catalog = 3\n")
    with pytest.raises(CatalogError, match="job_catalog must be a non-empty string"):
        catalog_path_from_toml(toml)
