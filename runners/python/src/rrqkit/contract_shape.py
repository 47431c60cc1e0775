"""The shape rules of a job contract file (see :mod:`rrqkit.contracts`): its keys, its name, and
the schema mistakes refused before any params are checked: ``$ref`` outside ``#/$defs``,
keywords that reach outside the file, unknown keywords, keywords that cannot apply to the
declared ``type``, and ``required`` names without a property (the mistakes ajv's strict mode
refuses in the TypeScript catalog, so a catalog loads in every language or in none).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["CONTRACT_KEYS", "KNOWN_KEYWORDS", "pointer_token", "shape_problems", "walk_schema"]

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
#: Keywords that apply to one kind of value only; with a ``type`` that excludes that kind they
#: could never apply (ajv's strict mode, ``strictTypes``, refuses them too).
_TYPE_OF_KEYWORD: Final = {
    **dict.fromkeys(
        ("multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"), "number"
    ),
    **dict.fromkeys(("maxLength", "minLength", "pattern"), "string"),
    **dict.fromkeys(
        (
            "prefixItems",
            "items",
            "contains",
            "maxItems",
            "minItems",
            "uniqueItems",
            "maxContains",
            "minContains",
            "unevaluatedItems",
        ),
        "array",
    ),
    **dict.fromkeys(
        (
            "properties",
            "patternProperties",
            "additionalProperties",
            "propertyNames",
            "maxProperties",
            "minProperties",
            "required",
            "dependentRequired",
            "dependentSchemas",
            "unevaluatedProperties",
        ),
        "object",
    ),
}


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
        problems.extend(f"{part}{pointer}: {problem}" for problem in _strict_problems(node))

    walk_schema(schema, visit)
    return problems


def _strict_problems(node: Mapping[str, Any]) -> list[str]:
    """Keywords that cannot apply to the node's declared ``type``, and ``required`` names its
    ``properties`` do not define: mistakes ajv's strict mode refuses, refused here too so a
    catalog loads in every language or in none."""
    problems: list[str] = []
    declared = node.get("type")
    if isinstance(declared, str):
        types = {declared}
    elif isinstance(declared, list):
        types = {t for t in declared if isinstance(t, str)}
    else:
        types = set()
    if "integer" in types:
        types.add("number")
    if types:
        for keyword, kind in _TYPE_OF_KEYWORD.items():
            if keyword in node and kind not in types:
                shown = "/".join(sorted(str(t) for t in types))
                problems.append(f'keyword "{keyword}" applies to {kind}s, not to type {shown}')
    properties, required = node.get("properties"), node.get("required")
    if isinstance(properties, Mapping) and isinstance(required, list):
        for name in required:
            if isinstance(name, str) and name not in properties:
                problems.append(f'required property "{name}" is not defined in "properties"')
    return problems


def shape_problems(raw: Any, expected_name: str | None) -> list[str]:
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
