// Process-group helpers for the scripts that start a worker in a group of its own.
import { readdirSync, readFileSync } from "node:fs";

/**
 * True while a process other than a zombie is in process group `pgid`. Reads /proc where there
 * is one: a container's PID 1 may never reap orphans, and a zombie would still count for
 * `kill(-pgid, 0)`.
 */
export function groupAlive(pgid) {
  let entries;
  try {
    entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  return entries.some((pid) => {
    try {
      // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return Number(pgrp) === pgid && state !== "Z";
    } catch {
      return false;
    }
  });
}

/**
 * Sends SIGTERM to process group `pgid`, waits up to `graceSeconds` for every process in it to
 * exit, then SIGKILLs what is left. Resolves to true when the group stopped within the grace.
 */
export async function stopGroup(pgid, graceSeconds, signal = "SIGTERM") {
  try {
    process.kill(-pgid, signal);
  } catch {
    return true; // already gone
  }
  const deadline = Date.now() + graceSeconds * 1000;
  while (Date.now() < deadline) {
    if (!groupAlive(pgid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
  return false;
}
