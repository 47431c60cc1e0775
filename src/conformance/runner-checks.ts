import { existsSync, readFileSync } from "node:fs";
import type { ExecutionOutcome, Frame } from "@rrqkit/runner/protocol";
import { matchValue, show, text } from "./matching.js";
import type { OtlpReceiver } from "./otlp-receiver.js";
import type { HarnessConnection } from "./runner-session.js";
import { CaseFailed, type RunnerScript, type SentRequest } from "./runner-script.js";
import { checkRunnerSpan, SPAN_SPEC, type SpanFacts } from "./span-rules.js";

type Expectation = Record<string, unknown>;

const RULES = {
  correlation:
    "every outcome carries its request's request_id and job_id (RUNNER_PROTOCOL.md §6.1)",
  once: "exactly one outcome per request (RUNNER_PROTOCOL.md §6.2)",
  open: "the connection stays open and usable (RUNNER_PROTOCOL.md §6.5, §3)",
  closeNoReply: "a decoding error closes the connection without a reply (RUNNER_PROTOCOL.md §2.5)",
} as const;

/** Default wait for one awaited frame or span. Generous: runners share two cores in CI. */
export const WAIT_MS = 15_000;

function responsesOf(connection: HarnessConnection) {
  return connection.received.filter((r) => r.frame.type === "response");
}

function payloadOf(frame: Frame): Record<string, unknown> {
  return frame.payload as unknown as Record<string, unknown>;
}

/** The aliases an expectation names: `a`, or every `a#i` for `a#*`. */
function aliases(script: RunnerScript, name: string): string[] {
  if (!name.endsWith("#*")) return [name];
  const prefix = name.slice(0, -1);
  return [...script.requests.keys()].filter((a) => a.startsWith(prefix));
}

function sent(script: RunnerScript, alias: string): SentRequest {
  const request = script.requests.get(alias);
  if (!request) throw new Error(`case expects request '${alias}', which it never sent`);
  return request;
}

/** Waits for the outcome of one request; fails the case when none arrives. */
export async function awaitResponse(
  script: RunnerScript,
  alias: string,
  timeoutMs = WAIT_MS,
): Promise<Record<string, unknown>> {
  const request = sent(script, alias);
  const connection = script.connection(request.connection);
  const found = await connection.until(() => {
    const hit = responsesOf(connection).find(
      (r) => payloadOf(r.frame).request_id === request.payload.request_id,
    );
    if (hit) return payloadOf(hit.frame);
    // An outcome for this job that lost its request_id would never match: say so at once.
    const orphan = responsesOf(connection).find((r) => {
      const p = payloadOf(r.frame);
      return p.request_id == null && p.job_id === request.payload.job_id;
    });
    if (orphan) return { orphan: payloadOf(orphan.frame) };
    return connection.closed ? null : undefined;
  }, timeoutMs);
  if (found && "orphan" in found) {
    throw new CaseFailed({
      rule: RULES.correlation,
      message: `the outcome for request ${alias} has no request_id: ${show(found.orphan)}`,
    });
  }
  if (!found) {
    const why = found === null ? "the connection closed first" : `none within ${timeoutMs} ms`;
    const alive = found === null ? await script.session.exited(1000) : script.session.alive;
    const stderr = alive ? "" : `; the runner exited: ${script.session.whyGone}`;
    throw new CaseFailed({
      rule: RULES.once,
      message: `no outcome for request ${alias} (${request.payload.function_name as string}): ${why}${stderr}`,
    });
  }
  return found;
}

