import { isObject, type JobCatalog } from "@rrqkit/runner/contracts";
import { NameRegistry, pascalCase } from "./naming.js";

/**
 * A language-neutral model of the types a catalog describes, built from the JSON Schema subset
 * `rrq jobs types` understands (docs/contracts.md); the TypeScript, Python and Rust emitters
 * only render it, so the three agree on names and shapes.
 */

/** A type used in a field, an array, a union... */
export type TypeExpr =
  | { kind: "primitive"; name: "string" | "number" | "integer" | "boolean" | "null" }
  /** Any JSON value; `note` says why when the schema was outside the subset. */
  | { kind: "any"; note?: string }
  | { kind: "array"; items: TypeExpr }
  /** An object with arbitrary keys whose values are `values`. */
  | { kind: "map"; values: TypeExpr }
  | { kind: "ref"; name: string }
  | { kind: "literal"; value: string | number | boolean | null }
  | { kind: "nullable"; inner: TypeExpr }
  | { kind: "union"; members: TypeExpr[] };

/** One property of an object declaration. */
export interface Field {
  name: string;
  type: TypeExpr;
  required: boolean;
  description?: string;
}

/** A named type. */
export type Decl =
  | {
      kind: "object";
      name: string;
      description?: string;
      fields: Field[];
      /** additionalProperties is false. */
      closed: boolean;
    }
  /** A string enum or a number enum. */
  | { kind: "enum"; name: string; description?: string; values: (string | number)[] }
  | { kind: "alias"; name: string; description?: string; type: TypeExpr };

/** One job: the names of its params and result types. */
export interface JobModel {
  name: string;
  description?: string;
  params: string;
  result?: string;
}

/** The whole model: jobs sorted by name, declarations in dependency order. */
export interface TypesModel {
  jobs: JobModel[];
  decls: Decl[];
}

/** Keywords outside the subset that change what a value may be (constraints like minimum do not). */
const UNSUPPORTED = ["allOf", "not", "if", "prefixItems", "patternProperties", "dependentSchemas"];

type Schema = Record<string, unknown>;

/** Builds the declarations of one schema (params or result of one job). */
class SchemaConverter {
  private readonly defNames = new Map<string, string>();

  constructor(
    private readonly names: NameRegistry,
    private readonly decls: Decl[],
    private readonly prefix: string,
    root: Schema,
    /** The job's params type: always a declared object (the Rust impl needs a local struct). */
    private readonly structName?: string,
  ) {
    const defs = isObject(root.$defs) ? root.$defs : {};
    for (const key of Object.keys(defs).sort())
      this.defNames.set(key, names.claim(`${prefix}${pascalCase(key)}`));
    for (const key of Object.keys(defs).sort())
      this.named(defs[key], this.defNames.get(key)!, undefined);
  }

  /** Declares `schema` under exactly `name` (an object, an enum, or an alias of another type). */
  named(schema: unknown, name: string, extraDoc: string | undefined): void {
    const description = doc(extraDoc, isObject(schema) ? schema.description : undefined);
    const type = this.convert(schema, name, name);
    if (type.kind === "ref" && type.name === name) {
      const decl = this.decls.find((d) => d.name === name)!;
      if (description !== undefined) decl.description = description;
      return;
    }
    this.decls.push({ kind: "alias", name, type, ...(description ? { description } : {}) });
  }

  /**
   * The type of `schema`; `hint` names the declarations it needs (inline objects, enums), and
   * `exact` is a name already claimed for it (a `$defs` entry or a job's params/result).
   */
  convert(schema: unknown, hint: string, exact?: string): TypeExpr {
    if (!isObject(schema))
      return schema === false ? { kind: "any", note: "schema false: no value is valid" } : any();
    if (typeof schema.$ref === "string")
      return { kind: "ref", name: this.defNames.get(schema.$ref.slice("#/$defs/".length))! };
    if (schema.const !== undefined) return literalOf(schema.const);
    if (Array.isArray(schema.enum)) return this.enumType(schema.enum, hint, exact);
    const variants = schema.anyOf ?? schema.oneOf;
    if (Array.isArray(variants)) return this.unionType(variants, hint);
    const unsupported = UNSUPPORTED.find((k) => schema[k] !== undefined);
    if (unsupported) return { kind: "any", note: `${unsupported} is outside the generated subset` };
    const type = schema.type ?? (isObject(schema.properties) ? "object" : undefined);
    if (Array.isArray(type)) return this.typeArray(schema, type, hint, exact);
    switch (type) {
      case "object":
        return this.objectType(schema, hint, exact);
      case "array":
        return { kind: "array", items: this.convert(schema.items ?? true, `${hint}Item`) };
      case "string":
      case "number":
      case "integer":
      case "boolean":
      case "null":
        return { kind: "primitive", name: type as "string" };
      default:
        return any();
    }
  }

