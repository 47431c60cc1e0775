import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { ROOT } from "../lib/paths.js";

type AddFormats = (ajv: Ajv2020) => unknown;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats;

const PAYLOAD_SCHEMA: Record<string, string> = {
  request: "execution-request",
  response: "execution-outcome",
  cancel: "cancel-request",
  hello: "hello",
  ping: "ping",
  pong: "ping",
};

let validators: Map<string, ValidateFunction> | undefined;

/**
 * Checks a decoded envelope against schemas/v2 (the wire's source of truth), per frame type so
 * the message names only the rules of that type. Returns the broken rules, or undefined.
 */
export function schemaProblem(value: unknown): string | undefined {
  if (!validators) {
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    ajv.addKeyword("tsType");
    addFormats(ajv);
    const dir = join(ROOT, "schemas", "v2");
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".schema.json")))
      ajv.addSchema(JSON.parse(readFileSync(join(dir, file), "utf8")) as object);
    validators = new Map(
      Object.entries(PAYLOAD_SCHEMA).map(([type, name]) => [
        type,
        ajv.getSchema(`https://rrqkit.dev/schemas/v2/${name}.schema.json`)!,
      ]),
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a map";
  const { type, payload } = value as { type?: unknown; payload?: unknown };
  const validate = typeof type === "string" ? validators.get(type) : undefined;
  if (!validate) return `unknown type ${JSON.stringify(type)}`;
  if (validate(payload)) return undefined;
  return (validate.errors ?? [])
    .map((e) => `${String(type)}${e.instancePath.replace(/\//g, ".")} ${e.message ?? "is invalid"}`)
    .join("; ");
}