/** Checks one `then` (or `await`) expectation. Throws {@link CaseFailed}. */
export async function expect(
  script: RunnerScript,
  e: Expectation,
  receiver: OtlpReceiver | undefined,
): Promise<void> {
  const rule = typeof e.rule === "string" ? e.rule : undefined;
  const fail = (fallback: string, message: string): never => {
    throw new CaseFailed({ rule: rule ?? fallback, message });
  };
  if ("response" in e) {
    for (const alias of aliases(script, String(e.response))) {
      const payload = await awaitResponse(
        script,
        alias,
        (e.timeout_ms as number | undefined) ?? WAIT_MS,
      );
      const mismatches = matchValue(payload, e.match ?? {}, script.resolve);
      if (mismatches.length)
        fail(
          "outcome as the spec says",
          `outcome of ${alias}: ${mismatches.map((m) => `${m.path}: ${m.message}`).join("; ")}`,
        );
    }
    return;
  }
  if ("order" in e) {
    const seqs = (e.order as string[]).map((alias) => {
      const request = sent(script, alias);
      const hit = responsesOf(script.connection(request.connection)).find(
        (r) => payloadOf(r.frame).request_id === request.payload.request_id,
      );
      return hit?.seq ?? Infinity;
    });
    if (seqs.some((s, i) => i > 0 && s < seqs[i - 1]!))
      fail(
        "outcomes are written as handlers finish (RUNNER_PROTOCOL.md §6.3)",
        `outcomes did not arrive in the order ${(e.order as string[]).join(", ")}`,
      );
    return;
  }
  if ("closed" in e) return expectClosed(script, String(e.closed), fail);
  if ("exit" in e) {
    const exit = await Promise.race([
      script.session.exit,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), WAIT_MS)),
    ]);
    if (!exit) fail("the runner exits", `the runner did not exit within ${WAIT_MS} ms`);
    const { code, nonzero } = e.exit as Record<string, unknown>;
    if (typeof code === "number" && exit!.code !== code)
      fail("the runner exits", `exit status ${exit!.code ?? exit!.signal}, expected ${code}`);
    if (nonzero === true && exit!.code === 0)
      fail("the runner exits", "exit status 0, expected a failure status");
    return;
  }
  if ("runner_gone" in e) return expectRunnerGone(script, fail);
  if ("socket_removed" in e) {
    await script.session.exit;
    const spec = script.session.spec;
    if (spec.kind === "unix" && existsSync(spec.path))
      fail(
        "the runner removes its Unix socket on exit (RUNNER_PROTOCOL.md §5)",
        `${spec.path} still exists after the runner exited`,
      );
    return;
  }
  if ("hello" in e) {
    const hello = script.connection(text(e.on, "main")).hello;
    if (!hello)
      fail("hello is the first frame of a connection (RUNNER_PROTOCOL.md §8.2)", "no hello frame");
    const mismatches = matchValue(hello!.payload, e.hello, script.resolve);
    if (mismatches.length)
      fail(
        "hello payload (RUNNER_PROTOCOL.md §8.3)",
        mismatches.map((m) => `${m.path}: ${m.message}`).join("; "),
      );
    return;
  }
  if ("pong" in e) {
    const nonce = script.pings.get(String(e.pong));
    const connection = script.connection(text(e.on, "main"));
    const pong = await connection.until(
      () =>
        connection.received.find((r) => r.frame.type === "pong" && r.frame.payload.nonce === nonce),
      WAIT_MS,
    );
    if (!pong)
      fail(
        "ping is answered by pong with the same nonce (RUNNER_PROTOCOL.md §8.5)",
        "no matching pong",
      );
    return;
  }
  if ("reply_to_response_frame" in e) {
    const connection = script.connection(text(e.on, "main"));
    const reply = await connection.until(
      () => responsesOf(connection).find((r) => payloadOf(r.frame).request_id == null),
      WAIT_MS,
    );
    if (!reply)
      fail(
        rule ?? "an unexpected response frame gets an error outcome (RUNNER_PROTOCOL.md §3)",
        connection.closed ? "the runner closed the connection instead of replying" : "no reply",
      );
    const mismatches = matchValue(
      payloadOf(reply!.frame),
      e.reply_to_response_frame,
      script.resolve,
    );
    if (mismatches.length)
      fail(
        "an unexpected response frame gets an error outcome (RUNNER_PROTOCOL.md §3)",
        mismatches.map((m) => `${m.path}: ${m.message}`).join("; "),
      );
    return;
  }
  if ("progress" in e || "output" in e || "no_live" in e) return expectLive(script, e, fail);
  if ("span" in e) return expectSpan(script, e, receiver, fail);
  if ("no_span" in e) return expectNoSpan(script, e, receiver, fail);
  if ("no_response" in e) return; // checked by finish()
  throw new Error(`unknown expectation ${JSON.stringify(e)}`);
}

