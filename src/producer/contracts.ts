/**
 * Job contracts in the producer (design: docs/contracts.md): the run-time check of params
 * against the catalog, and the compile-time argument types of a `Producer<Jobs>`.
 */
import type { ParamsOf } from "@rrqkit/runner";
import type { JobCatalog } from "@rrqkit/runner/contracts";
import { InvalidParamsError } from "../errors.js";
import type { EnqueueOptions } from "./options.js";

/**
 * Throws {@link InvalidParamsError} when `params` break the contract of `functionName` in
 * `catalog` (the first failing field, as every binding reports it). A function the catalog does
 * not list, or no catalog at all, is not checked. `where` prefixes the message (`items[3]`).
 */
export function checkParamsContract(
  catalog: JobCatalog | undefined,
  functionName: string,
  params: unknown,
  where?: string,
): void {
  if (catalog === undefined) return;
  const problem = catalog.checkParams(functionName, params ?? {});
  if (problem === null) return;
  const message = where === undefined ? problem.message : `${where}: ${problem.message}`;
  throw new InvalidParamsError(problem.functionName, problem.field, message);
}

/**
 * The arguments after the function name of `enqueue`: a typed job needs its params (they have
 * required fields); any other name keeps the untyped, optional params.
 */
export type EnqueueArgs<C, N extends string> = N extends keyof C
  ? [params: ParamsOf<C, N>, options?: EnqueueOptions]
  : [params?: Record<string, unknown>, options?: EnqueueOptions];

/** One item of `enqueueMany` on a `Producer<C>`, for its function name `N`. */
export type TypedBulkItem<C, N extends string> = N extends keyof C
  ? { functionName: N; params: ParamsOf<C, N>; options?: EnqueueOptions }
  : { functionName: N; params?: Record<string, unknown>; options?: EnqueueOptions };

/** What `enqueueMany` infers its items from (checked against {@link BulkItemsOf}). */
export type LooseBulkItems = readonly {
  functionName: string;
  params?: object;
  options?: EnqueueOptions;
}[];

/**
 * Each item of `T` checked by its own function name: a catalogued job's item must carry its
 * params type, other items take the untyped `params` (a `BulkItem[]` stays untyped).
 */
export type BulkItemsOf<C, T extends LooseBulkItems> = {
  [I in keyof T]: TypedBulkItem<C, T[I]["functionName"]>;
};
