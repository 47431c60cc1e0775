/**
 * Watch mode: which paths count, RRQ's overrides, and the restart loop with a real worker,
 * pre-restart commands and debouncing.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
import { PathMatcher, WatchSupervisor, watchModeConfig } from "../src/orchestrator/watch.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { testConfig, waitFor } from "./support/worker-harness.js";
import { EventBus } from "../src/telemetry/events.js";

let redis: TestRedis;
let dir: string;

beforeAll(async () => {
  redis = await startRedis();
  dir = realpathSync(mkdtempSync(join(tmpdir(), "rrq-watch-")));
});
afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const DEFAULT_IGNORES = testConfig("redis://x").watch.ignorePatterns;

describe("which changes count", () => {
  it("include globs match the relative path or the base name; ignores and .gitignore win", () => {
    const root = mkdtempSync(join(tmpdir(), "rrq-match-"));
    writeFileSync(join(root, ".gitignore"), "generated/\nsecret.py\n");
    const matcher = new PathMatcher({
      root,
      includePatterns: ["*.py", "*.toml"],
      ignorePatterns: DEFAULT_IGNORES,
      noGitignore: false,
    });
    const at = (p: string) => join(matcher.root, p);
    expect(matcher.matches(at("app.py"))).toBe(true);
    expect(matcher.matches(at("pkg/deep/mod.py"))).toBe(true);
    expect(matcher.matches(at("rrq.toml"))).toBe(true);
    expect(matcher.matches(at("README.md"))).toBe(false);
    expect(matcher.matches(at("secret.py"))).toBe(false);
    expect(matcher.matches(at("generated/x.py"))).toBe(false);
    expect(matcher.ignored(at("generated"), true)).toBe(true);
    expect(matcher.matches(at(".venv/lib/x.py"))).toBe(false);
    expect(matcher.matches(at("pkg/__pycache__/x.py"))).toBe(false);
    expect(matcher.ignored(at("node_modules"), true)).toBe(true);
    expect(matcher.matches(join(tmpdir(), "elsewhere.py"))).toBe(false);
    const all = new PathMatcher({
      root,
      includePatterns: [],
      ignorePatterns: [],
      noGitignore: true,
    });
    expect(all.matches(at("secret.py"))).toBe(true);
    expect(all.matches(at("README.md"))).toBe(true);
    rmSync(root, { recursive: true, force: true });
  });

  it("forces pool_size 1, max_in_flight 1 and no shutdown grace (RRQ)", () => {
    const config = watchModeConfig(
      testConfig(
        "redis://x",
        { worker_shutdown_grace_period_seconds: 9 },
        {
          other: { cmd: ["x"], pool_size: 4, max_in_flight: 8 },
        },
      ),
    );
    expect(config.workerShutdownGracePeriodSeconds).toBe(0);
    for (const runner of Object.values(config.runners)) {
      expect(runner.poolSize).toBe(1);
      expect(runner.maxInFlight).toBe(1);
    }
  });
});

describe("the restart loop", () => {
  it("restarts on a matching change, not on others; a failing pre-restart command or configuration keeps it stopped until the next change", async () => {
    writeFileSync(join(dir, ".gitignore"), "local.py\n");
    mkdirSync(join(dir, "node_modules"), { recursive: true });
    const gate = join(dir, "FAIL");
    const lines: string[] = [];
    const events = new EventBus();
    let spawns = 0;
    events.on("runner:spawn", () => spawns++);
    const base = testConfig(redis.url);
    let broken = false;
    const supervisor = new WatchSupervisor({
      load: () => {
        if (broken) throw new Error("rrq.toml: bad edit");
        return base;
      },
      watch: {
        ...base.watch,
        path: dir,
        includePatterns: ["*.py"],
        preRestartCmds: [
          [
            process.execPath,
            "-e",
            `process.exit(require("fs").existsSync(${JSON.stringify(gate)}) ? 3 : 0)`,
          ],
        ],
      },
      events,
      say: (line) => lines.push(line),
    });
    const running = supervisor.run();
    await waitFor(() => supervisor.starts === 1 && spawns === 1, 15_000, "first start");
    expect(lines[0]).toBe(`Watching ${dir} for changes...`);

    // jobs run while watched
    const producer = new Producer({ redisDsn: redis.url });
    const id = await producer.enqueue("echo", { x: 1 });
    expect((await producer.waitForCompletion(id, { timeoutSeconds: 10 }))?.status).toBe(
      "COMPLETED",
    );
    await producer.close();

    // a burst of changes is one restart
    for (const n of [1, 2, 3]) writeFileSync(join(dir, "app.py"), `x = ${n}\n`);
    await waitFor(() => supervisor.starts === 2 && spawns === 2, 15_000, "restart");
    expect(lines.filter((l) => l.startsWith("Change detected"))).toHaveLength(1);
    expect(lines).toContain("Restarting worker...");

    // ignored paths do not restart
    writeFileSync(join(dir, "notes.txt"), "x");
    writeFileSync(join(dir, "local.py"), "x");
    writeFileSync(join(dir, "node_modules", "dep.py"), "x");
    await new Promise((r) => setTimeout(r, 800));
    expect(supervisor.starts).toBe(2);

    // a failing pre-restart command: the worker stays stopped until the next change
    writeFileSync(gate, "");
    writeFileSync(join(dir, "app.py"), "x = 4\n");
    await waitFor(
      () => lines.some((l) => l.startsWith("Pre-restart command failed (exit code 3)")),
      15_000,
      "failure",
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(supervisor.starts).toBe(2);
    rmSync(gate);
    writeFileSync(join(dir, "app.py"), "x = 5\n");
    await waitFor(() => supervisor.starts === 3 && spawns === 3, 15_000, "restart after the fix");

    // a configuration that no longer loads: reported, watch mode goes on until the next change
    broken = true;
    writeFileSync(join(dir, "app.py"), "x = 6\n");
    await waitFor(
      () => lines.includes("Cannot start the worker: rrq.toml: bad edit"),
      15_000,
      "config error",
    );
    expect(supervisor.starts).toBe(3);
    broken = false;
    writeFileSync(join(dir, "app.py"), "x = 7\n");
    await waitFor(() => supervisor.starts === 4 && spawns === 4, 15_000, "restart after the edit");

    supervisor.stop();
    await running;
  }, 60_000);
});
