import { readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { EncodingName, TransportKind } from "@rrqkit/runner/protocol";
import { InvalidArgumentError, Option, type Command } from "commander";
import { builtinBindings, customBinding, orchestrators, type Binding } from "./bindings.js";
import {
  CorpusError,
  loadCases,
  repoRoot,
  type Case,
  type CaseKind,
  type Profile,
} from "./cases.js";
import { readKnownFailures } from "./known-failures.js";
import {
  closingLine,
  knownFailureLines,
  parityTableSection,
  totals,
  writeJsonReport,
  writeParityTable,
} from "./report.js";
import { runConformance, type RunOptions } from "./run.js";

/** Exit codes of `rrq conformance`. */
export const ConformanceExit = { passed: 0, failed: 1, usage: 2 } as const;

interface Flags {
  binding: string[];
  runnerCmd: string[];
  producerCmd: string[];
  profile: Profile;
  transport?: string[];
  encoding?: string[];
  kind?: string[];
  run: string[];
  skip: string[];
  json?: string;
  parityTable?: string;
  printKnownFailures?: boolean;
  knownFailures?: string;
  parallel: number;
  check?: boolean;
}

const list = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean),
];

function oneOf(label: string, allowed: readonly string[]) {
  return (value: string, previous: string[] = []) => {
    const values = list(value);
    for (const v of values)
      if (!allowed.includes(v))
        throw new InvalidArgumentError(`${label} must be one of ${allowed.join(", ")}`);
    return [...previous, ...values];
  };
}

/** Which bindings and end-to-end targets the flags select. */
function select(flags: Flags, root: string): Pick<RunOptions, "bindings" | "e2e"> {
  const builtin = builtinBindings(root);
  const orch = orchestrators(root);
  const custom: Binding[] = [];
  const count = Math.max(flags.runnerCmd.length, flags.producerCmd.length);
  for (let i = 0; i < count; i++) {
    const known = flags.knownFailures
      ? resolve(flags.knownFailures)
      : resolve(root, "conformance", "known-failures", `custom${i + 1}.txt`);
    custom.push(
      customBinding(
        `custom${i + 1}`,
        flags.runnerCmd[i],
        flags.producerCmd[i],
        known,
        flags.profile,
      ),
    );
  }
  const names = flags.binding.length ? flags.binding : custom.length ? [] : ["all"];
  const chosen = new Set(names.flatMap((n) => (n === "all" ? ["node", "python", "rust"] : [n])));
  const bindings = [...[...chosen].map((n) => builtin[n]!), ...custom];
  const e2e: RunOptions["e2e"] = bindings
    .filter((b) => b.runner && b.producer)
    .map((b) => ({ orchestrator: orch.rrqkit, binding: b, producer: b, label: b.name }));
  for (const b of custom.filter((x) => x.runner && !x.producer))
    e2e.push({ orchestrator: orch.rrqkit, binding: b, producer: builtin.node!, label: b.name });
  if (chosen.has("rrq"))
    // RRQ interop (c): RRQ's own orchestrator runs jobs from rrqkit's producers on rrqkit's runners.
    for (const name of ["node", "python", "rust"])
      e2e.push({
        orchestrator: orch.rrq,
        binding: builtin[name]!,
        producer: builtin[name]!,
        label: `rrq-orchestrator+${name}`,
      });
  return { bindings, e2e };
}

/** The command line that selected what ran, without the flags that only say where to write. */
export function selectionCommand(args: readonly string[]): string {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2);
    if (flag === "--json" || flag === "--parity-table") {
      if (inline === undefined) i++;
      continue;
    }
    kept.push(args[i]!);
  }
  return ["rrq conformance", ...kept].join(" ");
}

