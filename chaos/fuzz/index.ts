import type { EncodingName } from "@rrqkit/runner/protocol";
import { conformanceRunners } from "../lib/paths.js";
import { Rng } from "../lib/rng.js";
import type { RunMode } from "../lib/scenario.js";
import { fuzzConfig, type ConfigFuzzReport } from "./config.js";
import {
  emptyDecoderReport,
  fuzzOrchestratorDecoder,
  type DecoderFuzzReport,
} from "./orchestrator-decoder.js";
import { fuzzRunnerDecoder, type RunnerFuzzReport } from "./runner-decoder.js";

/** Everything the bad-input part of the suite measured (malformed job hashes are a scenario). */
export interface BadInputReport {
  passed: boolean;
  /** One entry per decoder and encoding: inputs, rejections, crashes, hangs, violations. */
  decoders: Array<DecoderFuzzReport | RunnerFuzzReport>;
  /** Inputs per decoder (both encodings together), the figure the issue asks for. */
  inputs_per_decoder: Record<string, number>;
  config: ConfigFuzzReport | null;
  seconds: number;
}

/** How many inputs each decoder gets (per encoding); `--fuzz-inputs N` overrides. */
export interface FuzzSizes {
  orchestrator: number;
  runner: number;
  configs: number;
}

export function fuzzSizes(quick: boolean, override?: number): FuzzSizes {
  if (override !== undefined)
    return { orchestrator: override, runner: override, configs: quick ? 500 : 5000 };
  // Full mode: 1,000,000 inputs per decoder, half in JSON and half in MessagePack.
  return quick
    ? { orchestrator: 20_000, runner: 4_000, configs: 500 }
    : { orchestrator: 500_000, runner: 500_000, configs: 5000 };
}

const ENCODINGS: EncodingName[] = ["json", "msgpack"];

const failed = (r: DecoderFuzzReport) => r.crashes + r.hangs + r.violations > 0;

function line(r: DecoderFuzzReport): string {
  const extra =
    "connections" in r
      ? `, ${(r as RunnerFuzzReport).connections} connections, ${(r as RunnerFuzzReport).restarts} restarts`
      : "";
  return `${failed(r) ? "✗" : "✓"} fuzz ${r.decoder}: ${r.inputs} inputs (${r.rejected} rejected, ${r.incomplete} incomplete, ${r.accepted} accepted), crashes ${r.crashes}, hangs ${r.hangs}, violations ${r.violations}, schema divergences ${r.schema_divergences}${extra}, ${r.seconds.toFixed(1)} s (${r.rate_per_s}/s)\n`;
}

/**
 * The bad-input checks: the orchestrator's frame decoder in-process, each built runner's decoder
 * through its socket (JSON and MessagePack), and malformed configurations. `only` may name
 * `fuzz-orchestrator`, `fuzz-runners`, `fuzz-config` (or `fuzz`/`bad-input` for all).
 */
export async function runBadInput(
  mode: RunMode,
  only?: string[],
  inputs?: number,
): Promise<BadInputReport> {
  const started = Date.now();
  const sizes = fuzzSizes(mode.quick, inputs);
  const want = (part: string) =>
    !only || only.some((o) => o === part || o === "fuzz" || o === "bad-input");
  const rng = new Rng(mode.seed);
  const decoders: BadInputReport["decoders"] = [];
  const perDecoder: Record<string, number> = {};
  process.stdout.write(`\n▶ bad input (seed ${mode.seed})\n`);
  const record = (name: string, r: DecoderFuzzReport) => {
    decoders.push(r);
    perDecoder[name] = (perDecoder[name] ?? 0) + r.inputs;
    process.stdout.write(line(r));
    // Failures first, then schema divergences (informational).
    const problems = Object.entries(r.problems).sort(
      ([a], [b]) => Number(a.startsWith("schema")) - Number(b.startsWith("schema")),
    );
    for (const [key, p] of problems.slice(0, 8))
      process.stdout.write(
        `    ${key} ×${p.count}: ${p.example.slice(0, 300)}${p.file ? ` (${p.file})` : ""}\n`,
      );
  };
  if (want("fuzz-orchestrator")) {
    for (const encoding of ENCODINGS)
      record(
        "orchestrator",
        await fuzzOrchestratorDecoder(encoding, sizes.orchestrator, rng.int(1, 2 ** 31)),
      );
  }
  if (want("fuzz-runners")) {
    for (const runner of conformanceRunners()) {
      for (const encoding of ENCODINGS) {
        try {
          record(
            runner.name,
            await fuzzRunnerDecoder(runner, encoding, sizes.runner, rng.int(1, 2 ** 31)),
          );
        } catch (error) {
          const r: RunnerFuzzReport = {
            ...emptyDecoderReport(`${runner.name}/${encoding}`),
            crashes: 1,
            problems: { "crashes: could not run": { count: 1, example: String(error) } },
            connections: 0,
            corrupt_inputs: 0,
            valid_frames: 0,
            restarts: 0,
          };
          record(runner.name, r);
        }
      }
    }
  }
  let config: ConfigFuzzReport | null = null;
  if (want("fuzz-config")) {
    config = fuzzConfig(rng.fork(), sizes.configs, mode.quick ? 3 : 12);
    const ok = config.crashes + config.unnamed + config.cli_failures === 0;
    process.stdout.write(
      `${ok ? "✓" : "✗"} malformed configs: ${config.configs} (${config.rejected} rejected naming the key, ${config.accepted} accepted), unnamed ${config.unnamed}, crashes ${config.crashes}; CLI ${config.cli_checked} files, ${config.cli_failures} failures\n`,
    );
    for (const p of config.problems.slice(0, 10))
      process.stdout.write(`    ${p.key} = ${p.value}: ${p.got}\n`);
  }
  const passed =
    decoders.every((r) => !failed(r)) &&
    (!config || config.crashes + config.unnamed + config.cli_failures === 0);
  return {
    passed,
    decoders,
    inputs_per_decoder: perDecoder,
    config,
    seconds: (Date.now() - started) / 1000,
  };
}
