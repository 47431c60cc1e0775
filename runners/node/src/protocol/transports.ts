import { isIP, createConnection, createServer, type Server, type Socket } from "node:net";
import type { EncodingName, PayloadCodec } from "./encoding.js";
import { FrameConnection } from "./frame-connection.js";

/** How orchestrator and runner reach each other (RUNNER_PROTOCOL.md §5). */
export type TransportSpec =
  { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string } | { kind: "stdio" };

/** Transport kinds, as written in config and on the command line. */
export type TransportKind = TransportSpec["kind"];

/** Error for an address that cannot be used; the message says why. */
export class AddressError extends Error {
  override readonly name = "AddressError";
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

/**
 * Parses `HOST:PORT` (IPv6 as `[::1]:PORT`); `localhost` becomes 127.0.0.1. Non-loopback hosts
 * are refused unless `allowRemote` (RRQ's runners refuse them the same way).
 */
export function parseTcpSocket(value: string, allowRemote = false): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(value.trim());
  if (!match) throw new AddressError(`invalid TCP socket '${value}': expected HOST:PORT`);
  let host = (match[1] ?? match[2])!;
  const port = Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new AddressError(`invalid TCP socket '${value}': port must be 1..65535`);
  }
  if (host.toLowerCase() === "localhost") host = "127.0.0.1";
  if (isIP(host) === 0) {
    throw new AddressError(
      `invalid TCP socket '${value}': host must be an IP address or localhost`,
    );
  }
  if (!allowRemote && !isLoopbackHost(host)) {
    throw new AddressError(
      `refusing non-loopback TCP socket '${value}' (set RRQ_RUNNER_ALLOW_REMOTE=1 to allow)`,
    );
  }
  return { host, port };
}

/** Formats a TCP address as the `--tcp-socket` argument. */
export function formatTcpSocket(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The arguments appended to a runner's command line for a transport and encoding. */
export function launchArgs(spec: TransportSpec, encoding: EncodingName): string[] {
  const args =
    spec.kind === "tcp"
      ? ["--tcp-socket", formatTcpSocket(spec.host, spec.port)]
      : spec.kind === "unix"
        ? ["--unix-socket", spec.path]
        : ["--stdio"];
  if (encoding === "msgpack") args.push("--encoding", "msgpack");
  return args;
}

function tuneSocket(socket: Socket): Socket {
  socket.setNoDelay(true);
  return socket;
}

/** Opens a frame connection to a listening runner (tcp or unix). Rejects on connect failure. */
export function connectFrames(
  spec: Exclude<TransportSpec, { kind: "stdio" }>,
  codec: PayloadCodec,
): Promise<FrameConnection> {
  return new Promise((resolve, reject) => {
    const socket =
      spec.kind === "tcp"
        ? createConnection({ host: spec.host, port: spec.port })
        : createConnection({ path: spec.path });
    const fail = (error: Error) => reject(error);
    socket.once("error", fail);
    socket.once("connect", () => {
      socket.off("error", fail);
      resolve(new FrameConnection(tuneSocket(socket), socket, codec));
    });
  });
}

/**
 * Listens for frame connections (tcp or unix). Resolves once listening; each accepted
 * connection is handed to `onConnection`.
 */
export function listenFrames(
  spec: Exclude<TransportSpec, { kind: "stdio" }>,
  codec: PayloadCodec,
  onConnection: (connection: FrameConnection) => void,
): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => {
      onConnection(new FrameConnection(tuneSocket(socket), socket, codec));
    });
    server.once("error", reject);
    const ready = () => {
      server.off("error", reject);
      resolve(server);
    };
    if (spec.kind === "tcp") server.listen({ host: spec.host, port: spec.port }, ready);
    else server.listen({ path: spec.path }, ready);
  });
}