async function conformance(flags: Flags): Promise<number> {
  const root = repoRoot();
  const listsDir = join(root, "conformance", "known-failures");
  const extraKnownFailures =
    flags.knownFailures && !flags.runnerCmd.length ? resolve(flags.knownFailures) : undefined;
  let cases: Case[];
  let selection: Pick<RunOptions, "bindings" | "e2e">;
  try {
    cases = loadCases(root);
    selection = select(flags, root);
    // Read every list now, so that a broken one stops the run before anything starts.
    const lists = flags.check
      ? readdirSync(listsDir)
          .filter((f) => f.endsWith(".txt"))
          .map((f) => join(listsDir, f))
      : [
          join(listsDir, "all.txt"),
          ...selection.bindings.map((b) => b.knownFailures),
          ...(extraKnownFailures ? [extraKnownFailures] : []),
        ];
    for (const list of lists) readKnownFailures(list, root);
    if (flags.parityTable) parityTableSection(resolve(flags.parityTable));
  } catch (error) {
    if (error instanceof CorpusError) {
      process.stderr.write(`${error.message}\n`);
      return ConformanceExit.usage;
    }
    throw error;
  }
  if (flags.check) {
    process.stdout.write(`conformance corpus: ${cases.length} cases, valid\n`);
    return ConformanceExit.passed;
  }
  const started = new Date();
  const results = await runConformance({
    root,
    cases,
    ...selection,
    transports: flags.transport as TransportKind[] | undefined,
    encodings: flags.encoding as EncodingName[] | undefined,
    run: flags.run,
    skip: flags.skip,
    kinds: new Set((flags.kind ?? ["runner", "e2e", "producer"]) as CaseKind[]),
    parallel: flags.parallel,
    extraKnownFailures,
    print: (text) => process.stdout.write(`${text}\n`),
  });
  const seconds = (Date.now() - started.getTime()) / 1000;
  if (flags.json) writeJsonReport(resolve(flags.json), results, started, seconds);
  if (flags.parityTable)
    writeParityTable(
      resolve(flags.parityTable),
      results,
      started,
      selectionCommand(process.argv.slice(process.argv.indexOf("conformance") + 1)),
    );
  if (flags.printKnownFailures) {
    const lists = new Map(selection.bindings.map((b) => [b.name, b.knownFailures]));
    const listOf = (name: string) =>
      relative(process.cwd(), lists.get(name) ?? join(listsDir, `${name}.txt`));
    for (const line of knownFailureLines(results, listOf)) process.stdout.write(`${line}\n`);
  }
  const t = totals(results);
  process.stdout.write(`${closingLine(t)}\n`);
  return t.failed ? ConformanceExit.failed : ConformanceExit.passed;
}

/**
 * Adds `rrq conformance` to the CLI: checks bindings (or any runner given as a command) against
 * the conformance corpus and prints one line per case, then `conformance: N passed, M failed`.
 */
export function registerConformanceCommand(
  program: Command,
  run: (action: () => Promise<number>) => void,
): void {
  program
    .command("conformance")
    .description(
      "check runner and producer bindings against the conformance cases (conformance/README.md)",
    )
    .option(
      "--binding <name>",
      "node, python, rust, rrq (RRQ interop) or all (repeatable)",
      oneOf("--binding", ["node", "python", "rust", "rrq", "all"]),
      [],
    )
    .option(
      "--runner-cmd <command>",
      "a runner command line to test (repeatable)",
      (v: string, p: string[] = []) => [...p, v],
      [],
    )
    .option(
      "--producer-cmd <command>",
      "a producer adapter command line to test (repeatable)",
      (v: string, p: string[] = []) => [...p, v],
      [],
    )
    .addOption(
      new Option(
        "--profile <profile>",
        "for --runner-cmd: core (RRQ 0.11) or rrqkit (with extensions)",
      )
        .choices(["core", "rrqkit"])
        .default("rrqkit"),
    )
    .option(
      "--transport <name>",
      "tcp, unix, stdio (repeatable; default: all the binding supports)",
      oneOf("--transport", ["tcp", "unix", "stdio"]),
    )
    .option(
      "--encoding <name>",
      "json, msgpack (repeatable; default: both)",
      oneOf("--encoding", ["json", "msgpack"]),
    )
    .option(
      "--kind <kind>",
      "runner, e2e, producer (repeatable; default: all)",
      oneOf("--kind", ["runner", "e2e", "producer"]),
    )
    .option("--run <glob>", "only cases whose id matches (repeatable)", list, [])
    .option("--skip <glob>", "leave out cases whose id matches (repeatable)", list, [])
    .option("--json <file>", "write a JSON report")
    .option(
      "--parity-table <file>",
      "rewrite the parity table section of a Markdown file (conformance/README.md)",
    )
    .option("--known-failures <file>", "known-failures list for --runner-cmd / --producer-cmd")
    .option(
      "--parallel <n>",
      "cells run at once",
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1)
          throw new InvalidArgumentError("--parallel must be a positive integer");
        return n;
      },
      3,
    )
    .option(
      "--print-known-failures",
      "print known-failures lines for the cases that failed (before the closing line)",
    )
    .option("--check", "only validate the case corpus")
    // Bad flags are a usage error (exit 2), so CI can tell them from failing cases (exit 1).
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : ConformanceExit.usage))
    .action((flags: Flags) => run(() => conformance(flags)));
}
