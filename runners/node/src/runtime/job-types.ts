/**
 * Compile-time job contracts: the types `rrq jobs types --lang ts` generates plug in here, so a
 * `Producer<Jobs>` and a `Registry<Jobs>` check params and results by function name. Names not
 * in the map keep the untyped signatures (params `Record<string, unknown>`, result `unknown`).
 *
 * ```ts
 * export interface Jobs {
 *   send_email: { params: SendEmailParams; result: SendEmailResult };
 * }
 * const registry = new Registry<Jobs>().register("send_email", (request) => ({
 *   message_id: `<${request.params.to}>`,
 * }));
 * ```
 */

/** The types of one job: its params object and (optionally) its handler's result. */
export interface JobSpec {
  params: object;
  result?: unknown;
}

/**
 * A map from function name to {@link JobSpec}. Written as a self-referencing constraint
 * (`C extends JobTypes<C>`) because a generated `interface Jobs {...}` has no index signature,
 * so it would not satisfy `Record<string, JobSpec>`.
 */
export type JobTypes<C = Record<string, JobSpec>> = { readonly [K in keyof C]: JobSpec };

/** No job is typed: every name takes `Record<string, unknown>` params (the default). */
export type Untyped = Record<never, never>;

/** The params type of `name` in `C`, or `Record<string, unknown>` for a name `C` lacks. */
export type ParamsOf<C, N extends string> = N extends keyof C
  ? C[N] extends { params: infer P }
    ? P
    : Record<string, unknown>
  : Record<string, unknown>;

/** The result type of `name` in `C`, or `unknown` for a name `C` lacks or without a result. */
export type ResultOf<C, N extends string> = N extends keyof C
  ? C[N] extends { result: infer R }
    ? R
    : unknown
  : unknown;

/** Whether `name` is a typed job of `C` (a plain `string` never is). */
export type IsTyped<C, N extends string> = N extends keyof C ? true : false;