/** The payloads of a request's live frames of one type, in arrival order. */
function liveFrames(
  script: RunnerScript,
  request: SentRequest,
  type: "progress" | "output",
): Array<Record<string, unknown>> {
  return script
    .connection(request.connection)
    .received.filter(
      (r) => r.frame.type === type && payloadOf(r.frame).request_id === request.payload.request_id,
    )
    .map((r) => payloadOf(r.frame));
}

/**
 * `progress` / `output` / `no_live` expectations (RUNNER_PROTOCOL.md §13). Each waits for the
 * request's outcome first: every live frame precedes it (the session flags any that follows).
 * `progress`: `match` is matched against the list of the request's progress payloads.
 * `output`: `text` (the data of its frames joined in seq order, the truncation frame aside),
 * `bytes` (that text's UTF-8 size), `truncation` (the truncation frame, or null for none) and
 * `match` (the list of output payloads).
 */
async function expectLive(
  script: RunnerScript,
  e: Expectation,
  fail: (rule: string, message: string) => never,
): Promise<void> {
  const mismatch = (rule: string, actual: unknown, expected: unknown, what: string) => {
    const m = matchValue(actual, expected, script.resolve);
    if (m.length) fail(rule, `${what}: ${m.map((x) => `${x.path}: ${x.message}`).join("; ")}`);
  };
  if ("no_live" in e) {
    const alias = String(e.no_live);
    const request = sent(script, alias);
    await awaitResponse(script, alias);
    const frames = [
      ...liveFrames(script, request, "progress"),
      ...liveFrames(script, request, "output"),
    ];
    if (frames.length)
      fail(
        "no live frames for a request without live (RUNNER_PROTOCOL.md §13.1)",
        `request ${alias} got ${frames.length} live frame(s), the first ${show(frames[0])}`,
      );
    return;
  }
  if ("progress" in e) {
    const alias = String(e.progress);
    const request = sent(script, alias);
    await awaitResponse(script, alias);
    const frames = liveFrames(script, request, "progress");
    mismatch(
      "progress frames, coalesced per progress_interval_ms (RUNNER_PROTOCOL.md §13.2)",
      frames,
      e.match ?? {},
      `progress frames of ${alias} ${show(frames.map((f) => f.progress))}`,
    );
    return;
  }
  const alias = String(e.output);
  const request = sent(script, alias);
  await awaitResponse(script, alias);
  const frames = liveFrames(script, request, "output").sort(
    (a, b) => Number(a.seq) - Number(b.seq),
  );
  const data = frames.filter((f) => f.truncated !== true).map((f) => String(f.data));
  const joined = data.join("");
  const rule = "output frames carry the handler's output in seq order (RUNNER_PROTOCOL.md §13.3)";
  if ("text" in e && joined !== e.text)
    fail(rule, `output of ${alias}: expected ${show(e.text)}, got ${show(joined)}`);
  if ("bytes" in e && Buffer.byteLength(joined) !== e.bytes)
    fail(
      rule,
      `output of ${alias}: expected ${String(e.bytes)} bytes, got ${Buffer.byteLength(joined)}`,
    );
  for (const f of frames)
    if (Buffer.byteLength(String(f.data)) > 65536)
      fail(rule, `output of ${alias}: a frame holds more than 65536 bytes of data`);
  if ("truncation" in e) {
    const truncation = frames.filter((f) => f.truncated === true);
    const ruleT = "output beyond output_max_bytes: one truncation frame (RUNNER_PROTOCOL.md §13.3)";
    if (e.truncation === null) {
      if (truncation.length) fail(ruleT, `output of ${alias} has a truncation frame`);
    } else {
      if (truncation.length !== 1)
        fail(ruleT, `output of ${alias} has ${truncation.length} truncation frames, expected 1`);
      mismatch(ruleT, truncation[0], e.truncation, `truncation frame of ${alias}`);
    }
  }
  if ("match" in e) mismatch(rule, frames, e.match, `output frames of ${alias}`);
}