  private enumType(values: unknown[], hint: string, exact?: string): TypeExpr {
    const nonNull = values.filter((v) => v !== null);
    const wrap = (t: TypeExpr): TypeExpr =>
      nonNull.length < values.length ? { kind: "nullable", inner: t } : t;
    const strings = nonNull.every((v) => typeof v === "string");
    const numbers = nonNull.every((v) => typeof v === "number");
    if (nonNull.length > 0 && (strings || numbers)) {
      // a nullable enum becomes an alias of `Enum | null`, so the enum itself needs another name
      const name = exact && nonNull.length === values.length ? exact : this.names.claim(hint);
      this.decls.push({ kind: "enum", name, values: nonNull });
      return wrap({ kind: "ref", name });
    }
    if (nonNull.some((v) => typeof v === "object"))
      return { kind: "any", note: "an enum of objects or arrays is outside the generated subset" };
    return wrap(union(nonNull.map(literalOf)));
  }

  private unionType(variants: unknown[], hint: string): TypeExpr {
    const isNull = (v: unknown) => isObject(v) && v.type === "null" && Object.keys(v).length === 1;
    const members = variants
      .filter((v) => !isNull(v))
      .map((v, i) => this.convert(v, `${hint}Variant${i + 1}`));
    const type = union(members);
    return members.length < variants.length ? { kind: "nullable", inner: type } : type;
  }

  private typeArray(schema: Schema, types: unknown[], hint: string, exact?: string): TypeExpr {
    const nonNull = types.filter((t) => t !== "null");
    const members = nonNull.map((t) =>
      this.convert({ ...schema, type: t }, hint, types.length === 1 ? exact : undefined),
    );
    const type = union(members);
    return nonNull.length < types.length ? { kind: "nullable", inner: type } : type;
  }

  private objectType(schema: Schema, hint: string, exact?: string): TypeExpr {
    const properties = isObject(schema.properties) ? schema.properties : undefined;
    const additional = schema.additionalProperties;
    if (!properties && additional !== false && exact !== this.structName)
      return { kind: "map", values: this.convert(additional ?? true, `${hint}Value`) };
    const name = exact ?? this.names.claim(hint);
    const decl: Decl = { kind: "object", name, fields: [], closed: additional === false };
    this.decls.push(decl);
    const required = Array.isArray(schema.required) ? schema.required : [];
    for (const [key, sub] of Object.entries(properties ?? {})) {
      const description = isObject(sub) ? doc(undefined, sub.description) : undefined;
      decl.fields.push({
        name: key,
        type: this.convert(sub, `${name}${pascalCase(key)}`),
        required: required.includes(key),
        ...(description ? { description } : {}),
      });
    }
    return { kind: "ref", name };
  }
}

const any = (): TypeExpr => ({ kind: "any" });

function literalOf(value: unknown): TypeExpr {
  if (value === null || ["string", "number", "boolean"].includes(typeof value))
    return { kind: "literal", value: value as string | number | boolean | null };
  return { kind: "any", note: "a const object or array is outside the generated subset" };
}

function union(members: TypeExpr[]): TypeExpr {
  if (members.length === 0) return any();
  return members.length === 1 ? members[0]! : { kind: "union", members };
}

function doc(...parts: unknown[]): string | undefined {
  const text = parts.filter((p): p is string => typeof p === "string" && p.trim() !== "");
  return text.length > 0 ? text.join("\n\n") : undefined;
}

/** The names a type expression refers to. */
function refsOf(type: TypeExpr): string[] {
  switch (type.kind) {
    case "ref":
      return [type.name];
    case "array":
      return refsOf(type.items);
    case "map":
      return refsOf(type.values);
    case "nullable":
      return refsOf(type.inner);
    case "union":
      return type.members.flatMap(refsOf);
    default:
      return [];
  }
}

/** Declarations with what they refer to first (cycles: in first-seen order), else model order. */
function dependencyOrder(decls: readonly Decl[]): Decl[] {
  const byName = new Map(decls.map((d) => [d.name, d]));
  const done = new Set<string>();
  const out: Decl[] = [];
  const visit = (decl: Decl) => {
    if (done.has(decl.name)) return;
    done.add(decl.name);
    const deps =
      decl.kind === "object"
        ? decl.fields.flatMap((f) => refsOf(f.type))
        : decl.kind === "alias"
          ? refsOf(decl.type)
          : [];
    for (const dep of deps) visit(byName.get(dep)!);
    out.push(decl);
  };
  decls.forEach(visit);
  return out;
}

/** The model of a whole catalog (jobs in name order). */
export function buildModel(catalog: JobCatalog): TypesModel {
  const names = new NameRegistry();
  const decls: Decl[] = [];
  const jobs: JobModel[] = [];
  for (const jobName of catalog.names()) {
    const contract = catalog.get(jobName)!;
    const prefix = pascalCase(jobName);
    const params = names.claim(`${prefix}Params`);
    const result = contract.result ? names.claim(`${prefix}Result`) : undefined;
    const job: JobModel = { name: jobName, params };
    if (contract.description) job.description = contract.description;
    new SchemaConverter(names, decls, prefix, contract.params, params).named(
      contract.params,
      params,
      doc(`Params of the job "${jobName}".`, contract.description),
    );
    if (contract.result && result) {
      job.result = result;
      new SchemaConverter(names, decls, prefix, contract.result).named(
        contract.result,
        result,
        `Result of the job "${jobName}".`,
      );
    }
    jobs.push(job);
  }
  return { jobs, decls: dependencyOrder(decls) };
}

/** The first line of every generated file (in the language's comment syntax). */
export const GENERATED_HEADER = "generated by rrq jobs types; do not edit";
