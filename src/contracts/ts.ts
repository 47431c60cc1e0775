import { GENERATED_HEADER, type Decl, type TypeExpr, type TypesModel } from "./model.js";

/**
 * TypeScript rendering of a {@link TypesModel}: interfaces, union types and an
 * `export interface Jobs` map for `new Producer<Jobs>()` and `new Registry<Jobs>()`.
 */

/** The type expression; `notes` collects why a part became `unknown`. */
function render(type: TypeExpr, notes: string[]): string {
  switch (type.kind) {
    case "primitive":
      return type.name === "integer" ? "number" : type.name;
    case "any":
      if (type.note) notes.push(type.note);
      return "unknown";
    case "array": {
      const items = render(type.items, notes);
      return ["union", "nullable"].includes(type.items.kind) ? `(${items})[]` : `${items}[]`;
    }
    case "map":
      return `Record<string, ${render(type.values, notes)}>`;
    case "ref":
      return type.name;
    case "literal":
      return JSON.stringify(type.value);
    case "nullable":
      return `${render(type.inner, notes)} | null`;
    case "union":
      return type.members.map((m) => render(m, notes)).join(" | ");
  }
}

/** A TSDoc comment (none for no text), indented. */
function docComment(text: string | undefined, indent = ""): string[] {
  if (text === undefined) return [];
  const lines = text.replace(/\*\//g, "*\\/").split("\n");
  if (lines.length === 1) return [`${indent}/** ${lines[0]} */`];
  return [
    `${indent}/**`,
    ...lines.map((l) => (l === "" ? `${indent} *` : `${indent} * ${l}`)),
    `${indent} */`,
  ];
}

const notesComment = (notes: string[], indent: string) =>
  notes.map((n) => `${indent}// any JSON value: ${n}`);

/** A property key: bare when it is an identifier, else quoted. */
function key(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

function renderDecl(decl: Decl): string[] {
  const out = docComment(decl.description);
  if (decl.kind === "enum") {
    out.push(
      `export type ${decl.name} = ${decl.values.map((v) => JSON.stringify(v)).join(" | ")};`,
    );
    return out;
  }
  if (decl.kind === "alias") {
    const notes: string[] = [];
    const type = render(decl.type, notes);
    return [...out, ...notesComment(notes, ""), `export type ${decl.name} = ${type};`];
  }
  out.push(`export interface ${decl.name} {`);
  for (const field of decl.fields) {
    const notes: string[] = [];
    const type = render(field.type, notes);
    out.push(...docComment(field.description, "  "), ...notesComment(notes, "  "));
    out.push(`  ${key(field.name)}${field.required ? "" : "?"}: ${type};`);
  }
  // the schema allows other keys (additionalProperties is not false)
  if (!decl.closed) out.push("  [key: string]: unknown;");
  out.push("}");
  return out;
}

/** The generated TypeScript module. */
export function renderTypeScript(model: TypesModel): string {
  const out = [`// ${GENERATED_HEADER}`, ""];
  for (const decl of model.decls) out.push(...renderDecl(decl), "");
  out.push(
    "/** The catalogued jobs, for `new Producer<Jobs>()` and `new Registry<Jobs>()`. */",
    "export interface Jobs {",
  );
  for (const job of model.jobs) {
    const result = job.result ? `; result: ${job.result}` : "";
    out.push(...docComment(job.description, "  "));
    out.push(`  ${key(job.name)}: { params: ${job.params}${result} };`);
  }
  out.push("}", "");
  return out.join("\n");
}
