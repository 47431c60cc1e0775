import { join } from "node:path";
import type { EncodingName, TransportKind } from "@rrqkit/runner/protocol";
import type { Binding, OrchestratorSpec } from "./bindings.js";
import { matchesAny, type Case, type CaseKind } from "./cases.js";
import { E2eCell, e2eVariants } from "./e2e-cell.js";
import { listed, readKnownFailures, type KnownFailure } from "./known-failures.js";
import { OtlpReceiver } from "./otlp-receiver.js";
import { ProducerReference, ProducerSuite } from "./producer-suite.js";
import { formatResult, type Result } from "./report.js";
import type { TestRedis } from "./redis-server.js";
import { startRedis } from "./redis-server.js";
import { RunnerCell } from "./runner-cell.js";
import { RunnerGone } from "./runner-session.js";
import type { Failure } from "./runner-script.js";

/** What to run. */
export interface RunOptions {
  root: string;
  cases: Case[];
  bindings: Binding[];
  /** Orchestrators for end-to-end cases, and which binding each runs (interop runs RRQ's). */
  e2e: Array<{
    orchestrator: OrchestratorSpec;
    binding: Binding;
    producer: Binding;
    label: string;
  }>;
  transports?: TransportKind[];
  encodings?: EncodingName[];
  run: string[];
  skip: string[];
  kinds: Set<CaseKind>;
  parallel: number;
  /** Extra known-failures file (for --runner-cmd). */
  extraKnownFailures?: string;
  print: (text: string) => void;
}

/** Whether a case belongs on a runner (or e2e) variant at all; inapplicable pairs get no result. */
export function applies(
  c: Case,
  binding: Binding,
  transport: TransportKind,
  encoding: EncodingName,
): boolean {
  if (c.transports && !c.transports.includes(transport)) return false;
  if (c.encodings && !c.encodings.includes(encoding)) return false;
  if (c.needs?.includes("multi_connection") && transport === "stdio") return false;
  if (c.profile === "rrqkit" && binding.profile === "core") return false;
  if (c.needs?.includes("hello") && !binding.hello) return false;
  if (c.needs?.includes("ping") && !binding.ping) return false;
  if (c.needs?.includes("live") && !binding.live) return false;
  // The plain v2 fallback: only a runner without live jobs shows it (RRQ's own, or a core one).
  if (c.needs?.includes("without_live") && binding.live) return false;
  return true;
}

/** Runs `tasks` with at most `limit` at once. */
async function pool(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, tasks.length)) }, worker));
}

/**
 * Runs the whole matrix: runner cells (binding × transport × encoding), end-to-end cells, and
 * producer suites, printing one line per case as results arrive. Returns every result.
 */
