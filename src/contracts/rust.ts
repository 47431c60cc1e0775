import { GENERATED_HEADER, type Decl, type TypeExpr, type TypesModel } from "./model.js";
import { pascalCase, snakeCase } from "./naming.js";

/**
 * Rust rendering of a {@link TypesModel}: serde structs (`Option` + skip_serializing_if for
 * optional keys, `deny_unknown_fields` when additionalProperties is false), enums for string
 * enums, and an `impl rrqkit::contracts::JobContract` per job's params type. Unions are
 * `serde_json::Value` (a comment lists the variants). rustfmt-clean as written.
 */

const KEYWORDS = new Set(
  (
    "as async await break const continue crate dyn else enum extern false fn for if impl in let " +
    "loop match mod move mut pub ref return self static struct super trait true type unsafe use " +
    "where while abstract become box do final macro override priv try typeof unsized virtual yield"
  ).split(" "),
);

const DERIVE = "#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]";

/** The Rust type; `notes` collects what the type cannot say (unions, literals, any). */
function render(type: TypeExpr, notes: string[]): string {
  switch (type.kind) {
    case "primitive":
      return { string: "String", number: "f64", integer: "i64", boolean: "bool", null: "()" }[
        type.name
      ];
    case "any":
      if (type.note) notes.push(`any JSON value: ${type.note}`);
      return "serde_json::Value";
    case "array":
      return `Vec<${render(type.items, notes)}>`;
    case "map":
      return `std::collections::BTreeMap<String, ${render(type.values, notes)}>`;
    case "ref":
      return type.name;
    case "literal":
      notes.push(`always ${JSON.stringify(type.value)}`);
      if (typeof type.value === "string") return "String";
      if (typeof type.value === "boolean") return "bool";
      if (type.value === null) return "()";
      return Number.isInteger(type.value) ? "i64" : "f64";
    case "nullable":
      return `Option<${render(type.inner, notes)}>`;
    case "union":
      notes.push(`one of: ${type.members.map((m) => render(m, [])).join(", ")}`);
      return "serde_json::Value";
  }
}

const docLines = (text: string | undefined, indent: string) =>
  text === undefined ? [] : text.split("\n").map((l) => (l ? `${indent}/// ${l}` : `${indent}///`));

const noteLines = (notes: string[], indent: string) => notes.map((n) => `${indent}// ${n}`);

/** A field or variant name that is a valid identifier (`r#type` for keywords). */
function ident(name: string): string {
  return KEYWORDS.has(name) && !["self", "super", "crate"].includes(name) ? `r#${name}` : name;
}

/** Rust names for the keys of one struct, unique within it. */
function fieldNames(keys: readonly string[]): string[] {
  const used = new Set<string>();
  return keys.map((key) => {
    const base = snakeCase(key);
    let name = base;
    for (let n = 2; used.has(name); n++) name = `${base}_${n}`;
    used.add(name);
    return name;
  });
}

function renderStruct(decl: Extract<Decl, { kind: "object" }>): string[] {
  const out = [...docLines(decl.description, ""), DERIVE];
  if (decl.closed) out.push("#[serde(deny_unknown_fields)]");
  if (decl.fields.length === 0) return [...out, `pub struct ${decl.name} {}`];
  out.push(`pub struct ${decl.name} {`);
  const names = fieldNames(decl.fields.map((f) => f.name));
  decl.fields.forEach((field, i) => {
    const notes: string[] = [];
    let type = render(field.type, notes);
    // one attribute per concern keeps each line short enough for rustfmt to leave it alone
    const attrs: string[] = [];
    if (names[i] !== field.name) attrs.push(`#[serde(rename = ${JSON.stringify(field.name)})]`);
    if (!field.required) {
      if (field.type.kind !== "nullable") type = `Option<${type}>`;
      attrs.push(`#[serde(default, skip_serializing_if = "Option::is_none")]`);
    }
    out.push(...docLines(field.description, "    "), ...noteLines(notes, "    "));
    out.push(...attrs.map((a) => `    ${a}`));
    out.push(`    pub ${ident(names[i]!)}: ${type},`);
  });
  return [...out, "}"];
}

function renderEnum(decl: Extract<Decl, { kind: "enum" }>): string[] {
  const out = docLines(decl.description, "");
  if (decl.values.some((v) => typeof v === "number")) {
    const integers = decl.values.every((v) => Number.isInteger(v));
    out.push(`// one of: ${decl.values.join(", ")}`);
    return [...out, `pub type ${decl.name} = ${integers ? "i64" : "f64"};`];
  }
  const used = new Set<string>();
  out.push(
    "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]",
    `pub enum ${decl.name} {`,
  );
  decl.values.forEach((value, i) => {
    let variant = /[A-Za-z]/.test(String(value)) ? pascalCase(String(value)) : `Value${i + 1}`;
    if (used.has(variant)) variant = `${variant}${i + 1}`;
    used.add(variant);
    out.push(`    #[serde(rename = ${JSON.stringify(value)})]`, `    ${variant},`);
  });
  return [...out, "}"];
}

function renderDecl(decl: Decl): string[] {
  if (decl.kind === "object") return renderStruct(decl);
  if (decl.kind === "enum") return renderEnum(decl);
  const notes: string[] = [];
  const type = render(decl.type, notes);
  return [
    ...docLines(decl.description, ""),
    ...noteLines(notes, ""),
    `pub type ${decl.name} = ${type};`,
  ];
}

/** The generated Rust module (serde and serde_json are needed; rrqkit for the impls). */
export function renderRust(model: TypesModel): string {
  const out = [`// ${GENERATED_HEADER}`];
  for (const decl of model.decls) out.push("", ...renderDecl(decl));
  for (const job of model.jobs) {
    out.push(
      "",
      `impl rrqkit::contracts::JobContract for ${job.params} {`,
      `    const NAME: &'static str = ${JSON.stringify(job.name)};`,
      `    type Result = ${job.result ?? "serde_json::Value"};`,
      "}",
    );
  }
  out.push("");
  return out.join("\n");
}
