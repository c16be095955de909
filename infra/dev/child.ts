import { type ChildProcess, spawn } from "node:child_process";
import type { LogRouter } from "./log-router.ts";

export interface ChildOptions {
  tag: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  router: LogRouter;
  /** Tag every line with `tag` even when it carries its own `fn` (the bridge's lines). */
  forceTag?: boolean;
}

/**
 * A Node child of the dev runner in its own process group: Ctrl-C in the terminal reaches only the
 * runner, which then stops the children in order (bridge, functions, nats-server).
 */
export class DevChild {
  readonly tag: string;
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(options: ChildOptions) {
    this.tag = options.tag;
    this.process = spawn(process.execPath, options.args, {
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    this.exited = new Promise((resolve) => this.process.once("exit", (code) => resolve(code)));
    const forceTag = options.forceTag ?? false;
    if (this.process.stdout) options.router.attach(this.process.stdout, options.tag, forceTag);
    if (this.process.stderr) options.router.attach(this.process.stderr, options.tag, forceTag);
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`. Resolves with the exit code. */
  async stop(timeoutMs: number): Promise<number | null> {
    if (!this.running) return this.exited;
    this.process.kill("SIGTERM");
    const timer = setTimeout(() => this.process.kill("SIGKILL"), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.running) this.process.kill("SIGKILL");
  }
}
