/**
 * The Rust race (issue 25): rrqkit's Rust runner and Rust producer against a Redis-backed Rust
 * job queue. Filled in by the rust-race work.
 */
import type { BenchContext } from "../lib/context.js";

/** Runs every Rust-race scenario (burn-down and enqueue). */
export async function runRustRace(ctx: BenchContext): Promise<void> {
  ctx.log("rust race: not built yet");
  await Promise.resolve();
}
