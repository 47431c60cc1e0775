/**
 * Capability tags (issue 23, live-design §1 and §5): what a runner's hello offers (`tags`) and
 * what a job needs (`requires`). One validation for config, producers and hellos, so a tag
 * the producer accepts is one a runner can announce.
 */

/** One tag: 1 to 64 of `A-Z a-z 0-9 _ . : / = -`. */
export const TAG_PATTERN = /^[A-Za-z0-9_.:/=-]{1,64}$/;
/** Most tags one runner may announce. */
export const MAX_RUNNER_TAGS = 32;
/** Most tags one job may require. */
export const MAX_REQUIRED_TAGS = 16;

/**
 * Checks a list of tags; returns the problem in words (naming `where`), or undefined.
 * `max` is {@link MAX_RUNNER_TAGS} or {@link MAX_REQUIRED_TAGS}.
 */
export function tagsProblem(value: unknown, where: string, max: number): string | undefined {
  if (!Array.isArray(value))
    return `${where} must be an array of tags, got ${JSON.stringify(value)}`;
  if (value.length > max) return `${where} holds ${value.length} tags; at most ${max} are allowed`;
  for (const tag of value)
    if (typeof tag !== "string" || !TAG_PATTERN.test(tag))
      return `${where}: ${JSON.stringify(tag)} is no tag (1 to 64 of A-Z a-z 0-9 _ . : / = -)`;
  return undefined;
}

/** Deduplicated and sorted: the one spelling of a tag set (needs-set keys, comparisons). */
export function normalizeTags(tags: Iterable<string>): string[] {
  return [...new Set(tags)].sort();
}

/** True when `offered` holds every tag of `required`. */
export function covers(
  offered: ReadonlySet<string> | readonly string[],
  required: readonly string[],
): boolean {
  if (required.length === 0) return true;
  const set = offered instanceof Set ? offered : new Set(offered as readonly string[]);
  return required.every((tag) => set.has(tag));
}

/**
 * A job hash's `requires` (a JSON array of tags), normalized; [] when absent, empty or
 * unreadable (an unreadable value cannot be matched by any runner, so ignoring it is the
 * only way the job ever runs; the producers never write one).
 */
export function parseRequires(raw: string | undefined): string[] {
  if (!raw) return [];
  try {
    const value: unknown = JSON.parse(raw);
    if (!Array.isArray(value)) return [];
    return normalizeTags(
      value.filter((t): t is string => typeof t === "string" && TAG_PATTERN.test(t)),
    );
  } catch {
    return [];
  }
}