export async function runConformance(o: RunOptions): Promise<Result[]> {
  const results: Result[] = [];
  const all = readKnownFailures(join(o.root, "conformance", "known-failures", "all.txt"), o.root);
  const lists = new Map<string, KnownFailure[]>();
  const listFor = (binding: Binding): KnownFailure[] => {
    let list = lists.get(binding.name);
    if (!list) {
      list = [
        ...(binding.knownFailures ? readKnownFailures(binding.knownFailures, o.root) : []),
        ...all,
      ];
      if (o.extraKnownFailures) list.push(...readKnownFailures(o.extraKnownFailures, o.root));
      lists.set(binding.name, list);
    }
    return list;
  };
  const selected = (c: Case, id: string) =>
    o.kinds.has(c.kind) &&
    (!o.run.length || matchesAny(o.run, c.id, id)) &&
    !matchesAny(o.skip, c.id, id);

  const record = (
    binding: Binding,
    label: string,
    variant: string,
    c: Case,
    failures: Failure[],
    ms: number,
  ) => {
    const id = `${label}:${variant}:${c.id}`;
    const entry = listed(listFor(binding), id);
    let status: Result["status"] = failures.length ? "fail" : "pass";
    let note: string | undefined;
    if (entry && status === "fail") {
      status = "xfail";
      note = `known failure: ${entry.reason}`;
    } else if (entry && !entry.intermittent) {
      status = "fail";
      note = `listed in ${entry.where} (${entry.pattern}) but passes now: remove the line`;
    }
    const result: Result = {
      id,
      binding: label,
      variant,
      caseId: c.id,
      status,
      failures,
      note,
      spec: c.specLinks,
      ms,
    };
    results.push(result);
    o.print(formatResult(result));
  };
  const skipBinding = (label: string, why: string) => {
    const result: Result = {
      id: `${label}:*:*`,
      binding: label,
      variant: "*",
      caseId: "*",
      status: "skip",
      failures: [],
      note: why,
      spec: [],
      ms: 0,
    };
    results.push(result);
    o.print(formatResult(result));
  };

  const needsReceiver = o.kinds.has("runner") || o.kinds.has("e2e");
  const receiver = needsReceiver ? await OtlpReceiver.start() : undefined;
  const redis: TestRedis | undefined =
    o.kinds.has("producer") || o.kinds.has("e2e") ? await startRedis() : undefined;
  const tasks: Array<() => Promise<void>> = [];
  const producerSuites: Array<{ binding: Binding; cases: Case[]; database: number }> = [];
  let database = 0;
  try {
    for (const binding of o.bindings) {
      if (binding.missing) {
        skipBinding(binding.name, `not available: ${binding.missing}`);
        continue;
      }
      if (binding.runner && o.kinds.has("runner")) {
        for (const transport of binding.transports.filter(
          (t) => !o.transports || o.transports.includes(t),
        ))
          for (const encoding of binding.encodings.filter(
            (e) => !o.encodings || o.encodings.includes(e),
          )) {
            const variant = `${transport}/${encoding}`;
            const cases = o.cases.filter(
              (c) =>
                c.kind === "runner" &&
                applies(c, binding, transport, encoding) &&
                selected(c, `${binding.name}:${variant}:${c.id}`),
            );
            if (!cases.length) continue;
            tasks.push(async () => {
              const cell = new RunnerCell(
                binding.runner!,
                transport,
                encoding,
                binding.hello,
                receiver,
              );
              try {
                for (const c of cases) {
                  const started = Date.now();
                  let failures: Failure[];
                  try {
                    failures = await cell.run(c);
                  } catch (error) {
                    failures = [
                      error instanceof RunnerGone
                        ? {
                            rule: "the runner starts and listens (RUNNER_PROTOCOL.md §5)",
                            message: error.message,
                          }
                        : {
                            rule: "harness error (not the runner's fault)",
                            message: (error as Error).stack ?? String(error),
                          },
                    ];
                  }
                  record(binding, binding.name, variant, c, failures, Date.now() - started);
                }
              } finally {
                await cell.close();
              }
            });
          }
      }
      if (binding.producer && o.kinds.has("producer")) {
        const cases = o.cases.filter(
          (c) =>
            c.kind === "producer" &&
            // A core producer (RRQ's) has none of the extensions: rrqkit-profile cases are n/a.
            !(c.profile === "rrqkit" && binding.profile === "core") &&
            selected(c, `${binding.name}:producer:${c.id}`),
        );
        if (cases.length) producerSuites.push({ binding, cases, database: ++database });
      }
    }
    if (producerSuites.length)
      // One task: suites run one after another, so the first binding's Redis state is the
      // reference the others are compared with (and wake-up channels never mix).
      tasks.push(async () => {
        const reference = new ProducerReference();
        for (const { binding, cases, database: db } of producerSuites) {
          const suite = new ProducerSuite(binding, redis!, db, reference);
          try {
            for (const c of cases) {
              const started = Date.now();
              const failures = await suite.run(c);
              record(binding, binding.name, "producer", c, failures, Date.now() - started);
            }
          } finally {
            await suite.close();
          }
        }
      });
    if (o.kinds.has("e2e")) {
      for (const target of o.e2e) {
        const { binding, orchestrator, producer } = target;
        const missing =
          binding.missing ??
          producer.missing ??
          orchestrator.missing ??
          (producer.producer ? undefined : `${producer.name} has no producer adapter`);
        if (missing) {
          skipBinding(target.label, `end-to-end not available: ${missing}`);
          continue;
        }
        for (const [index, variant] of e2eVariants(binding, orchestrator).entries()) {
          if (o.transports && !o.transports.includes(variant.transport)) continue;
          if (o.encodings && !o.encodings.includes(variant.encoding)) continue;
          const name = `${variant.transport}/${variant.encoding}`;
          const cases = o.cases.filter(
            (c) =>
              c.kind === "e2e" &&
              (!c.once || index === 0) &&
              applies(c, binding, variant.transport, variant.encoding) &&
              E2eCell.supports(c, orchestrator) &&
              selected(c, `${target.label}:${name}:${c.id}`),
          );
          if (!cases.length) continue;
          const db = ++database;
          tasks.push(async () => {
            const cell = new E2eCell({
              ...target,
              variant,
              redis: redis!,
              database: db,
              receiver: receiver!,
              root: o.root,
            });
            try {
              for (const c of cases) {
                const started = Date.now();
                const failures = await cell.run(c);
                record(binding, target.label, name, c, failures, Date.now() - started);
              }
            } finally {
              await cell.close();
            }
          });
        }
      }
    }
    await pool(tasks, o.parallel);
  } finally {
    await receiver?.close();
    await redis?.stop();
  }
  return results;
}
