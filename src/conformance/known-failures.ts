import { existsSync, readFileSync } from "node:fs";
import { relative } from "node:path";
import { CorpusError, globToRegExp } from "./cases.js";

/** One line of a known-failures list. */
export interface KnownFailure {
  /** Glob over result ids (`binding:transport/encoding:case-id`). */
  pattern: string;
  regexp: RegExp;
  /** Why it fails: required, so every entry says what it waits for. */
  reason: string;
  /** `file:line`, for messages. */
  where: string;
  /** `~` entries: a difference that shows only some of the time, so passing is not an error. */
  intermittent: boolean;
}

/**
 * Reads a known-failures list: one glob per line followed by `# reason`; blank lines and lines
 * starting with `#` are comments; a leading `~` marks an intermittent difference. A missing file is an empty list. Lines without a reason are a
 * corpus error: a list entry must say why the case fails.
 */
export function readKnownFailures(path: string, root: string): KnownFailure[] {
  if (!existsSync(path)) return [];
  const name = relative(root, path);
  const entries: KnownFailure[] = [];
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith("#")) return;
      const hash = line.indexOf("#");
      const glob = (hash < 0 ? line : line.slice(0, hash)).trim();
      const intermittent = glob.startsWith("~");
      const pattern = intermittent ? glob.slice(1) : glob;
      const reason = hash < 0 ? "" : line.slice(hash + 1).trim();
      if (!reason) throw new CorpusError(`${name}:${i + 1}: '${pattern}' needs a '# reason'`);
      entries.push({
        pattern,
        regexp: globToRegExp(pattern),
        reason,
        where: `${name}:${i + 1}`,
        intermittent,
      });
    });
  return entries;
}

/** The entry listing a result id, if any. */
export function listed(list: readonly KnownFailure[], id: string): KnownFailure | undefined {
  return list.find((entry) => entry.regexp.test(id));
}
