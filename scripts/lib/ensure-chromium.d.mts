/** The path of an installed Chromium (CHROMIUM_PATH first), or undefined. */
export function findChromium(): string | undefined;
/** Installs Debian's chromium when none is found; its path, or undefined when that failed. */
export function installChromium(options?: { quiet?: boolean }): string | undefined;
/** Returns once Chromium is available; exits the process with a clear message otherwise. */
export function ensureChromium(): void;
