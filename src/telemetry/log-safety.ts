/**
 * What may reach a log line. Job params and results can hold personal data and secrets, and
 * ioredis errors carry the command's arguments (`ReplyError.command.args`: job params, results,
 * and the whole Lua source when a script is sent with EVAL after a NOSCRIPT), which pino's
 * default error serializer copied into the line, up to ~6 KB a line. Here an error keeps its
 * type, message, code and stack, and a Redis command only its name, argument count and size;
 * every string field and the whole line are capped.
 */

/** The longest log line written, in characters (JSON, before pino-pretty formats it). */
export const MAX_LOG_LINE = 2048;
/** The longest string field (message, error message, runner output field) kept whole. */
export const MAX_LOG_FIELD = 1024;

/** `text` cut to `max` characters, with a marker saying how much was cut. */
export function capText(text: string, max = MAX_LOG_FIELD): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}…[${text.length - max} more chars cut]`;
}

/** A Redis command as a log may show it: its name, argument count and total argument bytes. */
function commandSummary(command: unknown): Record<string, unknown> | undefined {
  if (typeof command !== "object" || command === null) return undefined;
  const { name, args } = command as { name?: unknown; args?: unknown };
  const list = Array.isArray(args) ? (args as unknown[]) : [];
  const bytes = list.reduce<number>((sum, a) => sum + argBytes(a), 0);
  return { name: typeof name === "string" ? name : String(name), args: list.length, bytes };
}

function argBytes(arg: unknown): number {
  if (Buffer.isBuffer(arg)) return arg.length;
  return Buffer.byteLength(typeof arg === "string" ? arg : String(arg));
}

/**
 * pino's `err` serializer: type, message, code, stack (capped), the Redis command summary and
 * the cause, and nothing else an error object happens to carry (`command.args`, `previousErrors`
 * with their own commands, a `lastNodeError`…).
 */
export function serializeError(error: unknown, depth = 0): Record<string, unknown> {
  if (!(error instanceof Error)) return { type: typeof error, message: capText(String(error)) };
  const e = error as Error & { code?: unknown; command?: unknown; cause?: unknown };
  const out: Record<string, unknown> = {
    type: e.name || e.constructor.name,
    message: capText(e.message),
  };
  if (typeof e.code === "string" || typeof e.code === "number") out.code = e.code;
  const command = commandSummary(e.command);
  if (command) out.command = command;
  if (e.stack) out.stack = capText(e.stack);
  if (e.cause !== undefined && depth < 2) out.cause = serializeError(e.cause, depth + 1);
  return out;
}

/**
 * pino's `formatters.log`: every string in the line's fields capped to {@link MAX_LOG_FIELD}
 * (runner output re-emitted with its own JSON fields, tracebacks, reasons).
 */
export function capFields(fields: Record<string, unknown>): Record<string, unknown> {
  return capValue(fields, 0) as Record<string, unknown>;
}

function capValue(value: unknown, depth: number): unknown {
  if (typeof value === "string") return capText(value);
  if (typeof value !== "object" || value === null || depth > 4) return value;
  if (value instanceof Error) return value; // left to the err serializer
  if (Array.isArray(value)) return value.map((v) => capValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = capValue(v, depth + 1);
  return out;
}

/**
 * pino's `hooks.streamWrite`: a line longer than {@link MAX_LOG_LINE} (many fields, each under
 * the field cap) is replaced by one with its level, time, service, job fields and message cut
 * to fit, and `truncated: <original length>`, so every line stays one parseable JSON object.
 */
export function capLine(line: string): string {
  if (line.length <= MAX_LOG_LINE + 1) return line;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `${line.slice(0, MAX_LOG_LINE)}…[cut]\n`;
  }
  const kept: Record<string, unknown> = {};
  for (const key of ["level", "time", "service", "job_id", "function", "queue", "attempt"])
    if (key in parsed) kept[key] = parsed[key];
  kept.truncated = line.length;
  const msg = typeof parsed.msg === "string" ? parsed.msg : "";
  const room = MAX_LOG_LINE - JSON.stringify(kept).length - 40;
  kept.msg = capText(msg, Math.max(0, room));
  return `${JSON.stringify(kept)}\n`;
}

/** The logger options that enforce all of the above (merged into pino's options). */
export function safeLogOptions() {
  return {
    serializers: { err: (error: unknown) => serializeError(error) },
    formatters: { log: capFields },
    hooks: {
      streamWrite: capLine,
      logMethod(this: unknown, args: unknown[], method: (...a: unknown[]) => void) {
        // the message argument (a string after the fields object, or alone)
        const i = typeof args[0] === "string" ? 0 : 1;
        if (typeof args[i] === "string") args[i] = capText(args[i]);
        method.apply(this, args);
      },
    },
  };
}
