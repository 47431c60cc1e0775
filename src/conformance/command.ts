import { readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { EncodingName, TransportKind } from "@rrqkit/runner/protocol";
import { InvalidArgumentError, Option, type Command } from "commander";
import {
  builtinBindings,
  commandProblem,
  customBinding,
  EXTENSIONS,
  orchestrators,
  wrapperWarning,
  type Binding,
  type Extension,
} from "./bindings.js";
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
  type Result,
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
  knownFailures: string[];
  name: string[];
  supports: string[];
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

const BUILTIN_NAMES = ["node", "python", "rust", "rrq", "all"];

/** The extensions one `--supports` value names (`unix,msgpack`; `none` for the core only). */
function parseSupports(value: string): Extension[] {
  const names = list(value);
  if (names.length === 1 && names[0] === "none") return [];
  for (const name of names)
    if (!(EXTENSIONS as readonly string[]).includes(name))
      throw new CorpusError(
        `--supports: unknown extension '${name}' (one of ${EXTENSIONS.join(", ")}, or none)`,
      );
  if (names.includes("ping") && !names.includes("hello"))
    throw new CorpusError("--supports: ping needs hello (a runner lists ping in its hello)");
  if (names.includes("live") && !names.includes("hello"))
    throw new CorpusError(
      "--supports: live needs hello (a runner lists progress and output in its hello)",
    );
  return names as Extension[];
}

/** The runners and producers given on the command line, as bindings (throws on bad names). */
function customBindings(flags: Flags): Binding[] {
  const count = Math.max(flags.runnerCmd.length, flags.producerCmd.length);
  const paired = (label: string, values: string[]) => {
    if (values.length > count)
      throw new CorpusError(
        `${label} is given ${values.length} times for ${count} --runner-cmd/--producer-cmd`,
      );
  };
  paired("--name", flags.name);
  paired("--supports", flags.supports);
  // Without --runner-cmd, one --known-failures list applies to the built-in bindings.
  if (count) paired("--known-failures", flags.knownFailures);
  const custom: Binding[] = [];
  for (let i = 0; i < count; i++) {
    const name = flags.name[i] ?? `custom${i + 1}`;
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(name))
      throw new CorpusError(
        `--name '${name}': use lower-case letters, digits, '-' and '_' (it starts result ids)`,
      );
    if (BUILTIN_NAMES.includes(name) || custom.some((b) => b.name === name))
      throw new CorpusError(`--name '${name}' is already taken`);
    const known = flags.knownFailures[i];
    const supports =
      flags.supports[i] === undefined ? undefined : parseSupports(flags.supports[i]!);
    custom.push(
      customBinding(
        name,
        flags.runnerCmd[i],
        flags.producerCmd[i],
        known === undefined ? undefined : resolve(known),
        flags.profile,
        supports,
      ),
    );
  }
  return custom;
}

/**
 * Checks that every command given on the command line can be started, once, before anything
 * runs (a missing program would otherwise fail every case with no useful reason), and warns
 * about build-and-run wrappers. Throws {@link CorpusError} naming the command and the errno.
 */
function checkCommands(custom: readonly Binding[]): void {
  for (const binding of custom)
    for (const [label, command] of [
      ["--runner-cmd", binding.runner],
      ["--producer-cmd", binding.producer],
    ] as const) {
      if (!command) continue;
      const problem = commandProblem(command.argv);
      if (problem)
        throw new CorpusError(
          `conformance: cannot start ${label} '${command.argv.join(" ")}' (${binding.name}): ${problem}`,
        );
      const warning = wrapperWarning(command.argv);
      if (warning) process.stderr.write(`conformance: warning: ${binding.name}: ${warning}\n`);
    }
}

/** Which bindings and end-to-end targets the flags select. */
function select(flags: Flags, root: string): Pick<RunOptions, "bindings" | "e2e"> {
  const builtin = builtinBindings(root);
  const orch = orchestrators(root);
  const custom = customBindings(flags);
  checkCommands(custom);
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

/** Why a run selected no case at all: the filters, and what each binding supports. */
function emptyRunReason(
  flags: Flags,
  selection: Pick<RunOptions, "bindings" | "e2e">,
  results: readonly Result[],
): string {
  if (results.length && results.every((r) => r.status === "skip"))
    return "every selected binding is unavailable (see the SKIP lines); build it first";
  const filters = [
    flags.transport && `--transport ${flags.transport.join(",")}`,
    flags.encoding && `--encoding ${flags.encoding.join(",")}`,
    flags.kind && `--kind ${flags.kind.join(",")}`,
    flags.run.length && `--run ${flags.run.join(",")}`,
    flags.skip.length && `--skip ${flags.skip.join(",")}`,
  ].filter(Boolean);
  const supports = selection.bindings.map(
    (b) =>
      `${b.name} (${b.profile}) runs ${b.transports.join(",")} × ${b.encodings.join(",")}` +
      `${b.runner ? "" : ", no runner"}${b.producer ? "" : ", no producer"}`,
  );
  return (
    `the selection matches no case${filters.length ? ` (${filters.join(" ")})` : ""}; ` +
    supports.join("; ") +
    (selection.bindings.some((b) => b.profile === "core")
      ? ". A core runner runs tcp/json only; declare more with --supports"
      : "")
  );
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
  const customCount = Math.max(flags.runnerCmd.length, flags.producerCmd.length);
  if (!customCount && flags.knownFailures.length > 1) {
    process.stderr.write("conformance: --known-failures is given more than once\n");
    return ConformanceExit.usage;
  }
  const extraKnownFailures =
    flags.knownFailures[0] && !customCount ? resolve(flags.knownFailures[0]) : undefined;
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
          ...selection.bindings.flatMap((b) => (b.knownFailures ? [b.knownFailures] : [])),
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
    const custom = new Set(selection.bindings.filter((b) => !b.missing).map((b) => b.name));
    const listOf = (name: string) => {
      const list = lists.get(name);
      if (list) return relative(process.cwd(), list);
      return custom.has(name) && !(name in builtinBindings(root))
        ? `the list you give with --known-failures (for ${name})`
        : relative(process.cwd(), join(listsDir, `${name}.txt`));
    };
    for (const line of knownFailureLines(results, listOf)) process.stdout.write(`${line}\n`);
  }
  const t = totals(results);
  process.stdout.write(`${closingLine(t)}\n`);
  if (!results.some((r) => r.status !== "skip")) {
    process.stderr.write(
      `conformance: no case ran: ${emptyRunReason(flags, selection, results)}\n`,
    );
    return ConformanceExit.usage;
  }
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
    .option(
      "--known-failures <file>",
      "known-failures list of the n-th --runner-cmd/--producer-cmd (repeatable); without them, added to every binding's",
      (v: string, p: string[] = []) => [...p, v],
      [],
    )
    .option(
      "--name <name>",
      "name of the n-th --runner-cmd/--producer-cmd in results (repeatable; default customN)",
      (v: string, p: string[] = []) => [...p, v],
      [],
    )
    .option(
      "--supports <extensions>",
      `extensions of the n-th --runner-cmd beyond TCP + JSON: ${EXTENSIONS.join(",")} or none (repeatable; overrides --profile)`,
      (v: string, p: string[] = []) => [...p, v],
      [],
    )
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
