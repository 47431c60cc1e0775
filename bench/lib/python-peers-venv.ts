/**
 * The Python race's peers (Celery, RQ, arq, Dramatiq) live in the bench's own virtualenvs,
 * `bench/.venv-peers/<peer>` (git-ignored), one per peer: arq 0.28 caps redis-py below 6 and
 * pip finds no Celery 5.7 install under that cap, so one shared environment would not hold
 * every peer's default install. Each is created on first use from its frozen requirements
 * (`bench/py/peers/requirements/<peer>.txt`) and reused while a stamp file matches the
 * requirements' hash, so `--quick` on a fresh CI machine installs them and later runs do not.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { paths } from "./paths.js";
import { Proc } from "./procs.js";

export const PEERS = ["celery", "rq", "arq", "dramatiq"] as const;
export type PeerName = (typeof PEERS)[number];

/** Where the peers' Python files are (the workers' cwd and import path). */
export const peersDir = join(paths.benchPy, "peers");
const venvRoot = join(paths.root, "bench", ".venv-peers");
const STAMP = ".bench-requirements.sha256";

/** The virtualenv of a peer. */
export const peerVenv = (peer: PeerName): string => join(venvRoot, peer);
/** A program of a peer's virtualenv (`python`, `celery`, `rq`, `arq`, `dramatiq`). */
export const peerBin = (peer: PeerName, program: string): string =>
  join(peerVenv(peer), "bin", program);
const requirements = (peer: PeerName): string => join(peersDir, "requirements", `${peer}.txt`);

function stampOf(peer: PeerName): string {
  return createHash("sha256")
    .update(readFileSync(requirements(peer)))
    .digest("hex");
}

async function run(command: string, args: string[]): Promise<void> {
  const proc = new Proc(command, args);
  const { code, signal } = await proc.exited;
  if (code !== 0)
    throw new Error(`${command} ${args.join(" ")} failed (${code ?? signal}):\n${proc.tail(20)}`);
}

/** Creates or updates one peer's virtualenv; true when it had to install. */
async function ensureOne(peer: PeerName): Promise<boolean> {
  const dir = peerVenv(peer);
  const stampFile = join(dir, STAMP);
  const want = stampOf(peer);
  if (existsSync(stampFile) && readFileSync(stampFile, "utf8").trim() === want) return false;
  if (!existsSync(peerBin(peer, "python"))) await run("python3", ["-m", "venv", dir]);
  await run(peerBin(peer, "pip"), [
    "install",
    "--quiet",
    "--disable-pip-version-check",
    // No .pyc compilation at install (Python compiles what it imports): saves CPU in CI.
    "--no-compile",
    "-r",
    requirements(peer),
  ]);
  writeFileSync(stampFile, `${want}\n`);
  return true;
}

/**
 * Makes sure every peer's virtualenv is installed and current (in parallel: the installs wait
 * on the network more than on the CPU). Throws with pip's output when one cannot be installed.
 */
export async function ensurePeerVenvs(log: (message: string) => void): Promise<void> {
  const started = performance.now();
  const installed = await Promise.all(PEERS.map(ensureOne));
  const names = PEERS.filter((_, i) => installed[i]);
  if (names.length)
    log(
      `python race: installed ${names.join(", ")} into bench/.venv-peers/ in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
}
