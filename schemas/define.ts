import type { z } from "zod";

/**
 * An event's subject and its schema travel as one value: producers, consumers and the bridge import the
 * same object, so a subject can never drift from the shape it carries.
 */
export interface EventType<S extends string = string, Schema extends z.ZodType = z.ZodType> {
  readonly subject: S;
  readonly schema: Schema;
}

/** The parsed (output) data of an event type. */
export type EventData<T> = T extends EventType<string, infer Schema> ? z.output<Schema> : never;

/** What a producer may pass for an event type (before defaults are applied). */
export type EventInput<T> = T extends EventType<string, infer Schema> ? z.input<Schema> : never;

/** Versioned subjects only: `<domain>.<event>.v<N>`, so a breaking change always gets a new subject. */
const SUBJECT = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[1-9][0-9]*$/;

export function defineEvent<const S extends string, Schema extends z.ZodType>(
  subject: S,
  schema: Schema,
): EventType<S, Schema> {
  if (!SUBJECT.test(subject)) {
    throw new TypeError(`event subject "${subject}" must look like <domain>.<event>.v<N>`);
  }
  return Object.freeze({ subject, schema });
}
