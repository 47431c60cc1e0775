import { GENERATED_HEADER, type Decl, type TypeExpr, type TypesModel } from "./model.js";

/**
 * Python rendering of a {@link TypesModel}: `TypedDict` classes (`NotRequired` for optional
 * keys), `Literal` aliases for enums, for Python 3.11 and mypy --strict.
 */

const KEYWORDS = new Set(
  (
    "False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while " +
    "with yield"
  ).split(" "),
);

/** A Python literal: JSON's string escapes are valid in Python too. */
function literal(value: string | number | boolean | null): string {
  if (value === null) return "None";
  if (typeof value === "boolean") return value ? "True" : "False";
  return JSON.stringify(value);
}

/** The annotation; `notes` collects why a part became `Any`. */
function render(type: TypeExpr, notes: string[]): string {
  switch (type.kind) {
    case "primitive":
      return { string: "str", number: "float", integer: "int", boolean: "bool", null: "None" }[
        type.name
      ];
    case "any":
      if (type.note) notes.push(type.note);
      return "Any";
    case "array":
      return `list[${render(type.items, notes)}]`;
    case "map":
      return `dict[str, ${render(type.values, notes)}]`;
    case "ref":
      return type.name;
    case "literal":
      return type.value === null ? "None" : `Literal[${literal(type.value)}]`;
    case "nullable":
      return `${render(type.inner, notes)} | None`;
    case "union":
      return type.members.map((m) => render(m, notes)).join(" | ");
  }
}

const comments = (text: string | undefined, indent: string) =>
  text === undefined ? [] : text.split("\n").map((l) => (l ? `${indent}# ${l}` : `${indent}#`));

const notesComment = (notes: string[], indent: string) =>
  notes.map((n) => `${indent}# any JSON value: ${n}`);

/** A class docstring (triple-quoted; quotes and backslashes in the text escaped). */
function docstring(text: string, indent: string): string[] {
  const lines = text.replace(/\\/g, "\\\\").replace(/"""/g, '\\"\\"\\"').split("\n");
  if (lines.length === 1) return [`${indent}"""${lines[0]}"""`];
  return [
    `${indent}"""${lines[0]}`,
    ...lines.slice(1).map((l) => (l ? `${indent}${l}` : "")),
    `${indent}"""`,
  ];
}

const isIdentifier = (name: string) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !KEYWORDS.has(name);

function fieldType(type: TypeExpr, required: boolean, notes: string[]): string {
  const annotation = render(type, notes);
  return required ? annotation : `NotRequired[${annotation}]`;
}

/** A TypedDict: class syntax, or the functional syntax when a key is not an identifier. */
function renderObject(decl: Extract<Decl, { kind: "object" }>): string[] {
  if (!decl.fields.every((f) => isIdentifier(f.name))) {
    const out = comments(decl.description, "");
    out.push(`${decl.name} = TypedDict(`, `    ${JSON.stringify(decl.name)},`, "    {");
    for (const f of decl.fields) {
      const notes: string[] = [];
      const type = fieldType(f.type, f.required, notes);
      out.push(...comments(f.description, "        "), ...notesComment(notes, "        "));
      out.push(`        ${JSON.stringify(f.name)}: ${type},`);
    }
    return [...out, "    },", ")"];
  }
  const out = [`class ${decl.name}(TypedDict):`];
  if (decl.description) out.push(...docstring(decl.description, "    "));
  if (decl.description && decl.fields.length > 0) out.push("");
  for (const f of decl.fields) {
    const notes: string[] = [];
    const type = fieldType(f.type, f.required, notes);
    out.push(...comments(f.description, "    "), ...notesComment(notes, "    "));
    out.push(`    ${f.name}: ${type}`);
  }
  if (!decl.description && decl.fields.length === 0) out.push("    pass");
  return out;
}

function renderDecl(decl: Decl): string[] {
  if (decl.kind === "object") return renderObject(decl);
  const notes: string[] = [];
  const type =
    decl.kind === "enum"
      ? `Literal[${decl.values.map(literal).join(", ")}]`
      : render(decl.type, notes);
  return [
    ...comments(decl.description, ""),
    ...notesComment(notes, ""),
    `${decl.name}: TypeAlias = ${type}`,
  ];
}

/** The generated Python module (imports only what it uses, so linters stay quiet). */
export function renderPython(model: TypesModel): string {
  const body: string[] = [];
  for (const decl of model.decls) body.push("", "", ...renderDecl(decl));
  const text = body.join("\n");
  const used = ["Any", "Literal", "NotRequired", "TypeAlias", "TypedDict"].filter((name) =>
    new RegExp(`\\b${name}\\b`).test(text),
  );
  const out = [`# ${GENERATED_HEADER}`, "from __future__ import annotations", ""];
  const names = model.decls.map((d) => d.name).sort();
  if (used.length > 0) out.push(`from typing import ${used.join(", ")}`, "");
  out.push("__all__ = [", ...names.map((n) => `    ${JSON.stringify(n)},`), "]");
  return [...out, ...body, ""].join("\n");
}
