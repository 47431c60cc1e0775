import type { CronApi } from "../../api/cron.js";
import type { DlqBulkResult, DlqSelection, RrqApi } from "../../api/index.js";
import { quietWorker, resumeWorker } from "../../control/quiet.js";
import { healthKey } from "../../store/keys.js";
import { HttpError } from "./http.js";

/**
 * The dashboard's POST actions, each one call of the data API the CLI uses (so a click does what
 * the matching `rrq` command does). Refusals the API reports as values (a job no longer
 * waiting, an active job) become 409 errors with the API's reason as the code.
 */

/** Ids of a dry run listed in the answer, at most (the count is always exact). */
const DRY_RUN_IDS = 100;
/** Longest pause reason accepted (it is shown on every queue listing). */
const MAX_REASON = 500;

const str = (value: unknown): string | undefined =>
  typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;

const refused = (reason: string, message: string) =>
  new HttpError(reason === "not_found" ? 404 : 409, reason, message);

/** The DLQ selection of a bulk action's `filters` (`name`, `queue`, `function`). */
function selectionOf(body: Record<string, unknown>): DlqSelection {
  const filters = (body.filters ?? {}) as Record<string, unknown>;
  if (typeof filters !== "object" || filters === null || Array.isArray(filters))
    throw new HttpError(400, "invalid_argument", "filters must be an object");
  if (str(filters.error) !== undefined)
    throw new HttpError(
      400,
      "invalid_argument",
      "bulk actions filter by queue and function (an error filter is for viewing only)",
    );
  const queue = str(filters.queue);
  const functionName = str(filters.function);
  return {
    ...(str(filters.name) ? { dlq: str(filters.name) } : {}),
    ...(queue ? { queue } : {}),
    ...(functionName ? { functionName } : {}),
    all: queue === undefined && functionName === undefined,
  };
}

/** A bulk result as JSON: the selected ids cut to the first {@link DRY_RUN_IDS}. */
function bulkJson(result: DlqBulkResult, dryRun: boolean) {
  return {
    ...result,
    dryRun,
    count: dryRun ? result.selected.length : result.done,
    selected: result.selected.slice(0, DRY_RUN_IDS),
  };
}

/** Runs the POST actions against one data API. */
export class DashboardActions {
  constructor(
    private readonly api: RrqApi,
    private readonly cron: CronApi | undefined,
  ) {}

  /** `jobs/:id/<action>`. */
  async job(id: string, action: string, body: Record<string, unknown>): Promise<unknown> {
    switch (action) {
      case "cancel": {
        const result = await this.api.jobs.cancel(id);
        if (!result.ok)
          throw refused(result.reason, `cannot cancel job '${id}': ${describe(result)}`);
        return result;
      }
      case "requeue": {
        const hash = await this.api.jobs.hash(id);
        if (!hash) throw new HttpError(404, "not_found", `job '${id}' not found`);
        if (hash.status !== "FAILED")
          throw new HttpError(
            409,
            "not_failed",
            `job '${id}' is ${hash.status ?? "unknown"}, not in a DLQ`,
          );
        const result = await this.api.dlq.requeue({
          jobId: id,
          ...(hash.dlq_name ? { dlq: hash.dlq_name } : {}),
        });
        if (result.done === 0)
          throw new HttpError(409, "not_in_dlq", `job '${id}' is not in its DLQ any more`);
        return bulkJson(result, false);
      }
      case "replay": {
        const queue = str(body.queue);
        return { jobId: await this.api.jobs.replay(id, queue ? { queue } : {}) };
      }
      case "delete": {
        const result = await this.api.jobs.delete(id);
        if (!result.ok)
          throw refused(
            result.reason,
            result.reason === "active"
              ? `job '${id}' is running; cancel it first`
              : `job '${id}' not found`,
          );
        return result;
      }
      case "reschedule": {
        const at = body.at;
        const when =
          typeof at === "number" ? at : typeof at === "string" ? Date.parse(at) : Number.NaN;
        if (!Number.isFinite(when))
          throw new HttpError(400, "invalid_argument", "at must be epoch ms or an ISO 8601 time");
        const result = await this.api.jobs.reschedule(id, when);
        if (!result.ok)
          throw refused(result.reason, `cannot reschedule job '${id}': ${describe(result)}`);
        return result;
      }
      default:
        throw new HttpError(404, "not_found", `no job action '${action}'`);
    }
  }

