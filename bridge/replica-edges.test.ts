import { afterEach, describe, expect, it, vi } from "vitest";
import { PauseWatcher } from "./control.ts";
import { createLogger } from "./logger.ts";
import { countReplicas, openPresence, Presence, presenceBucket } from "./presence.ts";
import { RatePacer } from "./rate-limit.ts";
import { pauseRecorder } from "./testing/pauses.ts";
import { ShareRecorder } from "./testing/presence.ts";
import { useHarness } from "./testing/route-fixture.ts";

const silent = createLogger({ level: "silent" });
const { h, cleanups } = useHarness();
const DAY = 24 * 3_600_000;

function fakeKv(record: object) {
  const entry = {
    key: "pause.work",
    revision: 7,
    created: new Date(),
    operation: "PUT" as const,
    value: new TextEncoder().encode(JSON.stringify(record)),
  };
  return {
    get: async () => entry,
    watch: async () => ({ stop() {}, async *[Symbol.asyncIterator]() {} }),
  } as unknown as ConstructorParameters<typeof PauseWatcher>[0];
}

describe("timed operator pauses", () => {
  afterEach(() => vi.useRealTimers());

  it("`jetway pause --for 600h` (25 days, past what setTimeout takes) ends by itself", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "setInterval", "clearTimeout", "clearInterval", "Date"] });
    const now = Date.now();
    const kv = fakeKv({
      reason: "long",
      at: new Date(now).toISOString(),
      until: new Date(now + 25 * DAY).toISOString(),
    });
    const { calls, routes } = pauseRecorder("work");
    const watcher = new PauseWatcher(kv, routes, silent, 3_600_000);
    await watcher.start();
    expect(calls).toEqual(["long"]);
    await vi.advanceTimersByTimeAsync(26 * DAY);
    watcher.stop();
    expect(calls.at(-1)).toBe("resumed");
  });

  it("a `--for 10m` pause written by a CLI whose clock is 15 min behind still pauses, counted from when NATS stored it", async () => {
    const cliNow = Date.now() - 15 * 60_000;
    const kv = fakeKv({
      reason: "maintenance",
      at: new Date(cliNow).toISOString(),
      until: new Date(cliNow + 10 * 60_000).toISOString(),
    });
    const { calls, routes } = pauseRecorder("work");
    const watcher = new PauseWatcher(kv, routes, silent, 60_000);
    await watcher.start();
    watcher.stop();
    expect(calls).toEqual(["maintenance"]);
  });
});

describe("RatePacer with a share interval above setTimeout's limit", () => {
  it("does not spin waking its consumer every millisecond (1/h split over 1000 replicas)", async () => {
    let wakes = 0;
    const pacer = new RatePacer({ messages: 1, perMs: 3_600_000 }, () => {
      wakes++;
      pacer.take(1); // the consumer asks again on wake, as consumer.ts wake() does
    });
    pacer.share(1000);
    expect(pacer.take(1)).toBe(true);
    expect(pacer.take(1)).toBe(false);
    await new Promise((r) => setTimeout(r, 200));
    pacer.stop();
    expect(wakes).toBe(0);
  });
});

describe("Presence.stop during a tick on its way", () => {
  it("leaves no key behind once stop() has resolved", async () => {
    const control = { bucket: `edge-${Math.random().toString(36).slice(2, 8)}`, replicas: 1 };
    const real = await openPresence(h.nc, control, 5_000);
    let slow = false;
    // A put that takes 300 ms to reach the server (a slow NATS, a busy event loop).
    const kv = Object.assign(Object.create(real) as typeof real, {
      put: async (k: string, v: string) => {
        if (slow) await new Promise((r) => setTimeout(r, 300));
        return real.put(k, v);
      },
    });
    const presence = new Presence({
      kv,
      jsm: h.jsm,
      bucket: presenceBucket(control),
      routes: new Map([["paid", new ShareRecorder()]]),
      rateLimited: new Set(),
      log: silent,
      id: "victim",
      intervalMs: 100,
    });
    cleanups.push(() => presence.stop());
    await presence.start();
    slow = true;
    await new Promise((r) => setTimeout(r, 150)); // a tick's put is now on its way
    await presence.stop();
    await new Promise((r) => setTimeout(r, 500));
    const { keys } = await countReplicas(h.jsm, presenceBucket(control));
    expect([...keys]).toEqual([]);
  });
});
