import { createServer } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Circuit, NO_BREAKER } from "./circuit.ts";
import { DLQ_HEADERS } from "./dead-letter-headers.ts";
import type { BridgeEventMap } from "./events.ts";
import { freePort } from "./free-port.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { type RouteFixture, routeFixture, useHarness } from "./testing/route-fixture.ts";

describe("Circuit", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function circuit(failures = 3) {
    const calls: string[] = [];
    const c = new Circuit(
      { failures, open_for: 100, max_open: 350 },
      {
        opened: (pauseMs, _reason, cause) =>
          calls.push(cause === "elsewhere" ? `open ${pauseMs} (elsewhere)` : `open ${pauseMs}`),
        halfOpened: () => calls.push("probe"),
        closed: () => calls.push("closed"),
        paused: (reason) => calls.push(`paused ${reason}`),
        resumed: () => calls.push("resumed"),
      },
    );
    return { c, calls };
  }

  it("opens after `failures` retryable failures in a row; a success in between starts the count again", () => {
    vi.useFakeTimers();
    const { c, calls } = circuit();
    c.failed("503");
    c.failed("503");
    c.succeeded();
    c.failed("503");
    c.failed("503");
    expect(c.state).toBe("closed");
    c.failed("503");
    expect(c.state).toBe("open");
    expect(c.holding).toBe(true);
    expect(calls).toEqual(["open 100"]);
  });

  it("counts a batch's failed messages together", () => {
    const { c } = circuit(10);
    c.failed("503", 9);
    expect(c.state).toBe("closed");
    c.failed("503", 1);
    expect(c.state).toBe("open");
    c.stop();
  });

  it("opens before `failures` when a message runs out of attempts while others fail too (a low rate)", () => {
    const { c, calls } = circuit(20);
    // Two messages, max_deliver 3, nothing answered between their attempts: A1 B1 A2 B2, then A's last.
    for (let i = 0; i < 4; i++) c.failed("503");
    c.failed("503", 1, 0, 3);
    expect(c.state).toBe("open");
    expect(calls).toEqual(["open 100"]);
    c.stop();
  });

  it("a message failing alone still runs out of attempts: a poison message does not open it", () => {
    const { c } = circuit(20);
    c.failed("500");
    c.failed("500");
    c.failed("500", 1, 0, 3);
    expect(c.state).toBe("closed");
    // Nor does one whose attempts had answers from other messages between them.
    c.succeeded();
    c.failed("500", 1, 0, 3);
    expect(c.state).toBe("closed");
  });

  it("probes after the pause; each failed probe doubles the pause up to max_open; a success closes", () => {
    vi.useFakeTimers();
    const { c, calls } = circuit(1);
    c.failed("down");
    vi.advanceTimersByTime(99);
    expect(c.state).toBe("open");
    vi.advanceTimersByTime(1);
    expect(c.state).toBe("half_open");
    expect(c.holding).toBe(true);
    c.failed("still down");
    vi.advanceTimersByTime(200);
    c.failed("still down");
    vi.advanceTimersByTime(350);
    c.failed("still down");
    expect(calls).toEqual(["open 100", "probe", "open 200", "probe", "open 350", "probe", "open 350"]);
    vi.advanceTimersByTime(350);
    c.succeeded();
    expect(c.state).toBe("closed");
    expect(c.holding).toBe(false);
    // Closed again, the next outage starts from open_for.
    c.failed("down");
    expect(calls.slice(-3)).toEqual(["probe", "closed", "open 100"]);
    c.stop();
  });

  it("never pauses for less than the failure's retry delay (Retry-After), nor longer than max_open", () => {
    vi.useFakeTimers();
    const { c, calls } = circuit(1);
    c.failed("429", 1, 250);
    vi.advanceTimersByTime(249);
    expect(c.state).toBe("open");
    vi.advanceTimersByTime(1);
    expect(c.state).toBe("half_open");
    c.failed("429", 1, 60_000);
    // The doubled pause (200) stays the base for the next one; the asked 60 s is capped at max_open.
    expect(calls).toEqual(["open 250", "probe", "open 350"]);
    c.stop();
  });

  it("a late success while open closes at once; stop() cancels the probe", () => {
    vi.useFakeTimers();
    const { c, calls } = circuit(1);
    c.failed("down");
    c.succeeded();
    expect(calls).toEqual(["open 100", "closed"]);
    c.failed("down");
    c.stop();
    vi.advanceTimersByTime(1_000);
    expect(calls).toEqual(["open 100", "closed", "open 100"]);
  });

  it("an operator's pause holds with the circuit closed, probes nothing, and resume releases", () => {
    vi.useFakeTimers();
    const { c, calls } = circuit(2);
    c.pause("maintenance");
    c.pause("maintenance, longer");
    expect(c.holding).toBe(true);
    expect(c.pausedBy).toBe("maintenance, longer");
    // Answers from requests sent before the pause neither close nor release anything.
    c.succeeded();
    vi.advanceTimersByTime(10_000);
    expect(calls).toEqual(["paused maintenance"]);
    c.resume();
    c.resume();
    expect(c.holding).toBe(false);
    expect(c.pausedBy).toBeUndefined();
    expect(calls).toEqual(["paused maintenance", "resumed"]);
  });

  it("a breaker open under an operator's pause probes only once resumed, at once", () => {
    vi.useFakeTimers();
    const { c, calls } = circuit(1);
    c.failed("down");
    c.pause("maintenance");
    vi.advanceTimersByTime(1_000);
    // Failures of requests still out keep it open, and schedule no probe either.
    c.failed("down");
    vi.advanceTimersByTime(1_000);
    expect(calls).toEqual(["open 100", "paused maintenance"]);
    c.resume();
    expect(c.state).toBe("half_open");
    expect(calls.at(-1)).toBe("probe");
    c.succeeded();
    expect(calls.at(-1)).toBe("closed");
  });

  it("a probe that succeeds under an operator's pause closes the breaker, but what is held waits for resume", () => {
    vi.useFakeTimers();
    const { c, calls } = circuit(1);
    c.failed("down");
    vi.advanceTimersByTime(100);
    c.pause("maintenance");
    c.succeeded();
    expect(c.state).toBe("closed");
    expect(c.holding).toBe(true);
    expect(calls).toEqual(["open 100", "probe", "paused maintenance"]);
    c.resume();
    expect(calls.at(-1)).toBe("resumed");
    expect(c.holding).toBe(false);
  });

  it("another replica's opening opens it at once when its own last answer was a failure", () => {
    vi.useFakeTimers();
    const { c, calls } = circuit(20);
    c.failed("503");
    c.openedElsewhere("503 from the gateway");
    expect(c.state).toBe("open");
    expect(calls).toEqual(["open 100 (elsewhere)"]);
    // Its probe goes as usual, and a success closes it.
    vi.advanceTimersByTime(100);
    c.succeeded();
    expect(calls).toEqual(["open 100 (elsewhere)", "probe", "closed"]);
  });

  it("after another replica's opening, one failure here within max_open opens it; an answer first clears that", () => {
    vi.useFakeTimers();
    const first = circuit(20);
    first.c.openedElsewhere("503");
    expect(first.c.state).toBe("closed");
    first.c.failed("503");
    expect(first.calls).toEqual(["open 100 (elsewhere)"]);
    first.c.stop();

    // The function answers this replica: it goes on, and later failures count from 1 to `failures` again.
    const second = circuit(3);
    second.c.openedElsewhere("503");
    second.c.succeeded();
    second.c.failed("503");
    second.c.failed("503");
    expect(second.c.state).toBe("closed");
    second.c.failed("503");
    expect(second.calls).toEqual(["open 100"]);
    second.c.stop();

    // Past max_open the hint is stale.
    const third = circuit(3);
    third.c.openedElsewhere("503");
    vi.advanceTimersByTime(351);
    third.c.failed("503");
    expect(third.c.state).toBe("closed");
  });

  it("without a breaker (NO_BREAKER) it never opens by itself, but an operator can pause it", () => {
    const calls: string[] = [];
    const c = new Circuit(NO_BREAKER, {
      opened: () => calls.push("open"),
      halfOpened: () => calls.push("probe"),
      closed: () => calls.push("closed"),
      paused: () => calls.push("paused"),
      resumed: () => calls.push("resumed"),
    });
    c.failed("down", 1_000_000);
    c.failed("down", 1, 0, 1);
    expect(c.holding).toBe(false);
    c.openedElsewhere("503");
    c.failed("down");
    expect(c.holding).toBe(false);
    c.pause("by hand");
    expect(c.holding).toBe(true);
    c.resume();
    expect(calls).toEqual(["paused", "resumed"]);
  });
});

