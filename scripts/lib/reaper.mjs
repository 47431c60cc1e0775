// A watchdog that cleans up after a script that dies without cleaning up itself (SIGKILL, a
// crash, a closed terminal). The scripts start their worker and redis-server in process groups
// of their own (`detached: true`), so that Ctrl-C reaches the script alone and the script can
// forward exactly one signal; the price is that those children no longer die with the script's
// process group. The reaper pays it: it is started detached too, with its stdin a pipe from the
// script, and when that pipe closes without a "done" line it terminates what the script
// registered (last registered first) and removes the registered directories.
//
// Protocol, one line each on stdin:
//   group <pgid> <grace-seconds> SIGTERM the process group, wait up to the grace for all of it
//                                to exit, then SIGKILL what is left
//   dir <path>                   remove the directory
//   done                         the script cleaned up itself; exit without touching anything
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { stopGroup } from "./process-group.mjs";

/** The reaper process: reads registrations until EOF, then cleans up unless told "done". */
async function reap() {
  const tasks = [];
  let dismissed = false;
  let buffered = "";
  process.stdin.setEncoding("utf8");
  for await (const chunk of process.stdin) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      const [kind, ...rest] = line.split(" ");
      if (kind === "done") dismissed = true;
      else if (kind === "group") tasks.push(() => stopGroup(Number(rest[0]), Number(rest[1])));
      else if (kind === "dir")
        tasks.push(() => rmSync(rest.join(" "), { recursive: true, force: true }));
    }
  }
  if (dismissed) return;
  for (const task of tasks.reverse()) await task();
}

/**
 * Starts a reaper for the calling script. `group(pid, grace)` and `dir(path)` register what to
 * clean up should the script die; `dismiss()` (after the script's own clean-up) lets it go.
 */
export function startReaper() {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
  });
  child.unref();
  child.stdin.unref(); // the pipe must not keep the script alive either
  child.stdin.on("error", () => {}); // a reaper that died early must not crash the script
  const send = (line) => {
    if (!child.stdin.destroyed) child.stdin.write(`${line}\n`);
  };
  return {
    group: (pid, graceSeconds) => send(`group ${pid} ${graceSeconds}`),
    dir: (path) => send(`dir ${path}`),
    dismiss: () => {
      send("done");
      child.stdin.end();
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Ctrl-C and SIGTERM aimed at the script's group must not stop the watchdog.
  process.on("SIGINT", () => {});
  process.on("SIGHUP", () => {});
  await reap();
}
