import { DeliveryError } from "./cloudevent.ts";
import { SignatureError } from "./contract.ts";
import { EmitValidationError, InvalidEventError, RetryableError } from "./errors.ts";

/** What an error means on the wire; single deliveries send it as a status, batches as a failure entry. */
export interface ErrorOutcome {
  status: number;
  code: string;
  /** Safe to send: never a stack or a driver's message. */
  message: string;
  retryAfterS?: number;
  deadLetter: boolean;
  /** A bug or an unexpected failure: log it with its stack. */
  internal: boolean;
}

/** The one table from thrown error to outcome; pure, so both response paths agree. */
export function classifyError(err: unknown): ErrorOutcome {
  if (err instanceof SignatureError) {
    const message = `signature ${err.reason}: ${err.message}`;
    return { status: 401, code: "invalid_signature", message, deadLetter: false, internal: false };
  }
  if (err instanceof DeliveryError) {
    return { status: err.status, code: err.code, message: err.message, deadLetter: true, internal: false };
  }
  if (err instanceof RetryableError) {
    const outcome: ErrorOutcome = {
      status: 503,
      code: "retryable",
      message: err.message,
      deadLetter: false,
      internal: false,
    };
    if (err.retryAfterS !== undefined) outcome.retryAfterS = err.retryAfterS;
    return outcome;
  }
  if (err instanceof InvalidEventError) {
    return { status: 422, code: "invalid_event", message: err.message, deadLetter: true, internal: false };
  }
  if (err instanceof EmitValidationError) {
    return { status: 500, code: "invalid_emit", message: err.message, deadLetter: false, internal: true };
  }
  return { status: 500, code: "internal", message: "internal error", deadLetter: false, internal: true };
}

/** Retry-After is whole seconds (RFC 9110); round up so the function is never asked again too early. */
export const retryAfterHeader = (seconds: number): string => String(Math.ceil(seconds));
