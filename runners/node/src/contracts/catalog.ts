import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Ajv2020 } from "ajv/dist/2020.js";
import { isObject, walkSchema } from "./schema-walk.js";
import { compileChecker, newAjv, problemOf, type Checker, type ParamsProblem } from "./validate.js";

/** One job contract: a function name and the JSON Schemas of its params and result. */
export interface JobContract {
  name: string;
  description?: string;
  /** JSON Schema (2020-12) of the params object; its `type` is "object". */
  params: Record<string, unknown>;
  /** JSON Schema of the handler's result (optional). */
  result?: Record<string, unknown>;
  /** The file the contract was read from, when it came from a directory. */
  file?: string;
}

/** A catalog (or a contract in it) is unusable; `problems` lists every one, each naming its file. */
export class CatalogError extends Error {
  override readonly name = "CatalogError";
  readonly code = "invalid_catalog";
  constructor(readonly problems: readonly string[]) {
    super(
      problems.length === 1
        ? `invalid job catalog: ${problems[0]}`
        : `invalid job catalog (${problems.length} problems):\n  ${problems.join("\n  ")}`,
    );
  }
}

/** Keys a contract file may have; any other is a mistake (a typo of one of these). */
const CONTRACT_KEYS = ["$schema", "name", "description", "params", "result"] as const;

/** Keywords that would reach outside the contract's own schema (or change where `$ref` points). */
const FORBIDDEN_KEYWORDS = ["$id", "$dynamicRef", "$dynamicAnchor", "$recursiveRef"] as const;

/** A job name: what runners register and producers enqueue (also the file name). */
const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

/** Problems of a `$ref` or a forbidden keyword anywhere inside `schema` ("params" or "result"). */
function referenceProblems(schema: Record<string, unknown>, part: string): string[] {
  const problems: string[] = [];
  walkSchema(schema, (node, pointer) => {
    const ref = node.$ref;
    if (ref !== undefined && (typeof ref !== "string" || !ref.startsWith("#/$defs/")))
      problems.push(
        `${part}${pointer}/$ref ${JSON.stringify(ref)}: only references to "#/$defs/..." in the same schema are allowed`,
      );
    for (const keyword of FORBIDDEN_KEYWORDS)
      if (node[keyword] !== undefined)
        problems.push(`${part}${pointer}/${keyword} is not allowed in a job contract`);
  });
  return problems;
}

/** What is wrong with the shape of one contract (not yet its schemas' contents). */
function shapeProblems(raw: unknown, expectedName: string | undefined): string[] {
  if (!isObject(raw)) return ["a contract must be a JSON object"];
  const problems = Object.keys(raw)
    .filter((key) => !(CONTRACT_KEYS as readonly string[]).includes(key))
    .map((key) => `unknown key "${key}" (allowed: ${CONTRACT_KEYS.join(", ")})`);
  const { name, description, params, result } = raw;
  if (typeof name !== "string" || !NAME.test(name))
    problems.push(
      `"name" must be a job name (letters, digits, _ . : -), got ${JSON.stringify(name)}`,
    );
  else if (expectedName !== undefined && name !== expectedName)
    problems.push(`"name" is "${name}" but the file is named "${expectedName}.json"`);
  if (description !== undefined && typeof description !== "string")
    problems.push(`"description" must be a string`);
  if (!isObject(params)) problems.push(`"params" must be a JSON Schema object`);
  else if (params.type !== "object")
    problems.push(`"params" must have "type": "object" (params are keyword params)`);
  else problems.push(...referenceProblems(params, "params"));
  if (result !== undefined && !isObject(result))
    problems.push(`"result" must be a JSON Schema object`);
  else if (result !== undefined) problems.push(...referenceProblems(result, "result"));
  return problems;
}

interface Entry {
  contract: JobContract;
  params: Checker;
  result: Checker | undefined;
}

/** Compiles one contract whose shape is valid; ajv's schema errors become problems. */
function compile(ajv: Ajv2020, contract: JobContract, problems: string[]): Entry | undefined {
  const where = contract.file ?? contract.name;
  const attempt = (part: "params" | "result", schema: Record<string, unknown>) => {
    try {
      return compileChecker(ajv, schema);
    } catch (error) {
      problems.push(`${where}: ${part}: ${(error as Error).message}`);
      return undefined;
    }
  };
  const params = attempt("params", contract.params);
  const result = contract.result && attempt("result", contract.result);
  if (!params || (contract.result && !result)) return undefined;
  return { contract, params, result };
}

