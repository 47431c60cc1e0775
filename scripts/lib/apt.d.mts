/** Runs `args` as root (else through `sudo -n`); true when it exited 0. */
export function asRoot(args: string[], options?: { quiet?: boolean; timeoutMs?: number }): boolean;
/** Installs Debian `packages` unless `present()` holds; true when it holds afterwards. */
export function aptInstall(
  packages: string[],
  present: () => boolean,
  options?: { quiet?: boolean; noRecommends?: boolean },
): boolean;
