import type { Context } from "hono";
import type { Logger } from "pino";
import type { EventType } from "../../schemas/define.ts";
import { toEmitted } from "./emit.ts";
import { EmitValidationError } from "./errors.ts";
import { messageLogger } from "./logger.ts";
import { classifyError, type ErrorOutcome } from "./outcome.ts";
import type {
  BatchContext,
  BatchHandler,
  EmittedEvent,
  FailOptions,
  Handler,
  HandlerContext,
  InvokedEvent,
  Vars,
} from "./types.ts";

/** The handlers registered for one event type. */
export interface Registration {
  type: EventType;
  handle?: Handler<EventType>;
  batch?: BatchHandler<EventType>;
}

/** One entry of a batch response's `failures`; wire names are snake_case like the rest of the contract. */
export interface BatchFailure {
  id: string;
  reason: string;
  retry_after?: number;
  dead_letter?: boolean;
}

export interface GroupResult {
  failures: Map<string, BatchFailure>;
  events: Map<string, EmittedEvent[]>;
}

/** What handlers get besides the event itself. */
export interface RunScope {
  log: Logger;
  level: string | undefined;
  vars: Vars;
  c: Context;
}

export function failureFromOutcome(id: string, outcome: ErrorOutcome): BatchFailure {
  const failure: BatchFailure = { id, reason: outcome.message };
  if (outcome.retryAfterS !== undefined) failure.retry_after = outcome.retryAfterS;
  if (outcome.deadLetter) failure.dead_letter = true;
  return failure;
}

function failureFromOptions(id: string, options: FailOptions): BatchFailure {
  const failure: BatchFailure = { id, reason: options.reason };
  if (options.retryAfterS !== undefined) {
    if (!(options.retryAfterS >= 0)) throw new RangeError(`retryAfterS must be >= 0 for ${id}`);
    failure.retry_after = options.retryAfterS;
  }
  if (options.deadLetter) failure.dead_letter = true;
  return failure;
}

/** Per-message handler call: the context a `.handle` function sees. Emits land in `out`. */
export function handlerContext<T extends EventType>(
  event: InvokedEvent<T>,
  log: Logger,
  scope: RunScope,
  out: EmittedEvent[],
): HandlerContext<T> {
  return {
    event,
    log,
    env: scope.vars,
    c: scope.c,
    emit: (type, data, options) => {
      out.push(toEmitted(type, data, options));
    },
  };
}

function logFailure(log: Logger, err: unknown, outcome: ErrorOutcome): void {
  if (outcome.internal) log.error({ err }, "handler failed");
  else log.warn({ reason: outcome.message, code: outcome.code }, "handler refused the event");
}

/**
 * Runs every valid event of one type in a batch. A `.handleBatch` handler sees them all at once; a plain
 * `.handle` handler is called once per event, in order. Events of failed messages are dropped: the bridge
 * only publishes for messages it acks.
 */
export async function runGroup(
  reg: Registration,
  events: InvokedEvent[],
  scope: RunScope,
): Promise<GroupResult> {
  const failures = new Map<string, BatchFailure>();
  const emitted = new Map<string, EmittedEvent[]>();
  if (reg.batch) {
    const ids = new Set(events.map((e) => e.id));
    const known = (id: string, what: string) => {
      if (!ids.has(id))
        throw new Error(`${what}(): "${id}" is not an event of this ${reg.type.subject} batch`);
    };
    const log = scope.log.child({ subject: reg.type.subject, count: events.length });
    const ctx: BatchContext = {
      log,
      env: scope.vars,
      c: scope.c,
      fail: (id, options) => {
        known(id, "fail");
        failures.set(id, failureFromOptions(id, options));
      },
      failWith: (id, err) => {
        known(id, "failWith");
        const outcome = classifyError(err);
        logFailure(log.child({ id }), err, outcome);
        failures.set(id, failureFromOutcome(id, outcome));
      },
      emitFor: (id, type, data, options) => {
        known(id, "emitFor");
        let event: EmittedEvent;
        try {
          event = toEmitted(type, data, options);
        } catch (err) {
          // One message's event breaking the contract fails that message, as it would a single delivery;
          // its batch-mates, whose work is done (often committed with it), keep their events.
          if (!(err instanceof EmitValidationError)) throw err;
          ctx.failWith(id, err);
          return;
        }
        const list = emitted.get(id) ?? [];
        list.push(event);
        emitted.set(id, list);
      },
      emitterFor: (id) => {
        known(id, "emitterFor");
        return (type, data, options) => ctx.emitFor(id, type, data, options);
      },
    };
    try {
      await reg.batch(events, ctx);
    } catch (err) {
      // A throw means the handler's work for the whole group did not happen (e.g. its transaction rolled
      // back): fail every message not failed explicitly, and publish nothing.
      const outcome = classifyError(err);
      logFailure(log, err, outcome);
      for (const id of ids) if (!failures.has(id)) failures.set(id, failureFromOutcome(id, outcome));
      emitted.clear();
    }
  } else if (reg.handle) {
    for (const event of events) {
      const log = messageLogger(scope.log, event, scope.level);
      const out: EmittedEvent[] = [];
      try {
        await reg.handle(event, handlerContext(event, log, scope, out));
        if (out.length > 0) emitted.set(event.id, out);
      } catch (err) {
        const outcome = classifyError(err);
        logFailure(log, err, outcome);
        failures.set(event.id, failureFromOutcome(event.id, outcome));
      }
    }
  }
  for (const id of failures.keys()) emitted.delete(id);
  return { failures, events: emitted };
}
