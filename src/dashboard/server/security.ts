import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";

/**
 * The dashboard's request security: authentication (bearer token, `?token=` once then a cookie,
 * or HTTP basic auth), the double-submit CSRF token of POST actions, same-origin checks and the
 * response headers every answer carries. Secrets are compared in constant time and never
 * written to a response or a log.
 */

/** Credentials the dashboard accepts (either one when both are set). */
export interface DashboardAuth {
  readonly token?: string;
  readonly basic?: { readonly user: string; readonly password: string };
}

/** The cookie carrying a session derived from the token (never the token itself). */
export const SESSION_COOKIE = "rrq_session";
/** The double-submit CSRF cookie; the UI echoes it in the `X-CSRF-Token` header. */
export const CSRF_COOKIE = "rrq_csrf";
/** The header POST actions must carry. */
export const CSRF_HEADER = "x-csrf-token";

/** Headers on every dashboard response. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "same-origin",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
};

/** Equality of two secrets in time independent of where they differ (digests of equal length). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}

/** Whether an auth config holds any credential. */
export function hasAuth(auth: DashboardAuth | undefined): auth is DashboardAuth {
  return Boolean(auth && (auth.token || auth.basic));
}

/** The session cookie value for a token: an HMAC of it, so the cookie never holds the token. */
export function sessionFor(token: string): string {
  return createHmac("sha256", token).update("rrqkit-dashboard-session").digest("base64url");
}

/** The request's cookies (first value of each name). */
export function parseCookies(req: IncomingMessage): Record<string, string> {
  const cookies: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (name in cookies) continue;
    try {
      cookies[name] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      // a malformed value is ignored
    }
  }
  return cookies;
}

/** Outcome of {@link authenticate}. */
export type AuthOutcome = { ok: true; setSession?: string } | { ok: false; basic: boolean };

/**
 * Checks the request's credentials: `Authorization: Bearer <token>`, `Authorization: Basic`,
 * the session cookie, or `?token=` in the URL (`queryToken`; the caller then sets the cookie
 * and redirects to the URL without it). No auth configured: everything passes.
 */
export function authenticate(
  req: IncomingMessage,
  auth: DashboardAuth | undefined,
  queryToken: string | null,
): AuthOutcome {
  if (!hasAuth(auth)) return { ok: true };
  const header = req.headers.authorization ?? "";
  const space = header.indexOf(" ");
  const scheme = space > 0 ? header.slice(0, space).toLowerCase() : "";
  const value = space > 0 ? header.slice(space + 1).trim() : "";
  if (auth.token) {
    if (scheme === "bearer" && safeEqual(value, auth.token)) return { ok: true };
    const session = parseCookies(req)[SESSION_COOKIE];
    if (session !== undefined && safeEqual(session, sessionFor(auth.token))) return { ok: true };
    if (queryToken !== null && safeEqual(queryToken, auth.token))
      return { ok: true, setSession: sessionFor(auth.token) };
  }
  if (auth.basic && scheme === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon >= 0) {
      // both compared, always, so the time does not tell which one was wrong
      const userOk = safeEqual(decoded.slice(0, colon), auth.basic.user);
      const passOk = safeEqual(decoded.slice(colon + 1), auth.basic.password);
      if (userOk && passOk) return { ok: true };
    }
  }
  return { ok: false, basic: Boolean(auth.basic) };
}

/** A fresh CSRF token (32 random bytes, base64url). */
export const newCsrfToken = (): string => randomBytes(32).toString("base64url");

/** Whether the request came over TLS (directly or as a proxy says). */
export function isSecure(req: IncomingMessage): boolean {
  const socket = req.socket as { encrypted?: boolean };
  return Boolean(socket.encrypted) || req.headers["x-forwarded-proto"] === "https";
}

/** A `Set-Cookie` value: SameSite=Strict, scoped to the dashboard's path. */
export function cookie(
  name: string,
  value: string,
  options: { path: string; httpOnly: boolean; secure: boolean },
): string {
  return [
    `${name}=${encodeURIComponent(value)}`,
    `Path=${options.path}`,
    "SameSite=Strict",
    ...(options.httpOnly ? ["HttpOnly"] : []),
    ...(options.secure ? ["Secure"] : []),
  ].join("; ");
}

/** Adds a `Set-Cookie` header, keeping those already set. */
export function appendCookie(res: ServerResponse, value: string): void {
  const existing = res.getHeader("Set-Cookie");
  const list =
    existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  res.setHeader("Set-Cookie", [...list, value]);
}

/**
 * Why a POST action is refused, or undefined when it may go on: the `X-CSRF-Token` header must
 * equal the `rrq_csrf` cookie, and `Origin` (else `Referer`), when sent, must name this host;
 * a browser's `Sec-Fetch-Site: cross-site` is refused outright.
 */
export function csrfProblem(req: IncomingMessage): string | undefined {
  const cookieToken = parseCookies(req)[CSRF_COOKIE];
  const header = req.headers[CSRF_HEADER];
  const sent = Array.isArray(header) ? header[0] : header;
  if (!cookieToken || !sent || !safeEqual(cookieToken, sent))
    return "missing or wrong CSRF token (X-CSRF-Token must equal the rrq_csrf cookie)";
  if (req.headers["sec-fetch-site"] === "cross-site") return "cross-site request";
  const host = req.headers["x-forwarded-host"] ?? req.headers.host;
  const origin = req.headers.origin ?? req.headers.referer;
  if (origin !== undefined) {
    let originHost: string | undefined;
    try {
      originHost = new URL(origin).host;
    } catch {
      originHost = undefined;
    }
    if (!originHost || originHost !== host) return "cross-origin request";
  }
  return undefined;
}

/** Whether a bind address is loopback only (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (h.startsWith("::ffff:")) return h.slice(7).startsWith("127.");
  return false;
}
