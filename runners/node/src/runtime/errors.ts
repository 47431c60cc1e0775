/**
 * Errors a handler throws to steer what the orchestrator does with the job (RUNNER_PROTOCOL.md §7).
 */

// A registry-wide symbol rather than `instanceof` alone: two copies of this package in one
// process (a handler library bundling its own) must still recognise each other's errors.
const NON_RETRYABLE = Symbol.for("rrqkit.nonRetryable");

/**
 * Fails the job permanently: thrown from a handler, the attempt ends with an `error` outcome of
 * the reserved type `non_retryable` (message = this error's message, traceback = its stack).
 * rrqkit's orchestrator moves the job to the DLQ at once instead of retrying it; RRQ's
 * orchestrator does not know the type and retries it like any other error.
 *
 * ```ts
 * if (!isValidCard(params.card)) throw new NonRetryableError("card number is invalid");
 * ```
 *
 * Subclasses keep the behaviour whatever `name` they set.
 */
export class NonRetryableError extends Error {
  /** @param message becomes the job's `last_error` (with a "not retried" note). */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NonRetryableError";
  }

  /**
   * True for a NonRetryableError (or subclass), from this or another copy of the package. A plain
   * boolean, not a type guard: the class is structurally an Error, so a guard would narrow the
   * other branch to `never`.
   */
  static isNonRetryable(value: unknown): boolean {
    return (
      value instanceof NonRetryableError ||
      (typeof value === "object" && value !== null && NON_RETRYABLE in value)
    );
  }
}

Object.defineProperty(NonRetryableError.prototype, NON_RETRYABLE, { value: true });
