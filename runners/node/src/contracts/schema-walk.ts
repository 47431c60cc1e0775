/**
 * Walking a JSON Schema (2020-12) by its subschemas, without mistaking data for schemas: a
 * property *named* "$ref" or an `enum` value that looks like a schema is not visited.
 */

/** Keywords whose value is one subschema. */
const SINGLE = [
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
] as const;

/** Keywords whose value is an array of subschemas. */
const LISTS = ["prefixItems", "allOf", "anyOf", "oneOf"] as const;

/** Keywords whose value maps names to subschemas. */
const MAPS = [
  "properties",
  "patternProperties",
  "$defs",
  "definitions",
  "dependentSchemas",
] as const;

/** A JSON object (not an array, not null). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** JSON Pointer escaping of one reference token (RFC 6901). */
export function pointerToken(token: string): string {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

/**
 * Calls `visit` with every schema object inside `schema` (itself included) and its JSON
 * Pointer relative to `schema` ("" for the root). Boolean schemas are skipped (nothing to check).
 */
export function walkSchema(
  schema: unknown,
  visit: (node: Record<string, unknown>, pointer: string) => void,
  pointer = "",
): void {
  if (!isObject(schema)) return;
  visit(schema, pointer);
  for (const key of SINGLE) walkSchema(schema[key], visit, `${pointer}/${key}`);
  for (const key of LISTS) {
    const list = schema[key];
    if (Array.isArray(list)) list.forEach((s, i) => walkSchema(s, visit, `${pointer}/${key}/${i}`));
  }
  for (const key of MAPS) {
    const map = schema[key];
    if (!isObject(map)) continue;
    for (const [name, s] of Object.entries(map))
      walkSchema(s, visit, `${pointer}/${key}/${pointerToken(name)}`);
  }
}
