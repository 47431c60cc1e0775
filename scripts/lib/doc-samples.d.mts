/** One fenced block of a doc, as the sample runner classified it. */
export interface DocSample {
  file: string;
  line: number;
  lang: string;
  info: string;
  mode: string;
  marked: boolean;
  name: string | undefined;
  path: string | undefined;
  target: string | undefined;
  reason: string;
  attrs: Record<string, string>;
  code: string;
}

/** What happened to the blocks of the docs. */
export interface DocSampleCounts {
  blocks: number;
  executed: number;
  compiled: number;
  notCode: number;
  notCodeList: string[];
  programs: number;
}

/** Runs every sample of README.md and docs/**\/*.md under `root` against `redisUrl`. */
export function runDocSamples(options: {
  root: string;
  redisUrl: string;
  log?: (line: string) => void;
}): Promise<{
  problems: string[];
  counts: DocSampleCounts;
  timings: Record<string, number>;
  seconds: number;
}>;
/** Classifies the samples without running anything. */
export function classifyDocSamples(root: string): {
  all: DocSample[];
  samples: DocSample[];
  problems: string[];
};
/** Parses a `<!-- sample: … -->` marker line. */
export function parseMarker(
  text: string,
):
  | { mode: string; attrs: Record<string, string>; target: string | undefined; reason: string }
  | undefined;
/** The fenced blocks of one Markdown text. */
export function parseSamples(file: string, text: string, problems: string[]): DocSample[];
/** The rules that need the whole list (reasons, part-of targets, output placement). */
export function checkRules(samples: DocSample[], problems: string[]): void;
/** The first expected output line missing from `out`, or undefined. */
export function missingOutput(expected: string, out: string): string | undefined;
