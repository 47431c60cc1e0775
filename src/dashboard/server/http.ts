import type { IncomingMessage, ServerResponse } from "node:http";
import { RrqError } from "../../errors.js";
import { SECURITY_HEADERS } from "./security.js";

/** An error answered as `{error: {code, message}}` with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** Largest JSON body a POST action accepts. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Writes the security headers (every response carries them). */
export function securityHeaders(res: ServerResponse): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
}

/** Sends a JSON answer (never cached). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.end(text);
}

/** Sends `{error: {code, message}}`. */
export function sendError(res: ServerResponse, status: number, code: string, message: string) {
  sendJson(res, status, { error: { code, message } });
}

/**
 * The HTTP answer for an error thrown by a route: HttpError as is, the data API's usage errors
 * as 400, anything else as a 500 whose message says nothing about the internals (Redis errors
 * can name keys, arguments or the server's address).
 */
export function errorAnswer(error: unknown): { status: number; code: string; message: string } {
  if (error instanceof HttpError)
    return { status: error.status, code: error.code, message: error.message };
  if (error instanceof RrqError) {
    if (error.code === "redis_unavailable")
      return { status: 503, code: error.code, message: "Redis is unavailable" };
    const usage = ["invalid_argument", "invalid_params", "conflicting_options"].includes(
      error.code,
    );
    if (usage) return { status: 400, code: error.code, message: error.message };
  }
  return { status: 500, code: "internal", message: "internal error (see the server's log)" };
}

/** Reads a JSON object body (empty body: `{}`); 400/413/415 on a bad one. */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers["content-type"] ?? "";
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, "too_large", "request body too large");
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") return {};
  if (!/^application\/json\b/i.test(type))
    throw new HttpError(
      415,
      "unsupported_media_type",
      "send JSON (Content-Type: application/json)",
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HttpError(400, "invalid_json", "the body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new HttpError(400, "invalid_json", "the body must be a JSON object");
  return parsed as Record<string, unknown>;
}
