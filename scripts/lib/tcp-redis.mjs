// A throwaway redis-server on a free loopback TCP port, in its own process group (so a Ctrl-C
// aimed at the calling script does not stop it under a worker that is still draining).
import { spawn } from "node:child_process";
import { createConnection, createServer } from "node:net";

/** A port that was free a moment ago (the kernel's pick for port 0). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** True when the server at `port` answers PING with PONG. */
function pong(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")));
  });
}

/**
 * Starts redis-server (no persistence) with its files in `dir`. Resolves to `{ dsn, pid, stop }`
 * once it answers; rejects with the reason when it does not within 5 s.
 */
export async function startTcpRedis(dir) {
  const port = await freePort();
  const server = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { cwd: dir, stdio: "ignore", detached: true },
  );
  let exited = false;
  server.once("exit", () => (exited = true));
  for (let i = 0; i < 100 && !exited; i++) {
    if (await pong(port)) {
      return { dsn: `redis://127.0.0.1:${port}/0`, pid: server.pid, stop: () => server.kill() };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  server.kill("SIGKILL");
  throw new Error(`redis-server on port ${port} ${exited ? "exited at start" : "did not answer"}`);
}
