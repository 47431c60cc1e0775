import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped in `default`.
type AddFormats = (ajv: Ajv2020) => unknown;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats;

/** schemas/v2, from the source tree or from dist/. */
function schemaDir(): string {
  for (const candidate of ["../../schemas/v2/", "../../../schemas/v2/"]) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new Error("cannot find schemas/v2");
}

/** A frame that breaks the schemas; `errors` lists every violation. */
export class FrameSchemaError extends Error {
  override readonly name = "FrameSchemaError";
  constructor(readonly errors: string[]) {
    super(`frame breaks the wire schema: ${errors.join("; ")}`);
  }
}

let cached: ((frame: unknown) => void) | undefined;

/**
 * A validator for whole frames against schemas/v2/envelope.schema.json (and everything it
 * references). Used by the orchestrator's strict mode, the tests and the conformance harness.
 * Throws {@link FrameSchemaError}.
 */
export function frameValidator(): (frame: unknown) => void {
  if (cached) return cached;
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  ajv.addKeyword("tsType");
  addFormats(ajv);
  const dir = schemaDir();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".schema.json"))) {
    ajv.addSchema(JSON.parse(readFileSync(dir + file, "utf8")) as object);
  }
  const validate = ajv.getSchema("https://rrqkit.dev/schemas/v2/envelope.schema.json")!;
  cached = (frame) => {
    if (!validate(frame)) {
      throw new FrameSchemaError(
        (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`),
      );
    }
  };
  return cached;
}