const { h, cleanups } = useHarness();

type Transition = { type: "open" | "half_open" | "closed"; at: number } & Record<string, unknown>;

/** A route whose function answers 503 until `recover()`; records the circuit's transitions. */
async function outage(route: Record<string, unknown>) {
  let down = true;
  const fn = await HttpFunction.start(() =>
    down ? { status: 503, body: { error: "gateway down" } } : { status: 200, body: { failures: [] } },
  );
  cleanups.push(() => fn.close());
  const f: RouteFixture = await routeFixture(h, fn.url, {
    backoff: ["20ms"],
    max_deliver: 3,
    concurrency: 4,
    ...route,
  });
  const transitions: Transition[] = [];
  const record =
    (type: Transition["type"]) =>
    (e: BridgeEventMap[`circuit:${typeof type}`][0]): void => {
      transitions.push({ type, at: performance.now(), ...e });
    };
  f.events.on("circuit:open", record("open"));
  f.events.on("circuit:half_open", record("half_open"));
  f.events.on("circuit:closed", record("closed"));
  cleanups.push(() => f.consumer.stop(1_000));
  await f.consumer.start();
  return {
    f,
    fn,
    transitions,
    recover: () => {
      down = false;
    },
  };
}

async function publish(f: RouteFixture, n: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) seqs.push((await h.js.publish(f.subject, JSON.stringify({ i }))).seq);
  return seqs;
}

