import { describe, expect, it } from "vitest";
import { z } from "zod";
import { DeliveryError } from "./cloudevent.ts";
import { SignatureError } from "./contract.ts";
import { EmitValidationError, InvalidEventError, RetryableError } from "./errors.ts";
import { classifyError, retryAfterHeader } from "./outcome.ts";

describe("classifyError", () => {
  it.each([
    [new SignatureError("expired", "too old"), 401, "invalid_signature", false, false],
    [new DeliveryError(400, "bad_request", "invalid JSON: x"), 400, "bad_request", true, false],
    [new DeliveryError(422, "no_handler", "no handler for a.b.v1"), 422, "no_handler", true, false],
    [new RetryableError("busy", { retryAfterS: 3 }), 503, "retryable", false, false],
    [new InvalidEventError("bad"), 422, "invalid_event", true, false],
    [new EmitValidationError("a.b.v1", "emitted a.b.v1: x: bad"), 500, "invalid_emit", false, true],
    [new Error("password=hunter2"), 500, "internal", false, true],
    ["a thrown string", 500, "internal", false, true],
  ])("%s → %i %s", (err, status, code, deadLetter, internal) => {
    expect(classifyError(err)).toMatchObject({ status, code, deadLetter, internal });
  });

  it("keeps the retry delay and never echoes an unknown error's message", () => {
    expect(classifyError(new RetryableError("busy", { retryAfterS: 3 })).retryAfterS).toBe(3);
    expect(classifyError(new Error("password=hunter2")).message).toBe("internal error");
  });

  it("rejects a negative retry delay at the throw site", () => {
    expect(() => new RetryableError("x", { retryAfterS: -1 })).toThrow(RangeError);
  });

  it("keeps the cause", () => {
    const cause = new z.ZodError([]);
    expect(new InvalidEventError("x", { cause }).cause).toBe(cause);
  });
});

describe("retryAfterHeader", () => {
  it("rounds up to whole seconds", () => {
    expect([0, 1, 1.2, 2.5].map(retryAfterHeader)).toEqual(["0", "1", "2", "3"]);
  });
});