/** True while `pid` runs (a zombie, exited but not reaped by its new parent, counts as gone). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

/** The runner under a killed stand-in parent exits (bounded generously: never a timing check). */
async function expectRunnerGone(
  script: RunnerScript,
  fail: (rule: string, message: string) => never,
): Promise<void> {
  const rule = "a runner exits when its parent dies (RUNNER_PROTOCOL.md §5)";
  const pid = await script.session.runnerPid();
  if (pid === undefined) fail(rule, "the stand-in parent never reported the runner's pid");
  const deadline = Date.now() + WAIT_MS;
  while (running(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (running(pid))
    fail(rule, `the runner (pid ${pid}) still runs ${WAIT_MS} ms after its parent died`);
}

async function expectClosed(
  script: RunnerScript,
  alias: string,
  fail: (rule: string, message: string) => never,
): Promise<void> {
  const connection = script.connection(alias);
  await connection.until(() => (connection.closed ? true : undefined), WAIT_MS);
  if (!connection.closed) fail(RULES.closeNoReply, "the runner kept the connection open");
  const mark = script.marks.get(alias);
  if (mark !== undefined && connection.received.length > mark)
    fail(
      RULES.closeNoReply,
      `the runner replied before closing: ${show(connection.received[mark]!.frame)}`,
    );
  if (script.session.spec.kind !== "stdio") {
    // The process must survive: a fresh connection (probed at the end of the case) proves it.
    try {
      await script.connect(`after_${alias}`);
    } catch (error) {
      fail(RULES.closeNoReply, `the runner process did not survive: ${(error as Error).message}`);
    }
  }
}

function spanFacts(request: SentRequest, outcome: Record<string, unknown> | undefined): SpanFacts {
  const p = request.payload;
  const c = p.context as Record<string, unknown>;
  return {
    jobId: String(p.job_id),
    functionName: String(p.function_name),
    queue: String(c.queue_name),
    attempt: Number(c.attempt),
    workerId: (c.worker_id as string | null | undefined) ?? null,
    traceContext: (c.trace_context as Record<string, string> | null | undefined) ?? null,
    correlationContext:
      (c.correlation_context as Record<string, string> | null | undefined) ?? null,
    hasDeadline: c.deadline != null,
    outcome: outcome as unknown as ExecutionOutcome | undefined,
  };
}

/** The runner's recent stderr, for a missing span (e.g. an SDK that says it cannot export). */
function stderrNote(script: RunnerScript): string {
  const text = script.session.stderr.trim();
  return text ? `; the runner's stderr ends with: ${text.slice(-600)}` : "";
}

async function expectSpan(
  script: RunnerScript,
  e: Expectation,
  receiver: OtlpReceiver | undefined,
  fail: (rule: string, message: string) => never,
): Promise<void> {
  if (!receiver) throw new Error("span expectations need the OTLP receiver");
  const alias = String(e.span);
  const request = sent(script, alias);
  const outcome = await awaitResponse(script, alias);
  const jobId = String(request.payload.job_id);
  const span = await receiver.waitFor(
    (s) => s.attributes["rrq.job_id"]?.value === jobId && s.name === "rrq.runner",
    WAIT_MS,
  );
  const rule = `rrq.runner span (${SPAN_SPEC})`;
  if (!span) {
    const other = receiver.spans.find((s) => s.attributes["rrq.job_id"]?.value === jobId);
    fail(
      rule,
      other
        ? `no span named rrq.runner for request ${alias}; got a span named ${show(other.name)}`
        : `no rrq.runner span for request ${alias} (job ${jobId}) reached the OTLP receiver within ${WAIT_MS} ms${stderrNote(script)}`,
    );
  }
  const problems = checkRunnerSpan(span, spanFacts(request, outcome));
  if (problems.length) fail(rule, `span of request ${alias}: ${problems.join("; ")}`);
}

async function expectNoSpan(
  script: RunnerScript,
  e: Expectation,
  receiver: OtlpReceiver | undefined,
  fail: (rule: string, message: string) => never,
): Promise<void> {
  if (!receiver) throw new Error("span expectations need the OTLP receiver");
  const after = sent(script, String(e.after));
  await awaitResponse(script, String(e.after));
  const afterJob = String(after.payload.job_id);
  // Spans are exported in the order they end; once the later request's span is here, a span for
  // the refused request would be here too.
  const later = await receiver.waitFor(
    (s) => s.attributes["rrq.job_id"]?.value === afterJob,
    WAIT_MS,
  );
  if (!later)
    fail(
      `rrq.runner span (${SPAN_SPEC})`,
      `no span for request ${String(e.after)} arrived, so the absence of one for ${String(e.no_span)} cannot be shown`,
    );
  const jobId = String(sent(script, String(e.no_span)).payload.job_id);
  if (receiver.spans.some((s) => s.attributes["rrq.job_id"]?.value === jobId))
    fail(
      `no rrq.runner span for refused requests (${SPAN_SPEC})`,
      `a span was exported for request ${String(e.no_span)}`,
    );
}

/**
 * The rules checked after every runner case: every open connection still answers (a probe), no
 * outcome lacks or invents a request_id, and every request has exactly one outcome (at most one
 * when its connection closed). Returns the broken rules.
 */
export async function finish(
  script: RunnerScript,
  exempt: Set<string>,
): Promise<Array<{ rule: string; message: string }>> {
  const problems: Array<{ rule: string; message: string }> = [];
  const open = [...script.connections.entries()].filter(
    ([alias, c]) => !c.closed && !exempt.has(`closed:${alias}`),
  );
  if (script.session.alive) {
    for (const [alias] of open) {
      const probe = `probe:${alias}`;
      script
        .connection(alias)
        .send(script.buildRequest({ function: "echo", params: { probe: true } }, probe, alias));
      try {
        await awaitResponse(script, probe);
      } catch (error) {
        if (error instanceof CaseFailed)
          problems.push({
            rule: RULES.open,
            message: `probe on connection ${alias}: ${error.failure.message}`,
          });
        else throw error;
      }
    }
  }
  for (const [alias, connection] of script.connections) {
    if (connection.closed && !exempt.has(`closed:${alias}`) && script.session.alive)
      problems.push({ rule: RULES.open, message: `the runner closed connection ${alias}` });
    problems.push(
      ...connection.violations.map((v) => ({
        rule: v.rule,
        message: `connection ${alias}: ${v.message}`,
      })),
    );
    const mine = [...script.requests.values()].filter((r) => r.connection === alias);
    const byId = new Map(mine.map((r) => [String(r.payload.request_id), r]));
    const counts = new Map<string, number>();
    for (const { frame } of responsesOf(connection)) {
      const p = payloadOf(frame);
      const id = p.request_id;
      if (id == null) {
        if (!(script.sentResponseFrame && p.job_id === "unknown"))
          problems.push({
            rule: RULES.correlation,
            message: `an outcome without request_id (job_id ${show(p.job_id)}, status ${show(p.status)})`,
          });
        continue;
      }
      const request = byId.get(text(id));
      if (!request) {
        problems.push({
          rule: RULES.correlation,
          message: `an outcome for request_id ${show(id)}, which was not sent on connection ${alias}`,
        });
        continue;
      }
      if (p.job_id !== request.payload.job_id)
        problems.push({
          rule: RULES.correlation,
          message: `outcome of ${request.alias} has job_id ${show(p.job_id)}, expected ${show(request.payload.job_id)}`,
        });
      counts.set(text(id), (counts.get(text(id)) ?? 0) + 1);
    }
    for (const request of mine) {
      const n = counts.get(String(request.payload.request_id)) ?? 0;
      const expectNone = exempt.has(`none:${request.alias}`);
      if (n > 1)
        problems.push({ rule: RULES.once, message: `request ${request.alias} got ${n} outcomes` });
      else if (expectNone && n > 0)
        problems.push({
          rule: "no outcome for this request",
          message: `request ${request.alias} got an outcome`,
        });
      else if (n === 0 && !expectNone && !connection.closed && script.session.alive)
        problems.push({ rule: RULES.once, message: `request ${request.alias} got no outcome` });
    }
  }
  return problems;
}
