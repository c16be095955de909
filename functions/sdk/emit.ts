import type { EventInput, EventType } from "../../schemas/define.ts";
import { describeIssues } from "./cloudevent.ts";
import { EmitValidationError } from "./errors.ts";
import type { EmitOptions, EmittedEvent } from "./types.ts";

/**
 * Validates data a handler emits, before anything leaves the function: a consumer downstream must never
 * receive an event that breaks its contract. The parsed value (defaults applied, unknown keys dropped)
 * is what gets sent.
 */
export function toEmitted<U extends EventType>(
  type: U,
  data: EventInput<U>,
  options: EmitOptions = {},
): EmittedEvent {
  const result = type.schema.safeParse(data);
  if (!result.success) {
    throw new EmitValidationError(type.subject, `emitted ${describeIssues(type.subject, result.error)}`, {
      cause: result.error,
    });
  }
  const event: EmittedEvent = { subject: type.subject, data: result.data };
  if (options.id !== undefined) event.id = options.id;
  if (options.headers !== undefined) event.headers = options.headers;
  return event;
}
