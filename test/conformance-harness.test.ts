import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { customBinding, wrapperWarning } from "../src/conformance/bindings.js";
import { repoRoot } from "../src/conformance/cases.js";

// The harness fails loudly (issue 18, items 20-24): these run the real `rrq conformance`.

const root = repoRoot();
const cli = join(root, "bin", "rrq.js");
const fixture = join(root, "dist", "conformance", "fixtures", "faulty-runner.js");
const nodeRunner = join(root, "runners", "node", "dist", "examples", "conformance-runner.js");
const dir = mkdtempSync(join(tmpdir(), "rrq-harness-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `rrq conformance` with `args`; never throws on a non-zero exit. */
function conformance(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, "conformance", ...args],
      { timeout: 170_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const runnerOnly = ["--kind", "runner"];

describe("running zero cases is an error (item 20)", () => {
  it("exits 2 and says why when a core runner is asked for stdio", async () => {
    const r = await conformance(
      "--runner-cmd",
      `${process.execPath} ${fixture}`,
      "--profile",
      "core",
      "--transport",
      "stdio",
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("no case ran");
    expect(r.stderr).toContain("--transport stdio");
    expect(r.stderr).toContain("custom1 (core) runs tcp × json");
  }, 60_000);

  it("exits 2 when --run matches no case", async () => {
    const r = await conformance("--binding", "node", "--run", "runner/no-such-topic/*");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("the selection matches no case (--run runner/no-such-topic/*)");
  }, 60_000);
});

describe("a runner that cannot start gives one harness-level error (item 21)", () => {
  it("names the missing command and ENOENT, and runs nothing", async () => {
    const r = await conformance("--runner-cmd", "/nonexistent/dir/my-runner --flag");
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      "conformance: cannot start --runner-cmd '/nonexistent/dir/my-runner --flag' (custom1): " +
        "/nonexistent/dir/my-runner: ENOENT (no such file)",
    ]);
    expect(r.stdout).not.toContain("FAIL");
  });

  it("names a program missing from PATH", async () => {
    const r = await conformance("--runner-cmd", "rrq-no-such-program-anywhere", "--name", "go");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("rrq-no-such-program-anywhere: ENOENT (not found on PATH)");
  });

  it("names a runner file that is not executable and EACCES", async () => {
    const script = join(dir, "not-executable.sh");
    writeFileSync(script, "#!/bin/sh\nexit 0\n");
    chmodSync(script, 0o644);
    const r = await conformance("--runner-cmd", script);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${script}: EACCES (not executable)`);
  });

  it("reports a runner that exits at start once per case, with its status, on every transport", async () => {
    const r = await conformance(
      "--runner-cmd",
      "/bin/false",
      ...runnerOnly,
      "--encoding",
      "json",
      "--run",
      "runner/outcomes/handler-not-found",
    );
    expect(r.code).toBe(1);
    for (const transport of ["tcp", "unix", "stdio"]) {
      const block = r.stdout
        .split(/\n(?=PASS|FAIL|conformance:)/)
        .find((b) => b.startsWith(`FAIL  custom1 ${transport}/json `));
      expect(block, transport).toBeDefined();
      expect(block).toContain("rule: the runner starts and listens (RUNNER_PROTOCOL.md §5)");
      expect(block).toMatch(/exited before (listening|its hello): exit status 1; no output/);
      expect(block!.match(/rule:/g)).toHaveLength(1);
      expect(block).not.toContain("    at "); // no stack trace
    }
  }, 120_000);
});

describe("build-and-run wrappers are flagged (item 22)", () => {
  it("warns about go run, cargo run and the like, not about a built binary", () => {
    expect(wrapperWarning(["go", "run", "./cmd/runner"])).toContain("build first");
    expect(wrapperWarning(["/usr/local/bin/cargo", "run", "--release"])).toContain("build first");
    expect(wrapperWarning(["./target/release/my-runner"])).toBeUndefined();
    expect(wrapperWarning(["python3", "runner.py"])).toBeUndefined();
  });
});

describe("custom runners are named and bring their own lists (item 23)", () => {
  it("uses --name in results and reads --known-failures from any path", async () => {
    const list = join(dir, "go-known-failures.txt");
    writeFileSync(list, "go:tcp/json:runner/cancel/cancel-by-request  # says canceled\n");
    const r = await conformance(
      "--runner-cmd",
      `env RRQ_FAULT=cancel-type ${process.execPath} ${fixture}`,
      "--name",
      "go",
      "--known-failures",
      list,
      "--transport",
      "tcp",
      "--encoding",
      "json",
      ...runnerOnly,
      "--run",
      "runner/cancel/cancel-by-request",
      "--run",
      "runner/cancel/cancel-by-job",
    );
    expect(r.stdout).toContain("XFAIL go tcp/json runner/cancel/cancel-by-request");
    expect(r.stdout).toMatch(/FAIL {2}go tcp\/json runner\/cancel\/cancel-by-job/);
    expect(r.code).toBe(1);
  }, 120_000);

  it("points --print-known-failures at the list given, or asks for one", async () => {
    const args = [
      "--runner-cmd",
      `env RRQ_FAULT=cancel-type ${process.execPath} ${fixture}`,
      "--name",
      "go",
      "--transport",
      "tcp",
      "--encoding",
      "json",
      ...runnerOnly,
      "--run",
      "runner/cancel/cancel-by-request",
      "--print-known-failures",
    ];
    const without = await conformance(...args);
    expect(without.stdout).toContain("# add to the list you give with --known-failures (for go):");
    expect(without.stdout).not.toContain("conformance/known-failures/");
    const list = join(dir, "empty-list.txt");
    writeFileSync(list, "");
    const given = await conformance(...args, "--known-failures", list);
    expect(given.stdout).toContain("# add to ");
    expect(given.stdout).toContain("empty-list.txt:");
  }, 120_000);

  it("refuses a name that is taken or malformed", async () => {
    const taken = await conformance("--runner-cmd", "/bin/true", "--name", "node");
    expect(taken.code).toBe(2);
    expect(taken.stderr).toContain("--name 'node' is already taken");
    const bad = await conformance("--runner-cmd", "/bin/true", "--name", "Go:1");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--name 'Go:1'");
  });
});

describe("a custom runner declares its extensions (item 24)", () => {
  it("maps --supports onto transports, encodings, hello and ping", () => {
    const b = customBinding("go", "/bin/true", undefined, undefined, "rrqkit", ["unix", "msgpack"]);
    expect([b.transports, b.encodings, b.hello, b.ping, b.profile]).toEqual([
      ["tcp", "unix"],
      ["json", "msgpack"],
      false,
      false,
      "rrqkit",
    ]);
    const core = customBinding("c", "/bin/true", undefined, undefined, "core");
    expect([core.transports, core.encodings, core.hello]).toEqual([["tcp"], ["json"], false]);
  });

  it("runs a runner with unix and msgpack but no stdio or hello on exactly those variants", async () => {
    const r = await conformance(
      "--runner-cmd",
      `${process.execPath} ${nodeRunner}`,
      "--name",
      "partial",
      "--supports",
      "unix,msgpack",
      ...runnerOnly,
      "--run",
      "runner/process/*",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const variants = new Set(
      r.stdout
        .split("\n")
        .filter((l) => l.startsWith("PASS"))
        .map((l) => l.split(/\s+/)[2]),
    );
    expect([...variants].sort()).toEqual(["tcp/json", "tcp/msgpack", "unix/json", "unix/msgpack"]);
    expect(r.stdout).not.toContain("hello-first-on-every-connection");
    expect(r.stdout).not.toContain("ping-answered-by-pong");
  }, 170_000);

  it("rejects an unknown extension and ping without hello", async () => {
    const unknown = await conformance("--runner-cmd", "/bin/true", "--supports", "grpc");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown extension 'grpc'");
    const ping = await conformance("--runner-cmd", "/bin/true", "--supports", "ping");
    expect(ping.code).toBe(2);
    expect(ping.stderr).toContain("ping needs hello");
  });
});

describe("process-level cases catch what they check (item 19)", () => {
  it("fails parent-death-exits for a runner whose guard is off, and leaves no runner behind", async () => {
    const r = await conformance(
      "--runner-cmd",
      `env RRQ_RUNNER_PARENT_GUARD=0 ${process.execPath} ${nodeRunner}`,
      "--name",
      "noguard",
      ...runnerOnly,
      "--transport",
      "tcp",
      "--encoding",
      "json",
      "--run",
      "runner/process/parent-death-exits",
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("a runner exits when its parent dies (RUNNER_PROTOCOL.md §5)");
    const pid = Number(/the runner \(pid (\d+)\)/.exec(r.stdout)?.[1]);
    expect(pid).toBeGreaterThan(0);
    // The harness killed the orphan's group (it may linger as a zombie until PID 1 reaps it).
    let stat = "";
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      // gone
    }
    expect(stat).not.toMatch(/^\d+ \(.*\) [RSD]/);
  }, 120_000);
});
