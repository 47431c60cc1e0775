import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TransportKind, TransportSpec } from "@rrqkit/runner/protocol";

/** True when nothing listens on 127.0.0.1:`port` right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 that the OS just assigned and released: free when this returns (best
 * effort: another process may take it before the caller binds it).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A fresh local endpoint for a runner launched by a harness: a free loopback port, a socket in
 * a new private temporary directory (returned as `dir`, for the caller to remove), or stdio.
 */
export async function localEndpoint(
  kind: TransportKind,
  tmpPrefix: string,
): Promise<{ spec: TransportSpec; dir?: string }> {
  if (kind === "tcp") return { spec: { kind: "tcp", host: "127.0.0.1", port: await freePort() } };
  if (kind === "unix") {
    const dir = mkdtempSync(join(tmpdir(), tmpPrefix));
    return { spec: { kind: "unix", path: join(dir, "runner.sock") }, dir };
  }
  return { spec: { kind: "stdio" } };
}
