/**
 * `@rrqkit/runner/contracts`: job contracts (a catalog of JSON Schemas of each job's params and
 * result) and their validation, shared by the producer, the runner and `rrq jobs`.
 *
 * ```ts
 * const catalog = JobCatalog.load("jobs");
 * const problem = catalog.checkParams("send_email", { to: 1 });
 * // { functionName: "send_email", field: "/to", message: "send_email: params/to must be string" }
 * ```
 */
export { CatalogError, JobCatalog, loadJobCatalog, type JobContract } from "./catalog.js";
export { type ParamsProblem } from "./validate.js";
export { isObject, pointerToken, walkSchema } from "./schema-walk.js";
