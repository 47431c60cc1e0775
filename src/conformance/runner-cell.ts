import type { EncodingName, TransportKind } from "@rrqkit/runner/protocol";
import type { Case } from "./cases.js";
import type { OtlpReceiver } from "./otlp-receiver.js";
import { expect, finish } from "./runner-checks.js";
import { CaseFailed, RunnerScript, type Failure } from "./runner-script.js";
import { RunnerSession, type CommandSpec } from "./runner-session.js";

type Step = Record<string, unknown>;

/** Upper bound for one case, so a wedged runner cannot stall the whole run. */
const CASE_LIMIT_MS = 90_000;

/** Which requests and connections a case expects to end without an outcome or closed. */
function exemptions(c: Case): Set<string> {
  const exempt = new Set<string>();
  const visit = (e: Step) => {
    if ("no_response" in e) exempt.add(`none:${String(e.no_response)}`);
    if ("closed" in e) exempt.add(`closed:${String(e.closed)}`);
    if ("close" in e) exempt.add(`closed:${String(e.close)}`);
    if ("end_input" in e) exempt.add(`closed:${String(e.end_input)}`);
    if ("exit" in e || "runner_gone" in e) exempt.add("closed:main");
  };
  for (const step of c.when ?? []) {
    visit(step);
    if (typeof step.await === "object" && step.await) visit(step.await as Step);
  }
  for (const e of (c.then ?? []) as Step[]) visit(e);
  return exempt;
}

/**
 * One cell of the runner matrix: a runner command on one transport and encoding. Frame-level
 * cases share one runner process (a new connection per case over sockets); a case that needs a
 * fresh process (its own environment, no hello) gets one, and a process a case ended (crash,
 * stdin EOF, a decoding error on stdio) is replaced before the next case.
 */
export class RunnerCell {
  private shared: RunnerSession | undefined;

  constructor(
    readonly command: CommandSpec,
    readonly transport: TransportKind,
    readonly encoding: EncodingName,
    readonly hello: boolean,
    private readonly receiver: OtlpReceiver | undefined,
  ) {}

  private launch(
    env: Record<string, string> = {},
    hello = this.hello,
    extra: { listenHost?: string; viaParent?: boolean } = {},
  ): Promise<RunnerSession> {
    return RunnerSession.launch(this.command, {
      transport: this.transport,
      encoding: this.encoding,
      hello,
      env: { ...this.receiver?.env, ...env },
      ...extra,
    });
  }

  private async sharedSession(): Promise<RunnerSession> {
    const s = this.shared;
    if (s && s.alive && !(s.stdio?.closed ?? false)) return s;
    if (s) await s.stop();
    this.shared = await this.launch();
    return this.shared;
  }

  /** Runs one case; returns the broken rules (empty: passed). */
  async run(c: Case): Promise<Failure[]> {
    const given = c.given ?? {};
    const dedicated =
      given.fresh_process === true ||
      given.hello === false ||
      typeof given.env === "object" ||
      typeof given.listen_host === "string" ||
      given.via_parent === true;
    const session = dedicated
      ? await this.launch(
          (given.env ?? {}) as Record<string, string>,
          given.hello === false ? false : this.hello,
          {
            listenHost: given.listen_host as string | undefined,
            viaParent: given.via_parent === true,
          },
        )
      : await this.sharedSession();
    try {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<Failure[]>((resolve) => {
        timer = setTimeout(
          () =>
            resolve([{ rule: "the case finishes", message: `gave up after ${CASE_LIMIT_MS} ms` }]),
          CASE_LIMIT_MS,
        );
      });
      const result = await Promise.race([this.script(c, session), limit]);
      clearTimeout(timer);
      if (!dedicated && result.length) {
        // A failed case may leave handlers running; the next case gets a clean process.
        await this.shared?.stop();
        this.shared = undefined;
      }
      return result;
    } finally {
      if (dedicated) await session.stop();
    }
  }

  private async script(c: Case, session: RunnerSession): Promise<Failure[]> {
    const script = new RunnerScript(c, session);
    const failures: Failure[] = [];
    let stopped = false;
    try {
      // A case about a runner that must refuse to start has nothing to connect to.
      if (c.given?.connect !== false) await script.connect("main");
      for (const step of c.when ?? []) {
        if ("await" in step) await expect(script, step.await as Step, this.receiver);
        else await script.step(step);
      }
      for (const e of (c.then ?? []) as Step[]) await expect(script, e, this.receiver);
    } catch (error) {
      if (!(error instanceof CaseFailed)) throw error;
      failures.push(error.failure);
      stopped = true;
    }
    if (stopped) {
      // Report what went wrong on the wire too, but skip the end-of-case probes.
      for (const [alias, connection] of script.connections)
        failures.push(
          ...connection.violations.map((v) => ({
            rule: v.rule,
            message: `connection ${alias}: ${v.message}`,
          })),
        );
    } else {
      failures.push(...(await finish(script, exemptions(c))));
    }
    if (session.spec.kind !== "stdio")
      for (const connection of script.connections.values()) connection.close();
    return dedupe(failures);
  }

  /** Stops the shared runner process. */
  async close(): Promise<void> {
    await this.shared?.stop();
    this.shared = undefined;
  }
}

function dedupe(failures: Failure[]): Failure[] {
  const seen = new Set<string>();
  return failures.filter((f) => {
    const key = `${f.rule}\n${f.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
