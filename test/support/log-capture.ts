import { Writable } from "node:stream";
import pino from "pino";
import { EventBus } from "../../src/telemetry/events.js";
import { attachLogging } from "../../src/telemetry/logger.js";

/** An event bus whose log lines (attachLogging on a pino logger at `level`) are kept as JSON. */
export function captureLogs(level: string): {
  events: EventBus;
  lines: () => Record<string, unknown>[];
} {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const events = new EventBus();
  attachLogging(events, pino({ level }, sink));
  const lines = () =>
    chunks
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { events, lines };
}
