/** At most this many correlation attributes are kept. */
export const MAX_CORRELATION_KEYS = 16;
/** Attribute names longer than this (UTF-8 bytes) are skipped. */
export const MAX_CORRELATION_KEY_BYTES = 64;
/** Values are cut to this many UTF-8 bytes, on a character boundary. */
export const MAX_CORRELATION_VALUE_BYTES = 256;

/** Cuts a string to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(value: string, maxBytes: number): string {
  if (Buffer.byteLength(value) <= maxBytes) return value;
  let bytes = 0;
  let out = "";
  for (const char of value) {
    const size = Buffer.byteLength(char);
    if (bytes + size > maxBytes) break;
    bytes += size;
    out += char;
  }
  return out;
}

function lookup(params: Record<string, unknown>, path: string): unknown {
  const dotted = path.startsWith("params.") ? path.slice("params.".length) : path;
  let node: unknown = params;
  for (const part of dotted.split(".")) {
    if (typeof node !== "object" || node === null || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function asAttribute(value: unknown): string | undefined {
  if (typeof value === "string") return value === "" ? undefined : value;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number" && Number.isFinite(value)) return JSON.stringify(value);
  return undefined;
}

/**
 * Correlation attributes for a job (protocol/PRODUCER.md §4): each mapping `attribute → path`
 * in order, the path walked into params (one leading `params.` stripped); strings (non-empty),
 * booleans and numbers are taken; a trace_context entry of the same name wins; names over 64
 * bytes are skipped, values cut to 256 bytes, at most 16 attributes. Undefined when empty.
 */
export function extractCorrelation(
  mappings: Readonly<Record<string, string>>,
  params: Record<string, unknown>,
  trace: Readonly<Record<string, string>> | undefined,
): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  let count = 0;
  for (const [attribute, path] of Object.entries(mappings)) {
    if (count >= MAX_CORRELATION_KEYS) break;
    if (Buffer.byteLength(attribute) > MAX_CORRELATION_KEY_BYTES) continue;
    const value = trace?.[attribute] ?? asAttribute(lookup(params, path));
    if (value === undefined) continue;
    out[attribute] = truncateUtf8(value, MAX_CORRELATION_VALUE_BYTES);
    count++;
  }
  return count > 0 ? out : undefined;
}
