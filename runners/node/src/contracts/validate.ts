import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";

/** Why params (or a result) break their job's contract: the first failing location. */
export interface ParamsProblem {
  functionName: string;
  /** JSON Pointer into the params (or result) of the first failing location; "" is the root. */
  field: string;
  /** `<function>: params<field> <what is wrong>`, e.g. `send_email: params/to must be string`. */
  message: string;
}

/** A compiled schema: returns the first problem, or null when the value is valid. */
export type Checker = (value: unknown) => { field: string; message: string } | null;

/**
 * One ajv instance per catalog: JSON Schema 2020-12, strict mode (unknown keywords, keywords
 * on the wrong type and `required` names without a property are schema errors), type arrays
 * allowed (`["string", "null"]`), and `format` an annotation only, as in the Python and Rust
 * validators, so that the three languages accept and refuse the same params.
 */
export function newAjv(): Ajv2020 {
  return new Ajv2020({
    allErrors: true,
    strict: true,
    allowUnionTypes: true,
    validateFormats: false,
  });
}

/** Byte order of the UTF-8 encodings (what Python and Rust compare), not UTF-16 code units. */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * The error that decides `field`: the one whose instance pointer sorts first in byte order;
 * on a tie the first one ajv reported (the sort is stable). The Python and Rust catalogs use the
 * same rule, so the three agree on `field` even though their messages are worded differently.
 */
export function firstError(errors: readonly ErrorObject[]): ErrorObject | undefined {
  return [...errors].sort((a, b) => compareBytes(a.instancePath, b.instancePath))[0];
}

/** Compiles a schema into a {@link Checker}; ajv's compile errors propagate. */
export function compileChecker(ajv: Ajv2020, schema: Record<string, unknown>): Checker {
  const validate: ValidateFunction = ajv.compile(schema);
  return (value) => {
    if (validate(value)) return null;
    const error = firstError(validate.errors ?? []);
    if (!error) return { field: "", message: "is invalid" };
    return { field: error.instancePath, message: error.message ?? "is invalid" };
  };
}

/** The {@link ParamsProblem} of a failed check; `part` is "params" or "result". */
export function problemOf(
  functionName: string,
  part: "params" | "result",
  failure: { field: string; message: string },
): ParamsProblem {
  return {
    functionName,
    field: failure.field,
    message: `${functionName}: ${part}${failure.field} ${failure.message}`,
  };
}
