// Node runner for the bench's `live` scenario: the conformance handler set (conformance/
// handlers.md, compiled: `npm run build`) plus `live_echo`, which reports one progress update,
// writes `chunks` output chunks (default 10) and returns its params like `echo`. The
// conformance runner itself stays exactly the standard set (its contract: nothing else may be
// registered), so the handler lives here; the scenario runs both its plain (`echo`) and its
// live jobs against this program, so the only difference measured is the handler.
//
//   node bench/node/live-runner.mjs --unix-socket PATH   (any flag the Node runner accepts)
import registry from "../../runners/node/dist/examples/conformance-handlers.js";
import { runFromArgs } from "../../runners/node/dist/src/index.js";

registry.register("live_echo", (request, _signal, ctx) => {
  const params = request.params ?? {};
  const chunks = typeof params.chunks === "number" ? params.chunks : 10;
  ctx.progress(0.5, "halfway", null);
  for (let i = 0; i < chunks; i++) ctx.output.write(`chunk ${i} of job ${request.job_id}\n`);
  return params;
});

await runFromArgs(registry);
