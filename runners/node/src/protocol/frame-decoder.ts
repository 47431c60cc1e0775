import { MAX_FRAME_BYTES } from "./constants.js";
import { FrameDecodeError } from "./errors.js";

/**
 * Splits a byte stream into frame bodies (4-byte big-endian length, then the body).
 *
 * Feed chunks with {@link push}; it returns every body completed by the chunk, in order. Length
 * errors are thrown as soon as the 4 header bytes are known, without waiting for a body.
 * {@link end} reports a stream that stopped inside a frame.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expectedBody = -1;

  /** Adds bytes; returns the frame bodies they complete. Throws {@link FrameDecodeError}. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const bodies: Buffer[] = [];
    for (;;) {
      if (this.expectedBody < 0) {
        if (this.buffered < 4) break;
        const length = this.take(4).readUInt32BE(0);
        if (length === 0) throw new FrameDecodeError("frame_empty", "length prefix is 0");
        if (length > MAX_FRAME_BYTES) {
          throw new FrameDecodeError(
            "frame_too_large",
            `length prefix ${length} exceeds ${MAX_FRAME_BYTES}`,
          );
        }
        this.expectedBody = length;
      }
      if (this.buffered < this.expectedBody) break;
      bodies.push(this.take(this.expectedBody));
      this.expectedBody = -1;
    }
    return bodies;
  }

  /** True when no partial frame is buffered. */
  get idle(): boolean {
    return this.buffered === 0 && this.expectedBody < 0;
  }

  /** Call at end of stream; throws `frame_truncated` when a frame was left incomplete. */
  end(): void {
    if (!this.idle) {
      const wanted = this.expectedBody < 0 ? "header" : `${this.expectedBody}-byte body`;
      throw new FrameDecodeError(
        "frame_truncated",
        `stream ended inside a frame (${this.buffered} bytes of ${wanted})`,
      );
    }
  }

  /** Removes and returns the next `n` buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      this.buffered -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    this.buffered -= n;
    return out;
  }
}
