/**
 * A small OTLP/HTTP metrics receiver for tests: accepts `POST /v1/metrics` (protobuf or JSON,
 * gzip or not) and keeps every data point, flattened. The protobuf schema is the subset of
 * opentelemetry/proto/metrics/v1 the SDK sends (gauges, sums, histograms).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { gunzipSync } from "node:zlib";
import protobuf from "protobufjs";

const METRICS_PROTO = `
syntax = "proto3";
package otlp;
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; string schema_url = 3; }
message InstrumentationScope { string name = 1; string version = 2; }
message Metric {
  string name = 1; string description = 2; string unit = 3;
  oneof data { Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9; }
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message NumberDataPoint {
  repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  oneof value { double as_double = 4; sfixed64 as_int = 6; }
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  fixed64 count = 4; double sum = 5; repeated fixed64 bucket_counts = 6; repeated double explicit_bounds = 7;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; }
}
`;

/** One data point as received. */
export interface MetricPoint {
  /** Metric name, e.g. "rrq.jobs.completed". */
  name: string;
  unit: string;
  kind: "gauge" | "sum" | "histogram";
  attributes: Record<string, string | number | boolean>;
  /** Gauge/sum value, or the histogram's sum. */
  value: number;
  /** Histogram count (0 for gauges and sums). */
  count: number;
  resource: Record<string, string | number | boolean>;
  /** Which export (request) it came in, from 1. */
  batch: number;
}

type Json = Record<string, unknown>;

let requestType: protobuf.Type | undefined;
function exportType(): protobuf.Type {
  requestType ??= protobuf.parse(METRICS_PROTO).root.lookupType("otlp.ExportMetricsServiceRequest");
  return requestType;
}

function attributes(list: unknown): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of (list ?? []) as Json[]) {
    const v = (kv.value ?? {}) as Json;
    const value = v.stringValue ?? v.boolValue ?? v.intValue ?? v.doubleValue;
    out[String(kv.key)] =
      typeof value === "string" && "intValue" in v ? Number(value) : (value as string);
  }
  return out;
}

function points(request: Json, batch: number): MetricPoint[] {
  const out: MetricPoint[] = [];
  for (const rm of (request.resourceMetrics ?? []) as Json[]) {
    const resource = attributes((rm.resource as Json | undefined)?.attributes);
    for (const sm of (rm.scopeMetrics ?? []) as Json[]) {
      for (const m of (sm.metrics ?? []) as Json[]) {
        const kind = m.histogram ? "histogram" : m.sum ? "sum" : "gauge";
        const data = (m[kind] ?? {}) as Json;
        for (const p of (data.dataPoints ?? []) as Json[]) {
          out.push({
            name: typeof m.name === "string" ? m.name : "",
            unit: typeof m.unit === "string" ? m.unit : "",
            kind,
            attributes: attributes(p.attributes),
            value: Number(kind === "histogram" ? (p.sum ?? 0) : (p.asDouble ?? p.asInt ?? 0)),
            count: Number(p.count ?? 0),
            resource,
            batch,
          });
        }
      }
    }
  }
  return out;
}

/** Decodes one export body. */
export function decodeMetricsExport(body: Buffer, contentType: string, batch = 0): MetricPoint[] {
  if (contentType.includes("json")) return points(JSON.parse(body.toString("utf8")) as Json, batch);
  const type = exportType();
  const object = type.toObject(type.decode(body), { longs: String, enums: Number, oneofs: false });
  return points(object, batch);
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

/** The receiver; `points` grows with each export. */
export class OtlpMetricsReceiver {
  readonly points: MetricPoint[] = [];
  readonly errors: string[] = [];
  batches = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static start(): Promise<OtlpMetricsReceiver> {
    return new Promise((resolve, reject) => {
      let receiver: OtlpMetricsReceiver | undefined;
      const server = createServer((req, res) => {
        void receiver!.handle(req).then(
          (status) => res.writeHead(status, { "content-type": "application/x-protobuf" }).end(),
          () => res.writeHead(500).end(),
        );
      });
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        receiver = new OtlpMetricsReceiver(server, (server.address() as { port: number }).port);
        resolve(receiver);
      });
    });
  }

  /** The value for OTEL_EXPORTER_OTLP_METRICS_ENDPOINT. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/metrics`;
  }

  /** The data points of `name` in the latest export that had it. */
  latest(name: string): MetricPoint[] {
    const of = this.points.filter((p) => p.name === name);
    const batch = Math.max(0, ...of.map((p) => p.batch));
    return of.filter((p) => p.batch === batch);
  }

  private async handle(req: IncomingMessage): Promise<number> {
    if (req.method !== "POST" || !req.url?.startsWith("/v1/metrics")) return 404;
    let body = await readBody(req);
    if (String(req.headers["content-encoding"] ?? "").includes("gzip")) body = gunzipSync(body);
    try {
      const batch = ++this.batches;
      this.points.push(
        ...decodeMetricsExport(body, String(req.headers["content-type"] ?? ""), batch),
      );
    } catch (error) {
      this.errors.push(`undecodable OTLP metrics export: ${(error as Error).message}`);
      return 400;
    }
    return 200;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
