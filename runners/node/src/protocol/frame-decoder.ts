import { MAX_FRAME_BYTES } from "./constants.js";
import { FrameDecodeError } from "./errors.js";

/**
 * Splits a byte stream into frame bodies (4-byte big-endian length, then the body).
 *
 * Feed chunks with {@link push}; it returns every body completed by the chunk, in order. Length
 * errors are thrown as soon as the 4 header bytes are known, without waiting for a body.
 * {@link end} reports a stream that stopped inside a frame.
 *
 * A connection should read with {@link feed} and {@link next} instead: a body is handed over
 * before the next length prefix is looked at, so frames that arrived before a bad prefix in the
 * same chunk are still delivered (RUNNER_PROTOCOL.md §2.7: frames in arrival order, an error
 * only ends the stream). `push` throws as soon as the chunk holds a bad prefix, dropping them.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  /**
   * Bytes of chunks[0] already taken: reading from an offset instead of re-slicing the chunk
   * saves a Buffer view per header and per body (four views per frame were a good part of a
   * connection's garbage per job).
   */
  private head = 0;
  private buffered = 0;
  private expectedBody = -1;

  /** Adds bytes; returns the frame bodies they complete. Throws {@link FrameDecodeError}. */
  push(chunk: Buffer): Buffer[] {
    this.feed(chunk);
    const bodies: Buffer[] = [];
    for (let body = this.next(); body; body = this.next()) bodies.push(body);
    return bodies;
  }

  /** Adds bytes without decoding anything yet (see {@link next}). */
  feed(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete body, or undefined when more bytes are needed. Throws
   * {@link FrameDecodeError} when the next length prefix is invalid.
   */
  next(): Buffer | undefined {
    if (this.expectedBody < 0) {
      if (this.buffered < 4) return undefined;
      const length = this.takeLength();
      if (length === 0) throw new FrameDecodeError("frame_empty", "length prefix is 0");
      if (length > MAX_FRAME_BYTES) {
        throw new FrameDecodeError(
          "frame_too_large",
          `length prefix ${length} exceeds ${MAX_FRAME_BYTES}`,
        );
      }
      this.expectedBody = length;
    }
    if (this.buffered < this.expectedBody) return undefined;
    const body = this.take(this.expectedBody);
    this.expectedBody = -1;
    return body;
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

  /** Removes the next 4 buffered bytes (buffered >= 4) and reads them as a length prefix. */
  private takeLength(): number {
    const first = this.chunks[0]!;
    if (first.length - this.head >= 4) {
      const length = first.readUInt32BE(this.head);
      this.advance(first, 4);
      return length;
    }
    return this.take(4).readUInt32BE(0);
  }

  /** Removes and returns the next `n` buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    const start = this.head;
    if (first.length - start >= n) {
      this.advance(first, n);
      return first.subarray(start, start + n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const used = Math.min(chunk.length - this.head, n - filled);
      chunk.copy(out, filled, this.head, this.head + used);
      filled += used;
      this.advance(chunk, used);
    }
    return out;
  }

  /** Marks `n` bytes of the first chunk (`first`) taken. */
  private advance(first: Buffer, n: number): void {
    this.buffered -= n;
    this.head += n;
    if (this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
