import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { exceptionEventAttributes, parentContextFrom } from "@rrqkit/runner/otel";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-node";
import { jobAttributes, jobEndAttributes, type JobTelemetry } from "./otel.js";

/**
 * rrq.job spans exported by OTLP/HTTP protobuf to `endpoint` (or handed to a span processor, for
 * tests and embedding). The parent comes from the job's trace_context;
 * outcomes error, fatal, timeout and transport_error set the span status to ERROR.
 */
export function createJobTelemetry(
  endpoint: string | SpanProcessor,
  serviceName = "rrq",
): JobTelemetry {
  const processor =
    typeof endpoint === "string"
      ? new BatchSpanProcessor(new OTLPTraceExporter({ url: endpoint }))
      : endpoint;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": serviceName }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer("rrq.orchestrator");
  return {
    startJob(start) {
      const parent = parentContextFrom(start.job.traceContext);
      const span = tracer.startSpan(
        "rrq.job",
        { kind: SpanKind.CONSUMER, attributes: jobAttributes(start) },
        parent,
      );
      return {
        end(result) {
          span.setAttributes(jobEndAttributes(result));
          const exception = exceptionEventAttributes({
            message: result.errorMessage ?? "",
            type: result.errorType,
            traceback: result.traceback,
          });
          if (exception) span.addEvent("exception", exception);
          if (!["success", "retry"].includes(result.outcome)) {
            span.setStatus({ code: SpanStatusCode.ERROR, message: result.errorMessage });
          }
          span.end();
        },
      };
    },
    shutdown: () => provider.shutdown(),
  };
}
