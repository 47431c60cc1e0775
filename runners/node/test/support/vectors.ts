import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** One entry of protocol/vectors/manifest.json. */
export interface Vector {
  name: string;
  encoding: "json" | "msgpack";
  kind: "valid" | "invalid" | "accepted";
  file: string;
  description: string;
  frames?: unknown[];
  error?: string | null;
  action?: "close" | "reply_error" | "ignore";
  reply?: Record<string, unknown>;
}

const vectorsDir = fileURLToPath(new URL("../../../../protocol/vectors/", import.meta.url));

/** Every golden vector, with its bytes. */
export function loadVectors(): Array<Vector & { bytes: Buffer }> {
  const manifest = JSON.parse(readFileSync(`${vectorsDir}manifest.json`, "utf8")) as {
    vectors: Vector[];
  };
  return manifest.vectors.map((v) => ({ ...v, bytes: readFileSync(`${vectorsDir}${v.file}`) }));
}
