/**
 * The rrqkit wire protocol for Node: codecs, framing, typed frames and transports. Shared by the
 * runner runtime and the orchestrator, so both sides run the same code.
 */
export * from "./constants.js";
export * from "./deadlines.js";
export * from "./errors.js";
export * from "./encoding.js";
export * from "./frame-decoder.js";
export * from "./frames.js";
export * from "./frame-connection.js";
export * from "./memory-channel.js";
export * from "./transports.js";
export * from "./traceback.js";
export type * from "./generated/wire.js";
