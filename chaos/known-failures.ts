import type { KnownFailure } from "./lib/scenario.js";

/**
 * Violations the suite reproduces on purpose: bugs not fixed yet, each with the reason it could
 * not be fixed. They are printed on every run ("known <finding>") but do not fail it; delete an
 * entry once its fix lands (an entry only matches its own scenario and violation kind). Empty:
 * every bug the suite found so far is fixed (chaos/README.md lists them).
 */
export const KNOWN_FAILURES: KnownFailure[] = [];
