/**
 * Stable decoding error codes (RUNNER_PROTOCOL.md §11). Every binding reports the same code for
 * the same bad input; tests compare codes, never messages.
 */
export type DecodeErrorCode =
  | "frame_empty"
  | "frame_too_large"
  | "frame_truncated"
  | "invalid_utf8"
  | "malformed_payload"
  | "invalid_envelope"
  | "unknown_frame_type"
  | "invalid_frame";

/** A frame could not be decoded. Fatal to the connection it arrived on. */
export class FrameDecodeError extends Error {
  override readonly name = "FrameDecodeError";
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

/** A frame could not be written (too large, or not encodable). Nothing was sent. */
export class FrameEncodeError extends Error {
  override readonly name = "FrameEncodeError";
  constructor(
    readonly code: "frame_too_large" | "not_encodable",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}