const acked = (f: RouteFixture) =>
  new Set(f.outcomes.filter((o) => o.outcome === "ack").map((o) => o.delivery.seq));

describe("circuit breaker on a route", () => {
  it("pauses a single-delivery route while its function is down, then delivers everything, nothing dead-lettered", async () => {
    const breaker = { failures: 3, open_for: "150ms", max_open: "300ms" };
    const { f, fn, transitions, recover } = await outage({ circuit_breaker: breaker });
    const seqs = await publish(f, 12);
    await waitFor("the circuit to open", () => f.consumer.paused);
    // Far longer than max_deliver (3) retries at 20 ms would take: without the breaker all 12 are dead letters.
    await waitFor("three probes", () => transitions.filter((t) => t.type === "half_open").length >= 3);
    const duringOutage = fn.requests.length;
    expect(await f.dlq()).toEqual([]);
    expect(f.consumer.heldCount).toBeGreaterThan(0);
    // A held failure is announced like a settlement (metrics, traces), with the function's reason.
    expect(f.outcomes.find((o) => o.outcome === "held")).toMatchObject({
      status: 503,
      reason: "HTTP 503: gateway down",
    });
    // Attempts before it opened (at most `failures` plus those in flight) and one per probe, not 12 × 3.
    expect(duringOutage).toBeLessThanOrEqual(
      3 + 4 + transitions.filter((t) => t.type === "half_open").length,
    );

    recover();
    await waitFor("all 12 acked", () => seqs.every((s) => acked(f).has(s)));
    expect(f.consumer.paused).toBe(false);
    await waitFor("the route to pull again", () => f.consumer.bound);
    expect(await f.dlq()).toEqual([]);
    const [opened] = transitions;
    expect(opened).toMatchObject({ type: "open", pauseMs: 150, reason: expect.stringContaining("HTTP 503") });
    const pauses = transitions.filter((t) => t.type === "open").map((t) => t.pauseMs);
    expect(pauses.slice(0, 3)).toEqual([150, 300, 300]);
    expect(transitions.at(-1)).toMatchObject({ type: "closed" });

    // Messages published after recovery flow as usual.
    const later = await publish(f, 3);
    await waitFor("later messages acked", () => later.every((s) => acked(f).has(s)));
  });

  it("holds messages that run out of attempts before `failures` is reached, at a low rate, and sends them after", async () => {
    const { f, transitions, recover } = await outage({
      circuit_breaker: { failures: 20, open_for: "150ms" },
    });
    const seqs = await publish(f, 2);
    await waitFor("the circuit to open", () => f.consumer.paused);
    // 2 messages × 3 attempts: 6 failures, far from 20, yet neither is dead-lettered.
    expect(transitions[0]).toMatchObject({ type: "open" });
    expect(await f.dlq()).toEqual([]);
    recover();
    await waitFor("both acked", () => seqs.every((s) => acked(f).has(s)));
    expect(await f.dlq()).toEqual([]);
  });

  it("without the breaker the same outage dead-letters every message once max_deliver is spent", async () => {
    const { f, transitions } = await outage({ circuit_breaker: false });
    await publish(f, 12);
    await waitFor("12 dead letters", async () => (await f.dlq()).length === 12);
    expect(transitions).toEqual([]);
  });

  it("pauses a batch route too: failed batches are held, and one message probes at a time", async () => {
    const breaker = { failures: 10, open_for: "150ms", max_open: "150ms" };
    const { f, fn, transitions, recover } = await outage({
      circuit_breaker: breaker,
      batch: { size: 5, max_wait: "5ms" },
      concurrency: 2,
    });
    const seqs = await publish(f, 20);
    await waitFor("the circuit to open", () => f.consumer.paused);
    await waitFor("three probes", () => transitions.filter((t) => t.type === "half_open").length >= 3);
    expect(await f.dlq()).toEqual([]);
    const probes = transitions.filter((t) => t.type === "half_open").length;
    // Messages sent: up to 14 failures opened it (10, crossed by a batch of up to 5), one more batch of up
    // to 5 was in flight, then one message per probe. Without the breaker: 20 × 3 attempts in this time.
    const sent = fn.requests.reduce((n, r) => n + (JSON.parse(r.body.toString()) as unknown[]).length, 0);
    expect(sent).toBeLessThanOrEqual(19 + probes);
    // Every message is held, or is the probe in flight.
    expect(f.consumer.heldCount + f.consumer.inFlight).toBe(20);
    // The latest request was a probe: one message, although a whole batch of them is held.
    const last = fn.requests.at(-1);
    expect(JSON.parse(last?.body.toString() ?? "[]")).toHaveLength(1);

    recover();
    await waitFor("all 20 acked", () => seqs.every((s) => acked(f).has(s)));
    expect(await f.dlq()).toEqual([]);
    // The probe was one message, alone; the other 19 were released when it succeeded.
    expect(transitions.at(-1)).toMatchObject({ type: "closed", held: 19 });
  });

  it("does not open on failures mixed with successes, and a bad message is still dead-lettered", async () => {
    // Every other request fails, and one message is refused outright: neither is an outage.
    const fn = await HttpFunction.start((request, n) => {
      if (request.body.toString().includes("poison")) return { status: 422, body: { error: "bad order" } };
      return n % 2 === 0 ? { status: 503 } : { status: 200 };
    });
    cleanups.push(() => fn.close());
    const f = await routeFixture(h, fn.url, {
      backoff: ["10ms"],
      max_deliver: 10,
      circuit_breaker: { failures: 3, open_for: "10s" },
    });
    let opened = 0;
    f.events.on("circuit:open", () => opened++);
    cleanups.push(() => f.consumer.stop(1_000));
    await f.consumer.start();
    const seqs = await publish(f, 10);
    const poison = (await h.js.publish(f.subject, JSON.stringify({ poison: true }))).seq;
    await waitFor("10 acked", () => seqs.every((s) => acked(f).has(s)));
    await waitFor("the poison message dead-lettered", async () => (await f.dlq()).length === 1);
    expect((await f.dlq())[0]?.header?.get(DLQ_HEADERS.seq)).toBe(String(poison));
    expect(opened).toBe(0);
  });

  it("pauses while nothing listens at the function's address (connection refused), resumes when it is back", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/invoke`;
    const f = await routeFixture(h, url, {
      backoff: ["20ms"],
      max_deliver: 3,
      concurrency: 4,
      circuit_breaker: { failures: 3, open_for: "100ms", max_open: "200ms" },
    });
    const reasons: string[] = [];
    f.events.on("circuit:open", ({ reason }) => reasons.push(reason));
    cleanups.push(() => f.consumer.stop(1_000));
    await f.consumer.start();
    const seqs = await publish(f, 8);
    await waitFor("the circuit to open", () => f.consumer.paused);
    await waitFor("a failed probe", () => reasons.length >= 2);
    expect(reasons[0]).toContain("connection refused");
    expect(await f.dlq()).toEqual([]);

    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(204).end());
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    await waitFor("all 8 acked", () => seqs.every((s) => acked(f).has(s)));
    expect(await f.dlq()).toEqual([]);
  });

  it("holds at most max_ack_pending messages while paused; the rest of the backlog waits in the stream", async () => {
    const { f } = await outage({
      circuit_breaker: { failures: 2, open_for: "30s" },
      concurrency: 2,
      max_ack_pending: 4,
    });
    await publish(f, 20);
    await waitFor("the circuit to open", () => f.consumer.paused);
    await waitFor("max_ack_pending messages held", () => f.consumer.heldCount === 4);
    // Past a pull's expiry (5 s): the pull is renewed, and the server still sends nothing more.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(f.consumer.heldCount).toBe(4);
    const info = await h.jsm.consumers.info(f.route.stream, f.route.name);
    expect(info.num_ack_pending).toBe(4);
    expect(info.num_pending).toBe(16);
  }, 20_000);

  it("stop() during a probe: the failed probe is handed back, not held, and no probe follows", async () => {
    const fn = await HttpFunction.start(() => ({ status: 503, delayMs: 300 }));
    cleanups.push(() => fn.close());
    const f = await routeFixture(h, fn.url, {
      backoff: ["20ms"],
      concurrency: 1,
      circuit_breaker: { failures: 1, open_for: "50ms", max_open: "50ms" },
    });
    let probes = 0;
    f.events.on("circuit:half_open", () => probes++);
    await f.consumer.start();
    await publish(f, 1);
    await waitFor("a probe under way", () => probes >= 1);
    await f.consumer.stop(2_000);
    const requests = fn.requests.length;
    expect(f.outcomes.at(-1)?.outcome).toBe("retry");
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(fn.requests.length).toBe(requests);
    expect(probes).toBe(1);
  });

  it("stop() while paused hands the held messages back, and a new consumer delivers them", async () => {
    const { f, recover } = await outage({ circuit_breaker: { failures: 2, open_for: "10s" } });
    const seqs = await publish(f, 6);
    await waitFor("the circuit to open", () => f.consumer.paused);
    await waitFor("every message held", () => f.consumer.heldCount + f.consumer.inFlight >= 6);
    await f.consumer.stop(1_000);
    recover();
    const next = f.newConsumer();
    cleanups.push(() => next.stop(1_000));
    await next.start();
    await waitFor("all 6 acked by the new consumer", () => seqs.every((s) => acked(f).has(s)));
    expect(await f.dlq()).toEqual([]);
  });
});

describe("circuit breaker under a flapping function", () => {
  for (const batch of [undefined, { size: 20, max_wait: "5ms" }]) {
    it(`${batch ? "batch" : "single"} delivery: through outages that come and go, every message succeeds once and none is left held`, async () => {
      let down = false;
      const successes = new Map<string, number>();
      const succeeded = (id: string) => successes.set(id, (successes.get(id) ?? 0) + 1);
      const fn = await HttpFunction.start((request) => {
        if (down) return { status: 503, body: { error: "down" } };
        if (!batch) {
          succeeded(String(request.headers["ce-id"]));
          return { status: 200 };
        }
        for (const event of JSON.parse(request.body.toString()) as { id: string }[]) succeeded(event.id);
        return { status: 200, body: { failures: [] } };
      });
      cleanups.push(() => fn.close());
      const f = await routeFixture(h, fn.url, {
        backoff: ["20ms"],
        max_deliver: 100,
        concurrency: batch ? 4 : 32,
        circuit_breaker: { failures: 10, open_for: "50ms", max_open: "200ms" },
        ...(batch ? { batch } : {}),
      });
      let opened = 0;
      f.events.on("circuit:open", () => opened++);
      cleanups.push(() => f.consumer.stop(1_000));
      await f.consumer.start();

      // Six outages of 300 ms, 200 ms apart, while 1,500 messages are published and delivered.
      const flapping = (async () => {
        for (let i = 0; i < 6; i++) {
          await new Promise((r) => setTimeout(r, 200));
          down = true;
          await new Promise((r) => setTimeout(r, 300));
          down = false;
        }
      })();
      const ids: string[] = [];
      for (let i = 0; i < 1_500; i++) {
        const ack = await h.js.publish(f.subject, JSON.stringify({ i }));
        ids.push(`${ack.stream}:${ack.seq}`);
      }
      await flapping;
      await waitFor("every message to succeed", () => ids.every((id) => successes.has(id)), 30_000);
      await waitFor(
        "the route to be closed with nothing held",
        () => !f.consumer.paused && f.consumer.heldCount === 0,
      );
      await waitFor("nothing pending or unacked on the server", async () => {
        const info = await h.jsm.consumers.info(f.route.stream, f.route.name);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      });
      expect(opened).toBeGreaterThan(0);
      expect(await f.dlq()).toEqual([]);
      expect(ids.filter((id) => successes.get(id) !== 1)).toEqual([]);
    }, 60_000);
  }
});
