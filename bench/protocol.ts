/**
 * Messages between the bench driver and its child processes (over the fork IPC channel). A "consumer"
 * child is whatever takes messages off the stream in a scenario: the bridge, or a ceiling stand-in.
 */
export type ChildMessage =
  | {
      type: "ready";
      port?: number;
      natsUrl?: string;
      natsPid?: number | undefined;
      /** pipeline: the bridge config file for a bridge of its own, its env, and its HTTP port. */
      bridge?: { configFile: string; env: Record<string, string>; port: number };
      /** pipeline: the payment gateway simulator, whose /stats count the charges. */
      gatewayUrl?: string;
      /** pipeline: the audit function's log directory, which must end up holding every event. */
      auditDir?: string;
      /** pipeline: the functions for the driver to start, each from its Node entry. */
      functions?: FunctionProcess[];
    }
  /** The warm-up is settled and the measured window starts: the driver snapshots CPU counters now. */
  | { type: "first"; ns: number }
  /** `count` messages are settled after the warm-up; times are process.hrtime (CLOCK_MONOTONIC, shared by all processes). */
  | { type: "done"; count: number; firstNs: number; lastNs: number }
  /** Ack times by stream sequence, for publish→ack latency. */
  | { type: "acks"; seqs: number[]; ns: number[] }
  /** process.memoryUsage() of a consumer child: tells heap growth from buffered message bytes. */
  | { type: "memory"; usage: NodeJS.MemoryUsage }
  | { type: "error"; message: string };

/** A function's Node entry (relative to bench/), the port it serves and the env it needs. */
export interface FunctionProcess {
  name: string;
  script: string;
  port: number;
  env: Record<string, string>;
}

export type DriverMessage = { type: "acks" } | { type: "memory" } | { type: "stop" };

/** Monotonic nanoseconds as a number: exact to well under a microsecond for years of uptime. */
export const nowNs = (): number => Number(process.hrtime.bigint());

export const send = (message: ChildMessage): void => {
  process.send?.(message);
};

/**
 * Counts settled messages in a consumer child. The first `warmup` settles warm the JIT and the pools;
 * the measured window runs from the last of them ("first") until `measured` more are settled ("done").
 * Ack times are kept by stream sequence and sent when the driver asks.
 */
export class SettleRecorder {
  private readonly warmup: number;
  private readonly total: number;
  private count = 0;
  private firstNs = 0;
  private readonly seqs: number[] = [];
  private readonly ns: number[] = [];
  private onWarm: (() => void) | undefined;

  /** False where the child's own memory is the measurement: a million ack times would be part of it. */
  private readonly keepTimes: boolean;

  constructor(warmup: number, measured: number, onStop: () => Promise<void>, keepTimes = true) {
    this.keepTimes = keepTimes;
    this.warmup = Math.max(1, warmup);
    this.total = this.warmup + measured;
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      void onStop().finally(() => process.exit(0));
    };
    process.on("message", (message: DriverMessage) => {
      if (message.type === "acks") send({ type: "acks", seqs: this.seqs, ns: this.ns });
      else if (message.type === "memory") send({ type: "memory", usage: process.memoryUsage() });
      else if (message.type === "stop") stop();
    });
    process.on("disconnect", stop);
  }

  /** Called once, when the warm-up's last message settles (the measured window opens). */
  whenWarm(callback: () => void): void {
    this.onWarm = callback;
  }

  settled(seq: number): void {
    const t = nowNs();
    if (this.keepTimes) {
      this.seqs.push(seq);
      this.ns.push(t);
    }
    const count = ++this.count;
    if (count === this.warmup) {
      this.firstNs = t;
      send({ type: "first", ns: t });
      this.onWarm?.();
    }
    if (count === this.total) {
      send({ type: "done", count: count - this.warmup, firstNs: this.firstNs, lastNs: t });
    }
  }
}

/** Reads a required integer from the environment (children get their settings that way). */
export function envInt(name: string): number {
  const value = Number.parseInt(process.env[name] ?? "", 10);
  if (!Number.isFinite(value)) throw new Error(`${name} must be set to an integer`);
  return value;
}

const PAD = "x".repeat(200);
const encoder = new TextEncoder();

/** A ~230-byte JSON event body stamped with the send time (what the null function measures against). */
export const pingBody = (t = nowNs()): Uint8Array => encoder.encode(`{"t":${t},"pad":"${PAD}"}`);
