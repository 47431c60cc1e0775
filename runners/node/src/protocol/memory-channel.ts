import { checkEncodableDepth, frameJson } from "./encoding.js";
import { FrameChannelBase, type CloseReason, type FrameChannel } from "./frame-connection.js";
import type { Frame } from "./generated/wire.js";

/**
 * One end of an in-process pair. Frames cross as values, delivered in order on a later
 * microtask (never inside `send`, as with a socket), so neither side is re-entered.
 *
 * A response or progress frame (a handler's result or detail: arbitrary values) crosses as a
 * JSON round trip held to the writer's checks (nesting limit, JSON encodability, frame size;
 * {@link FrameEncodeError} like `FrameConnection.send`), so the orchestrator sees exactly what it
 * would have decoded (a `Date` becomes its string, `undefined` members vanish). Requests, cancels and pings are built
 * by the orchestrator from JSON data and cross as they are, checked for nesting only: a request
 * beyond the frame size limit, which a socket would refuse, is handed over.
 */
class MemoryChannel extends FrameChannelBase {
  peer!: MemoryChannel;
  private inbox: Frame[] = [];
  private peerEnded = false;
  private scheduled = false;

  send(frame: Frame): boolean {
    if (this.closedWith) return false;
    // A progress detail is handler data too: it crosses as it would over a socket, and a later
    // change to the handler's object cannot reach the orchestrator.
    if (frame.type === "response" || frame.type === "progress")
      this.peer.deliver(JSON.parse(frameJson(frame)) as Frame);
    else {
      checkEncodableDepth(frame);
      this.peer.deliver(frame);
    }
    return true;
  }

  close(): void {
    if (this.closedWith) return;
    this.shutdown({ kind: "local" });
    this.peer.end();
  }

  private deliver(frame: Frame): void {
    if (this.closedWith || this.peerEnded) return;
    this.inbox.push(frame);
    this.schedule();
  }

  /** The peer closed: what it sent before still arrives, then this side sees EOF. */
  private end(): void {
    this.peerEnded = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const frames = this.inbox;
    this.inbox = [];
    for (const frame of frames) {
      if (this.closedWith) return;
      this.handlers.frame?.(frame);
    }
    if (this.peerEnded && this.inbox.length === 0) this.shutdown({ kind: "eof" });
  }

  private shutdown(reason: CloseReason): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    this.inbox = [];
    this.handlers.close?.(reason);
  }
}

/**
 * Two connected in-process frame channels: what one sends, the other receives. Used to serve a
 * runner runtime inside the orchestrator (`transport = "inprocess"`) without a socket.
 */
export function memoryChannelPair(): [FrameChannel, FrameChannel] {
  const a = new MemoryChannel();
  const b = new MemoryChannel();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