/** Reads every `*.json` file of a directory (other files are left alone), sorted by name. */
function readDirectory(dir: string): { contracts: unknown[]; files: string[]; problems: string[] } {
  const path = resolve(dir);
  if (!existsSync(path) || !statSync(path).isDirectory())
    throw new CatalogError([`${path} is not a directory`]);
  const files = readdirSync(path)
    .filter((f) => f.endsWith(".json") && statSync(join(path, f)).isFile())
    .sort();
  const contracts: unknown[] = [];
  const problems: string[] = [];
  for (const file of files) {
    try {
      contracts.push(JSON.parse(readFileSync(join(path, file), "utf8")));
    } catch (error) {
      contracts.push(undefined);
      problems.push(`${join(path, file)}: cannot read JSON: ${(error as Error).message}`);
    }
  }
  return { contracts, files: files.map((f) => join(path, f)), problems };
}

/**
 * A set of job contracts, loaded once and validated: its params (and results) are checked with
 * ajv (JSON Schema 2020-12). Functions that are not in the catalog are never checked.
 */
export class JobCatalog {
  private constructor(private readonly entries: ReadonlyMap<string, Entry>) {}

  /**
   * Loads a directory of contract files, one per job, named `<name>.json`. Synchronous (a
   * catalog is read at start-up). Throws {@link CatalogError} listing every problem.
   */
  static load(dir: string): JobCatalog {
    const { contracts, files, problems } = readDirectory(dir);
    const valid: JobContract[] = [];
    contracts.forEach((raw, i) => {
      const file = files[i]!;
      if (raw === undefined) return; // unreadable: already a problem
      const stem = file.slice(file.lastIndexOf("/") + 1, -".json".length);
      const shape = shapeProblems(raw, stem);
      if (shape.length > 0) problems.push(...shape.map((p) => `${file}: ${p}`));
      else valid.push({ ...(raw as unknown as JobContract), file });
    });
    return JobCatalog.build(valid, problems);
  }

  /** A catalog from contracts in memory, validated like {@link JobCatalog.load}. */
  static fromContracts(contracts: readonly JobContract[]): JobCatalog {
    const problems: string[] = [];
    const valid: JobContract[] = [];
    for (const contract of contracts) {
      const where = contract.file ?? `contract ${JSON.stringify(contract.name)}`;
      const { file, ...rest } = contract;
      const stem = file?.replace(/^.*\//, "").replace(/\.json$/, "");
      const shape = shapeProblems(rest, stem);
      if (shape.length > 0) problems.push(...shape.map((p) => `${where}: ${p}`));
      else valid.push(contract);
    }
    return JobCatalog.build(valid, problems);
  }

  private static build(contracts: readonly JobContract[], problems: string[]): JobCatalog {
    const ajv = newAjv();
    const entries = new Map<string, Entry>();
    for (const contract of contracts) {
      if (entries.has(contract.name)) {
        problems.push(`${contract.file ?? contract.name}: job "${contract.name}" is defined twice`);
        continue;
      }
      const { $schema: _ignored, ...clean } = contract as JobContract & { $schema?: unknown };
      const entry = compile(ajv, clean, problems);
      if (entry) entries.set(contract.name, entry);
    }
    if (problems.length > 0) throw new CatalogError(problems);
    return new JobCatalog(new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
  }

  /** The contract of a job, or undefined when it is not catalogued. */
  get(name: string): JobContract | undefined {
    return this.entries.get(name)?.contract;
  }

  /** The catalogued job names, sorted. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Whether a job is catalogued. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /**
   * Checks a job's params against its contract: the first failing location (see
   * {@link ParamsProblem}), or null when they are valid or when `name` is not catalogued.
   */
  checkParams(name: string, params: unknown): ParamsProblem | null {
    const entry = this.entries.get(name);
    const failure = entry?.params(params);
    return entry && failure ? problemOf(name, "params", failure) : null;
  }

  /** Checks a handler's result; null when valid, uncatalogued, or the contract has no result. */
  checkResult(name: string, result: unknown): ParamsProblem | null {
    const failure = this.entries.get(name)?.result?.(result);
    return failure ? problemOf(name, "result", failure) : null;
  }
}

/** Loads a catalog directory ({@link JobCatalog.load}). */
export function loadJobCatalog(dir: string): JobCatalog {
  return JobCatalog.load(dir);
}
