import { describe, expect, it } from "vitest";
import { codecFor, FrameEncodeError, type Frame } from "../src/protocol/index.js";

// RUNNER_PROTOCOL.md §4: writers never send what readers must reject, and both encodings carry
// the same data.

const ping = (extra: Record<string, unknown>): Frame =>
  ({ type: "ping", payload: { nonce: "n", ...extra } }) as unknown as Frame;

const roundTrip = (encoding: "json" | "msgpack", frame: Frame): unknown => {
  const codec = codecFor(encoding);
  return codec.decodeBody(codec.encodeFrame(frame).subarray(4));
};

describe.each(["json", "msgpack"] as const)("%s writer", (encoding) => {
  it.each([
    ["NaN", { x: NaN }],
    ["Infinity", { x: [1, Infinity] }],
    ["-Infinity in a nested map", { x: { y: -Infinity } }],
  ])("refuses %s as not_encodable (the runtime turns it into OutcomeNotEncodable)", (_n, extra) => {
    const encode = () => codecFor(encoding).encodeFrame(ping(extra));
    expect(encode).toThrow(FrameEncodeError);
    expect(encode).toThrow(/NaN or Infinity/);
  });

  it("writes a Date or a Buffer as its JSON form, never as ext or bin", () => {
    expect(roundTrip(encoding, ping({ d: new Date(0), b: Buffer.from("ab") }))).toEqual({
      type: "ping",
      payload: {
        nonce: "n",
        d: "1970-01-01T00:00:00.000Z",
        b: { type: "Buffer", data: [97, 98] },
      },
    });
  });
});
