import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { join } from "node:path";
import { gunzipSync, inflateSync } from "node:zlib";
import protobuf from "protobufjs";
import { repoRoot } from "./cases.js";
import { text } from "./matching.js";

/** An attribute value with its OTLP type, so cases can check types as well as values. */
export interface AttributeValue {
  type: "string" | "int" | "double" | "bool" | "array" | "kvlist" | "bytes" | "empty";
  value: unknown;
}

/** One span as the receiver decoded it (from protobuf or JSON alike). */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** Empty string when the span has no parent. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, AttributeValue>;
  /** The span's events (e.g. OpenTelemetry's `exception` event), in order. */
  events: Array<{ name: string; attributes: Record<string, AttributeValue> }>;
  status: { code: number; message: string };
  resource: Record<string, AttributeValue>;
  /** How the exporter sent it. */
  encoding: "protobuf" | "json";
}

type Json = Record<string, unknown>;

const hex = (value: unknown): string =>
  value instanceof Uint8Array ? Buffer.from(value).toString("hex") : text(value);

/** Converts an OTLP AnyValue (protobuf object or JSON mapping) to a typed value. */
function anyValue(v: Json | undefined): AttributeValue {
  if (!v) return { type: "empty", value: null };
  if ("stringValue" in v) return { type: "string", value: v.stringValue };
  if ("boolValue" in v) return { type: "bool", value: v.boolValue };
  if ("intValue" in v) return { type: "int", value: Number(v.intValue) };
  if ("doubleValue" in v) return { type: "double", value: Number(v.doubleValue) };
  if ("arrayValue" in v) {
    const values = ((v.arrayValue as Json).values ?? []) as Json[];
    return { type: "array", value: values.map((x) => anyValue(x).value) };
  }
  if ("kvlistValue" in v) {
    return { type: "kvlist", value: attributes((v.kvlistValue as Json).values as Json[]) };
  }
  if ("bytesValue" in v) return { type: "bytes", value: hex(v.bytesValue) };
  return { type: "empty", value: null };
}

function attributes(list: Json[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of list ?? []) out[String(kv.key)] = anyValue(kv.value as Json | undefined);
  return out;
}

/** Flattens an ExportTraceServiceRequest (as a plain object, camelCase) into spans. */
function spansOf(request: Json, encoding: SpanRecord["encoding"]): SpanRecord[] {
  const out: SpanRecord[] = [];
  for (const rs of (request.resourceSpans ?? []) as Json[]) {
    const resource = attributes((rs.resource as Json | undefined)?.attributes as Json[]);
    for (const ss of (rs.scopeSpans ?? []) as Json[]) {
      for (const s of (ss.spans ?? []) as Json[]) {
        const status = (s.status ?? {}) as Json;
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          name: text(s.name),
          kind: Number(s.kind ?? 0),
          attributes: attributes(s.attributes as Json[]),
          events: ((s.events ?? []) as Json[]).map((e) => ({
            name: text(e.name),
            attributes: attributes(e.attributes as Json[]),
          })),
          status: { code: Number(status.code ?? 0), message: text(status.message) },
          resource,
          encoding,
        });
      }
    }
  }
  return out;
}

let requestType: protobuf.Type | undefined;
function exportRequestType(): protobuf.Type {
  if (!requestType) {
    const text = readFileSync(join(repoRoot(), "conformance", "otlp", "trace.proto"), "utf8");
    requestType = protobuf
      .parse(text, { keepCase: false })
      .root.lookupType("opentelemetry.proto.ExportTraceServiceRequest");
  }
  return requestType;
}

/** Decodes an OTLP/HTTP trace export body (protobuf or JSON). Exported for the harness tests. */
export function decodeExport(body: Buffer, contentType: string): SpanRecord[] {
  if (contentType.includes("json")) {
    return spansOf(JSON.parse(body.toString("utf8")) as Json, "json");
  }
  const type = exportRequestType();
  const message = type.decode(body);
  const object = type.toObject(message, { longs: String, enums: Number, bytes: Array });
  return spansOf(convertBytes(object) as Json, "protobuf");
}

/** protobufjs gives bytes as number arrays with `bytes: Array`; turn them into Uint8Arrays. */
function convertBytes(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) {
    if (/Id$/.test(key) || key === "bytesValue") return Uint8Array.from(value as number[]);
    return value.map((v) => convertBytes(v));
  }
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value as Json).map(([k, v]) => [k, convertBytes(v, k)]),
    );
  }
  return value;
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

/**
 * An OTLP/HTTP trace receiver on 127.0.0.1: accepts `POST /v1/traces` with protobuf or JSON
 * bodies (gzip or deflate encoded or not), and keeps every span. Bindings are pointed at it
 * with the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variable.
 */
export class OtlpReceiver {
  readonly spans: SpanRecord[] = [];
  readonly errors: string[] = [];
  private waiters: Array<() => void> = [];
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Starts listening on a free port. */
  static start(): Promise<OtlpReceiver> {
    return new Promise((resolve, reject) => {
      let receiver: OtlpReceiver | undefined;
      const server = createServer((req, res) => {
        void receiver!.handle(req).then(
          (status) => {
            const json = String(req.headers["content-type"] ?? "").includes("json");
            res.writeHead(status, {
              "content-type": json ? "application/json" : "application/x-protobuf",
            });
            res.end(json ? "{}" : undefined);
          },
          () => res.writeHead(500).end(),
        );
      });
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        receiver = new OtlpReceiver(server, (server.address() as { port: number }).port);
        resolve(receiver);
      });
    });
  }

  /** The value for OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. */
  get tracesUrl(): string {
    return `http://127.0.0.1:${this.port}/v1/traces`;
  }

  /** Environment that points an OpenTelemetry SDK at this receiver, exporting quickly. */
  get env(): Record<string, string> {
    return {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: this.tracesUrl,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_TRACES_SAMPLER: "always_on",
    };
  }

  private async handle(req: IncomingMessage): Promise<number> {
    if (req.method !== "POST" || !req.url?.startsWith("/v1/traces")) return 404;
    let body = await readBody(req);
    const encoding = String(req.headers["content-encoding"] ?? "");
    if (encoding.includes("gzip")) body = gunzipSync(body);
    else if (encoding.includes("deflate")) body = inflateSync(body);
    try {
      this.spans.push(...decodeExport(body, String(req.headers["content-type"] ?? "")));
    } catch (error) {
      this.errors.push(`undecodable OTLP export: ${(error as Error).message}`);
      return 400;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
    return 200;
  }

  /** Waits for a span matching `predicate` (event-driven; bounded by `timeoutMs`). */
  async waitFor(
    predicate: (span: SpanRecord) => boolean,
    timeoutMs: number,
  ): Promise<SpanRecord | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.spans.find(predicate);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