  /** `dlq/requeue` and `dlq/purge`: `{filters, dryRun, confirm}`. */
  async dlq(action: string, body: Record<string, unknown>): Promise<unknown> {
    if (action !== "requeue" && action !== "purge")
      throw new HttpError(404, "not_found", `no DLQ action '${action}'`);
    const selection = selectionOf(body);
    const dryRun = body.dryRun === true;
    if (!dryRun && body.confirm !== true)
      throw new HttpError(
        400,
        "confirm_required",
        `a bulk ${action} needs "confirm": true (or "dryRun": true to count first)`,
      );
    const result =
      action === "requeue"
        ? await this.api.dlq.requeue(selection, { dryRun })
        : await this.api.dlq.purge(selection, { dryRun });
    return bulkJson(result, dryRun);
  }

  /** `cron/:id/trigger`. */
  async cronTrigger(id: string): Promise<unknown> {
    if (!this.cron) throw new HttpError(404, "not_found", "no cron entries are configured");
    return { jobId: await this.cron.trigger(id) };
  }

  /**
   * `queues/:name/pause` (`{reason?}`) and `queues/:name/resume`: `rrq queue pause|resume`. A
   * bad queue name is a 400 (the data API's usage error).
   */
  async queue(name: string, action: string, body: Record<string, unknown>): Promise<unknown> {
    if (action !== "pause" && action !== "resume")
      throw new HttpError(404, "not_found", `no queue action '${action}'`);
    if (action === "resume") {
      const result = await this.api.flow.resumeQueue(name);
      return {
        ok: true,
        queue: result.queue,
        paused: false,
        wasPaused: result.wasPaused ?? null,
      };
    }
    if (body.reason !== undefined && typeof body.reason !== "string")
      throw new HttpError(400, "invalid_argument", "reason must be a string");
    if (typeof body.reason === "string" && body.reason.length > MAX_REASON)
      throw new HttpError(
        400,
        "invalid_argument",
        `reason is longer than ${MAX_REASON} characters`,
      );
    const result = await this.api.flow.pauseQueue(name, str(body.reason));
    return { ok: true, queue: result.queue, paused: result.paused, wasPaused: result.wasPaused };
  }

  /** `workers/:id/quiet` and `workers/:id/resume`. */
  async worker(id: string, action: string): Promise<unknown> {
    if (action !== "quiet" && action !== "resume")
      throw new HttpError(404, "not_found", `no worker action '${action}'`);
    if (action === "quiet") {
      if ((await this.api.redis.exists(healthKey(id))) === 0)
        throw new HttpError(404, "not_found", `no live worker '${id}'`);
      await quietWorker(this.api.redis, id);
      return { ok: true, workerId: id, quiet: true };
    }
    const wasQuiet = await resumeWorker(this.api.redis, id);
    return { ok: true, workerId: id, quiet: false, wasQuiet };
  }
}

function describe(result: { reason: string; status?: string }): string {
  const status = result.status ? ` (status ${result.status})` : "";
  switch (result.reason) {
    case "not_found":
      return "not found";
    case "not_waiting":
      return `it is not waiting${status}`;
    case "not_in_queue":
    case "no_queue":
      return `it is not in its queue${status}`;
    case "running_unfenced":
      return `it runs on an orchestrator that cannot cancel it${status}`;
    default:
      return `${result.reason}${status}`;
  }
}
