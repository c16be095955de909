import type { JsMsg } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { AckBatcher } from "./ack-batcher.ts";

interface Sent {
  seq: number;
  op: string;
  at: number;
  burst: number;
}

/** Sends made in one synchronous run share a burst number. */
let burst = 0;
let counting = false;
function burstNow(): number {
  if (!counting) {
    counting = true;
    queueMicrotask(() => {
      burst++;
      counting = false;
    });
  }
  return burst;
}

/** A message that records what was sent for it, when (ms, performance.now()) and in which burst. */
function recording(log: Sent[], seq: number): JsMsg {
  const note = (op: string) => () => void log.push({ seq, op, at: performance.now(), burst: burstNow() });
  return {
    ack: note("ack"),
    nak: (ms: number) => note(`nak ${ms}`)(),
    term: note("term"),
  } as unknown as JsMsg;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("AckBatcher", () => {
  it("sends a quiet moment's acks at the end of the turn", async () => {
    const log: Sent[] = [];
    const acks = new AckBatcher(50);
    acks.ack(recording(log, 1));
    acks.nak(recording(log, 2), 0);
    expect(log).toEqual([]);
    await turn();
    expect(log.map((e) => `${e.seq} ${e.op}`)).toEqual(["1 ack", "2 nak 1"]);
  });

  it("holds a burst that follows another within minGapMs, then sends it as one", async () => {
    const log: Sent[] = [];
    const acks = new AckBatcher(30);
    acks.ack(recording(log, 1));
    await turn();
    const first = log[0]?.at ?? 0;
    acks.ack(recording(log, 2));
    await turn();
    acks.term(recording(log, 3));
    await turn();
    expect(log).toHaveLength(1);
    expect(acks.pending).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(log.map((e) => `${e.seq} ${e.op}`)).toEqual(["1 ack", "2 ack", "3 term"]);
    // Node timers run on a loop clock that may lag performance.now() by up to a millisecond or two.
    expect((log[1]?.at ?? 0) - first).toBeGreaterThanOrEqual(27);
    expect(log[1]?.burst).toBe(log[2]?.burst);
    expect(log[0]?.burst).not.toBe(log[1]?.burst);
  });

  it("flush() sends what waits at once and cancels the pending send", async () => {
    const log: Sent[] = [];
    const acks = new AckBatcher(1_000);
    acks.ack(recording(log, 1));
    await turn();
    acks.ack(recording(log, 2));
    acks.flush();
    expect(log.map((e) => e.seq)).toEqual([1, 2]);
    expect(acks.pending).toBe(0);
    acks.flush();
    expect(log).toHaveLength(2);
  });

  it("keeps sending the rest when one throws, and reports how many did not go", async () => {
    const log: Sent[] = [];
    const reports: [unknown, number][] = [];
    const acks = new AckBatcher(0, (error, unsent) => reports.push([error, unsent]));
    const closed = new Error("refused");
    const broken = {
      ack: () => {
        throw closed;
      },
    } as unknown as JsMsg;
    acks.ack(recording(log, 1));
    acks.ack(broken);
    acks.ack(broken);
    acks.ack(recording(log, 4));
    await turn();
    expect(log.map((e) => e.seq)).toEqual([1, 4]);
    expect(reports).toEqual([[closed, 2]]);
  });
});
