/**
 * Errors a function throws to steer what the bridge does with the message. One `onError` maps them onto
 * the invocation contract: RetryableError → 503 + Retry-After (nak with delay), InvalidEventError → 422
 * (dead-letter), anything else → 500 (retry, then dead-letter after max_deliver).
 */

/** A transient failure: try the message again, optionally not before `retryAfterS` seconds. */
export class RetryableError extends Error {
  override name = "RetryableError";
  readonly retryAfterS: number | undefined;
  constructor(message: string, options: { retryAfterS?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    if (options.retryAfterS !== undefined && !(options.retryAfterS >= 0)) {
      throw new RangeError(`retryAfterS must be a number >= 0, got ${options.retryAfterS}`);
    }
    this.retryAfterS = options.retryAfterS;
  }
}

/** The message can never succeed (bad data, broken invariant): do not retry it, dead-letter it. */
export class InvalidEventError extends Error {
  override name = "InvalidEventError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
  }
}

/** A handler emitted data that does not match the event type: a bug in the function, answered 500. */
export class EmitValidationError extends Error {
  override name = "EmitValidationError";
  readonly subject: string;
  constructor(subject: string, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.subject = subject;
  }
}

/** The error body of every non-2xx response a function gives. */
export interface ErrorBody {
  error: { code: string; message: string };
}
