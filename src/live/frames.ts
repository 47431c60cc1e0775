/**
 * The live frames as the orchestrator reads them (issue 23, live-design §2-§3). Declared here
 * so the orchestrator does not depend on when the generated wire types gain them; they match
 * schemas/v2 (progress, output, ExecutionRequest.live, Hello.tags).
 */

/** `ExecutionRequest.live`: what the runner may send for this request. */
export interface LiveRequest {
  progress: boolean;
  output: boolean;
  /** A runner sends at most one progress frame per interval per request. */
  progress_interval_ms: number;
  /** Output bytes the runner sends for this request before it reports a truncation. */
  output_max_bytes: number;
}

/** A `progress` frame's payload (runner → orchestrator). */
export interface ProgressPayload {
  job_id: string;
  request_id: string;
  progress: number | null;
  message: string | null;
  detail: unknown;
}

/** Where an output chunk came from. */
export type OutputStreamName = "handler" | "stdout" | "stderr";

/** An `output` frame's payload (runner → orchestrator). */
export interface OutputPayload {
  job_id: string;
  request_id: string;
  /** Per request, consecutive from 0. */
  seq: number;
  stream: OutputStreamName;
  data: string;
  truncated: boolean;
  dropped_bytes: number;
}

/** The hello features that enable live frames. */
export const LIVE_FEATURES = ["progress", "output"] as const;

/** Receives a request's live frames ({@link RunnerConnection.execute}). */
export interface LiveListener {
  progress?(payload: ProgressPayload): void;
  output?(payload: OutputPayload): void;
}

/** Default `progress_interval_ms` sent to runners. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 200;
