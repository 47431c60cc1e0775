//! The shape rules of a job contract file (see [`crate::contracts`]): its keys, its name, and the
//! schema mistakes refused before any params are checked: `$ref` outside `#/$defs`, keywords
//! that reach outside the file, unknown keywords, keywords that cannot apply to the declared
//! `type`, and `required` names without a property. The TypeScript catalog (ajv strict mode)
//! and the Python one refuse the same mistakes, so a catalog loads in every language or in none.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Keys a contract file may have; any other is a mistake (a typo of one of these).
pub const CONTRACT_KEYS: [&str; 5] = ["$schema", "name", "description", "params", "result"];

/// Keywords that would reach outside the contract's own schema (or change where `$ref` points).
const FORBIDDEN_KEYWORDS: [&str; 4] = ["$id", "$dynamicRef", "$dynamicAnchor", "$recursiveRef"];

/// The JSON Schema 2020-12 keywords (plus `definitions`); any other is a schema error, as in
/// ajv's strict mode, so a misspelt keyword is not silently ignored.
const KNOWN_KEYWORDS: [&str; 58] = [
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
];

const SINGLE: [&str; 11] = [
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
];
const LISTS: [&str; 4] = ["prefixItems", "allOf", "anyOf", "oneOf"];
const MAPS: [&str; 5] = [
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// The kind of value a keyword applies to (`None`: any kind). With a `type` that excludes
/// that kind it could never apply (ajv's strict mode, `strictTypes`, refuses it too).
fn kind_of_keyword(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "multipleOf" | "maximum" | "exclusiveMaximum" | "minimum" | "exclusiveMinimum" => "number",
        "maxLength" | "minLength" | "pattern" => "string",
        "prefixItems" | "items" | "contains" | "maxItems" | "minItems" | "uniqueItems"
        | "maxContains" | "minContains" | "unevaluatedItems" => "array",
        "properties"
        | "patternProperties"
        | "additionalProperties"
        | "propertyNames"
        | "maxProperties"
        | "minProperties"
        | "required"
        | "dependentRequired"
        | "dependentSchemas"
        | "unevaluatedProperties" => "object",
        _ => return None,
    })
}

/// JSON Pointer escaping of one reference token (RFC 6901).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Calls `visit` with every schema object inside `schema` (itself included) and its JSON
/// Pointer relative to `schema`. Data (a property *named* `$ref`, `enum` values) is not
/// visited; boolean schemas are skipped.
pub fn walk_schema(
    schema: &Value,
    pointer: &str,
    visit: &mut dyn FnMut(&Map<String, Value>, &str),
) {
    let Value::Object(node) = schema else {
        return;
    };
    visit(node, pointer);
    for key in SINGLE {
        if let Some(child) = node.get(key) {
            walk_schema(child, &format!("{pointer}/{key}"), visit);
        }
    }
    for key in LISTS {
        if let Some(Value::Array(items)) = node.get(key) {
            for (index, item) in items.iter().enumerate() {
                walk_schema(item, &format!("{pointer}/{key}/{index}"), visit);
            }
        }
    }
    for key in MAPS {
        if let Some(Value::Object(entries)) = node.get(key) {
            for (name, item) in entries {
                walk_schema(
                    item,
                    &format!("{pointer}/{key}/{}", pointer_token(name)),
                    visit,
                );
            }
        }
    }
}

fn resolves(root: &Value, reference: &str) -> bool {
    let mut node = root;
    for raw in reference[2..].split('/') {
        let token = raw.replace("~1", "/").replace("~0", "~");
        match node.get(&token) {
            Some(next) if node.is_object() => node = next,
            _ => return false,
        }
    }
    node.is_object() || node.is_boolean()
}

fn json(value: Option<&Value>) -> String {
    serde_json::to_string(value.unwrap_or(&Value::Null)).unwrap_or_default()
}

