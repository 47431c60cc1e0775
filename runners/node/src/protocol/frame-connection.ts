import type { Readable, Writable } from "node:stream";
import type { PayloadCodec } from "./encoding.js";
import { FrameDecodeError } from "./errors.js";
import { FrameDecoder } from "./frame-decoder.js";
import { parseFrame } from "./frames.js";
import type { Frame } from "./generated/wire.js";

/** Why a connection closed. */
export type CloseReason =
  | { kind: "eof" }
  | { kind: "local" }
  | { kind: "decode"; error: FrameDecodeError }
  | { kind: "io"; error: Error };

/** Observers of one connection. Handlers run synchronously, in frame arrival order. */
export interface FrameConnectionHandlers {
  frame?: (frame: Frame) => void;
  close?: (reason: CloseReason) => void;
}

/**
 * What the runtime and the orchestrator need of a connection: frames in (through `on`), frames
 * out, close. {@link FrameConnection} carries them as bytes over a stream; `memoryChannelPair`
 * hands them across inside one process.
 */
export interface FrameChannel {
  /** Registers observers (replacing earlier ones). */
  on(handlers: FrameConnectionHandlers): this;
  /** True once the channel is closed, for whatever reason. */
  readonly closed: boolean;
  /** Why the channel closed, once it has. */
  readonly closeReason: CloseReason | undefined;
  /**
   * Sends one frame. Returns false (and sends nothing) when the channel is closed. Throws
   * {@link FrameEncodeError} when the frame is too large or not encodable.
   */
  send(frame: Frame): boolean;
  /** Closes the channel from this side; frames already sent are still delivered. */
  close(): void;
}

/** The observer and close-state bookkeeping every {@link FrameChannel} shares. */
export abstract class FrameChannelBase implements FrameChannel {
  protected handlers: FrameConnectionHandlers = {};
  protected closedWith: CloseReason | undefined;

  on(handlers: FrameConnectionHandlers): this {
    this.handlers = handlers;
    return this;
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  get closeReason(): CloseReason | undefined {
    return this.closedWith;
  }

  abstract send(frame: Frame): boolean;
  abstract close(): void;
}

/**
 * One bidirectional stream of frames over any byte transport (socket, or a stdin/stdout pair).
 *
 * - Incoming bytes are split, decoded and parsed; each frame is delivered in arrival order.
 *   A decoding error closes the connection (no reply) and is reported through `close`.
 * - Outgoing frames are encoded whole before anything is written, so an oversized or
 *   unencodable frame throws and writes nothing. Writes made in one tick are corked into one
 *   syscall; frames never interleave.
 */
export class FrameConnection extends FrameChannelBase {
  private readonly decoder = new FrameDecoder();
  private corked = false;

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    readonly codec: PayloadCodec,
  ) {
    super();
    input.on("data", (chunk: Buffer) => this.receive(chunk));
    input.on("end", () => this.onEnd());
    input.on("error", (error: Error) => this.shutdown({ kind: "io", error }));
    input.on("close", () => this.onEnd());
    output.on("error", (error: Error) => this.shutdown({ kind: "io", error }));
  }

  /**
   * Sends one frame. Returns false (and sends nothing) when the connection is closed. Throws
   * {@link FrameEncodeError} when the frame is too large or not encodable.
   */
  send(frame: Frame): boolean {
    if (this.closedWith) return false;
    const bytes = this.codec.encodeFrame(frame);
    if (!this.corked) {
      this.corked = true;
      this.output.cork();
      process.nextTick(() => {
        this.corked = false;
        this.output.uncork();
      });
    }
    this.output.write(bytes);
    return true;
  }

  /** Sends raw bytes as they are (for tests and fault injection only). */
  sendRaw(bytes: Buffer): void {
    if (!this.closedWith) this.output.write(bytes);
  }

  /** Closes the connection from this side. Pending writes are flushed first. */
  close(): void {
    this.shutdown({ kind: "local" });
  }

  private receive(chunk: Buffer): void {
    if (this.closedWith) return;
    try {
      // One body at a time: frames before a bad length prefix in this chunk are still delivered.
      this.decoder.feed(chunk);
      for (let body = this.decoder.next(); body; body = this.decoder.next()) {
        const frame = parseFrame(this.codec.decodeBody(body));
        this.handlers.frame?.(frame);
        if (this.closedWith) return;
      }
    } catch (error) {
      if (error instanceof FrameDecodeError) this.shutdown({ kind: "decode", error });
      else throw error;
    }
  }

  private onEnd(): void {
    if (this.closedWith) return;
    try {
      this.decoder.end();
      this.shutdown({ kind: "eof" });
    } catch (error) {
      this.shutdown({ kind: "decode", error: error as FrameDecodeError });
    }
  }

  private shutdown(reason: CloseReason): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    this.input.removeAllListeners("data");
    const sameStream = (this.input as unknown) === this.output;
    if (reason.kind === "decode" || reason.kind === "io") {
      // The stream is unusable: drop it, pending writes included.
      this.input.destroy();
      if (!sameStream) this.output.destroy();
    } else {
      // Orderly close: flush what was written, stop reading.
      this.output.end();
      if (!sameStream) this.input.destroy();
    }
    this.handlers.close?.(reason);
  }
}
