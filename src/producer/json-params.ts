/**
 * The one rule every producer applies to params (protocol/PRODUCER.md §6): params are JSON
 * values only, so a job means the same thing to every runner and every binding. JSON.stringify
 * would quietly turn a Date into a string and drop `undefined`; Python's producer refuses a
 * datetime. Both are refused here, with the same code (`invalid_params`).
 */

/** What is wrong with a params value, naming the path, or undefined when it is plain JSON. */
export function jsonValueProblem(value: unknown, path: string): string | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : `params contains a non-finite number at ${path}`;
    case "object":
      return value === null ? undefined : containerProblem(value, path);
    default:
      return notJson(describe(value), path);
  }
}

function containerProblem(value: object, path: string): string | undefined {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = jsonValueProblem(value[i], `${path}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return notJson(describe(value), path);
  for (const [key, child] of Object.entries(value)) {
    const problem = jsonValueProblem(child, `${path}.${key}`);
    if (problem) return problem;
  }
  return undefined;
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value instanceof Date) return "a Date (pass an RFC 3339 string, e.g. date.toISOString())";
  if (typeof value === "object" && value !== null)
    return `a ${value.constructor?.name ?? "non-plain object"}`;
  return `a ${typeof value}`;
}

function notJson(what: string, path: string): string {
  return (
    `params must contain only JSON values (objects, arrays, strings, finite numbers, booleans, ` +
    `null): ${what} at ${path}`
  );
}