/// Local-only `$ref`s that resolve, no forbidden or unknown keywords, no keyword that cannot
/// apply to the declared type.
fn schema_problems(schema: &Value, part: &str) -> Vec<String> {
    let mut problems = Vec::new();
    walk_schema(schema, "", &mut |node, pointer| {
        if let Some(reference) = node.get("$ref") {
            match reference.as_str() {
                Some(r) if r.starts_with("#/$defs/") => {
                    if !resolves(schema, r) {
                        problems.push(format!(
                            "{part}{pointer}/$ref {} does not resolve",
                            json(Some(reference))
                        ));
                    }
                }
                _ => problems.push(format!(
                    "{part}{pointer}/$ref {}: only references to \"#/$defs/...\" in the same \
                     schema are allowed",
                    json(Some(reference))
                )),
            }
        }
        for keyword in FORBIDDEN_KEYWORDS {
            if node.contains_key(keyword) {
                problems.push(format!(
                    "{part}{pointer}/{keyword} is not allowed in a job contract"
                ));
            }
        }
        for keyword in node.keys() {
            if !KNOWN_KEYWORDS.contains(&keyword.as_str()) {
                problems.push(format!("{part}{pointer}: unknown keyword \"{keyword}\""));
            }
        }
        for problem in strict_problems(node) {
            problems.push(format!("{part}{pointer}: {problem}"));
        }
    });
    problems
}

/// Keywords that cannot apply to the node's declared `type`, and `required` names its
/// `properties` do not define (the mistakes ajv's strict mode refuses).
fn strict_problems(node: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut types: BTreeSet<&str> = match node.get("type") {
        Some(Value::String(t)) => [t.as_str()].into(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    };
    if types.contains("integer") {
        types.insert("number");
    }
    if !types.is_empty() {
        // The Python and TypeScript catalogs check keywords in one fixed order; the order
        // only decides the order of the messages, not whether a catalog loads.
        for keyword in node.keys() {
            if let Some(kind) = kind_of_keyword(keyword) {
                if !types.contains(kind) {
                    let shown = types.iter().copied().collect::<Vec<_>>().join("/");
                    problems.push(format!(
                        "keyword \"{keyword}\" applies to {kind}s, not to type {shown}"
                    ));
                }
            }
        }
    }
    if let (Some(Value::Object(properties)), Some(Value::Array(required))) =
        (node.get("properties"), node.get("required"))
    {
        for name in required.iter().filter_map(Value::as_str) {
            if !properties.contains_key(name) {
                problems.push(format!(
                    "required property \"{name}\" is not defined in \"properties\""
                ));
            }
        }
    }
    problems
}

/// A job name: what runners register and producers enqueue (also the file name).
fn is_job_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

/// What is wrong with the shape of one contract (not yet its schemas' contents).
pub fn shape_problems(raw: &Value, expected_name: Option<&str>) -> Vec<String> {
    let Value::Object(map) = raw else {
        return vec!["a contract must be a JSON object".to_string()];
    };
    let allowed = CONTRACT_KEYS.join(", ");
    let mut problems: Vec<String> = map
        .keys()
        .filter(|key| !CONTRACT_KEYS.contains(&key.as_str()))
        .map(|key| format!("unknown key \"{key}\" (allowed: {allowed})"))
        .collect();
    match map.get("name").and_then(Value::as_str) {
        Some(name) if is_job_name(name) => {
            if let Some(expected) = expected_name.filter(|e| *e != name) {
                problems.push(format!(
                    "\"name\" is \"{name}\" but the file is named \"{expected}.json\""
                ));
            }
        }
        _ => problems.push(format!(
            "\"name\" must be a job name (letters, digits, _ . : -), got {}",
            json(map.get("name"))
        )),
    }
    if map
        .get("description")
        .is_some_and(|d| !d.is_null() && !d.is_string())
    {
        problems.push("\"description\" must be a string".to_string());
    }
    match map.get("params") {
        Some(params @ Value::Object(p)) => {
            if p.get("type").and_then(Value::as_str) != Some("object") {
                problems.push(
                    "\"params\" must have \"type\": \"object\" (params are keyword params)"
                        .to_string(),
                );
            } else {
                problems.extend(schema_problems(params, "params"));
            }
        }
        _ => problems.push("\"params\" must be a JSON Schema object".to_string()),
    }
    match map.get("result") {
        None => {}
        Some(result @ Value::Object(_)) => problems.extend(schema_problems(result, "result")),
        Some(_) => problems.push("\"result\" must be a JSON Schema object".to_string()),
    }
    problems
}
