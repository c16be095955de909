import { type ChildProcess, fork } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ChildMessage, DriverMessage } from "./protocol.ts";
import { parseProcStat, parseProcStatus } from "./stats.ts";

/** A bench child died or did not answer in time; carries the tail of its stderr. */
export class ChildFailedError extends Error {
  override name = "ChildFailedError";
}

type Waiter = { type: ChildMessage["type"]; resolve: (m: ChildMessage) => void; reject: (e: Error) => void };

/** A forked bench process (function, bridge, ceiling) with a typed IPC channel and /proc counters. */
export class Child {
  readonly name: string;
  readonly pid: number;
  private readonly proc: ChildProcess;
  private readonly inbox: ChildMessage[] = [];
  private waiters: Waiter[] = [];
  private stderr = "";
  private failure: Error | undefined;

  private constructor(name: string, proc: ChildProcess) {
    this.name = name;
    this.proc = proc;
    if (proc.pid === undefined) throw new ChildFailedError(`${name} did not start`);
    this.pid = proc.pid;
    proc.stderr?.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4_000);
    });
    proc.on("message", (message: ChildMessage) => {
      if (message.type === "error") return this.fail(new ChildFailedError(`${name}: ${message.message}`));
      const i = this.waiters.findIndex((w) => w.type === message.type);
      const waiter = i >= 0 ? this.waiters.splice(i, 1)[0] : undefined;
      if (waiter) waiter.resolve(message);
      else this.inbox.push(message);
    });
    proc.on("exit", (code, signal) => {
      if (code !== 0 || this.waiters.length > 0)
        this.fail(new ChildFailedError(`${name} exited (${code ?? signal}): ${this.stderr}`));
    });
  }

  /** Forks `bench/<script>` with args and env; stdout (log lines) is discarded. */
  static start(
    name: string,
    script: string,
    args: string[] = [],
    env: Record<string, string> = {},
    execArgv: string[] = [],
  ): Child {
    const path = fileURLToPath(new URL(script, import.meta.url));
    const proc = fork(path, args, {
      env: { ...process.env, ...env },
      execArgv,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    return new Child(name, proc);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  /** The next message of a type (already received or still to come). */
  waitFor<T extends ChildMessage["type"]>(
    type: T,
    timeoutMs = 120_000,
  ): Promise<Extract<ChildMessage, { type: T }>> {
    const i = this.inbox.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Extract<ChildMessage, { type: T }>);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(
          new ChildFailedError(`${this.name}: no "${type}" within ${timeoutMs} ms; stderr: ${this.stderr}`),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        type,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<ChildMessage, { type: T }>);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  send(message: DriverMessage): void {
    this.proc.send(message);
  }

  /** SIGTERM, for a child that is a production command rather than a bench script; SIGKILL if it lingers. */
  terminate(graceMs = 10_000): Promise<void> {
    return this.end(graceMs, () => this.proc.kill("SIGTERM"));
  }

  /** Asks the child to stop (IPC "stop", or closing the channel), then kills it if it lingers. */
  stop(graceMs = 5_000): Promise<void> {
    return this.end(graceMs, () => {
      if (!this.proc.connected) return;
      this.proc.send({ type: "stop" } satisfies DriverMessage, () => {
        if (this.proc.connected) this.proc.disconnect();
      });
    });
  }

  private async end(graceMs: number, ask: () => void): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.proc.once("exit", () => resolve()));
    this.failure ??= new ChildFailedError(`${this.name} stopped`);
    ask();
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return 0;
  }
}

/**
 * CPU seconds used so far by every live PostgreSQL process (postmaster, backends, WAL writer…): the
 * database's share of a scenario, when the server runs on this machine. A backend that exits takes its
 * count with it, so read this around a window in which the pools stay connected.
 */
export function postgresCpuSeconds(): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.includes("(postgres)")) total += parseProcStat(stat);
    } catch {
      // Gone between the listing and the read.
    }
  }
  return total;
}

/** Resident set size now (VmRSS) or at its peak (VmHWM), in bytes. */
export function memoryBytes(pid: number, field: "VmHWM" | "VmRSS"): number {
  return parseProcStatus(readFileSync(`/proc/${pid}/status`, "utf8"), field);
}
