import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { freePort } from "./free-port.ts";

export { freePort };

/** How to get nats-server where npm cannot install it. */
export const NATS_SERVER_HELP = [
  "nats-server (>= 2.9, with JetStream) was not found on PATH or at /usr/sbin/nats-server.",
  "Install it with one of:",
  "  Debian/Ubuntu:  sudo apt-get install nats-server",
  "  macOS:          brew install nats-server",
  "  Go toolchain:   go install github.com/nats-io/nats-server/v2@latest",
  "  or download a release binary from the nats-io/nats-server GitHub releases page,",
  "then put it on PATH or set NATS_SERVER_BIN=/path/to/nats-server.",
].join("\n");

export class NatsServerNotFoundError extends Error {
  override name = "NatsServerNotFoundError";
  constructor() {
    super(NATS_SERVER_HELP);
  }
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Finds the nats-server binary: $NATS_SERVER_BIN, then PATH, then /usr/sbin. */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.NATS_SERVER_BIN) return isExecutable(env.NATS_SERVER_BIN) ? env.NATS_SERVER_BIN : undefined;
  const dirs = [...(env.PATH ?? "").split(delimiter).filter(Boolean), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    const candidate = join(dir, "nats-server");
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** True when something accepts TCP connections at host:port within the timeout. */
export async function isListening(port: number, host = "127.0.0.1", timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.connect(port, host);
  });
}

export interface NatsServerOptions {
  port?: number;
  /** JetStream store directory; a fresh temp dir (removed on stop) when omitted. */
  storeDir?: string;
  /** Cluster settings for multi-node tests. */
  cluster?: { name: string; port: number; routes: string[] };
  serverName?: string;
  /** Extra command-line arguments. */
  args?: string[];
  /** Own process group, so a terminal's Ctrl-C reaches only the parent, which stops the server last. */
  detached?: boolean;
}

/** How many free ports start() tries when the one it picked was taken before the server listened. */
const PORT_ATTEMPTS = 3;

/** The server exited because one of its ports (client, route or monitoring) was in use. */
export const portTaken = (error: unknown): boolean =>
  error instanceof Error && error.message.includes("address already in use");

/** A nats-server child process on a loopback port, with its own JetStream store. */
export class NatsServer {
  readonly port: number;
  readonly storeDir: string;
  private child: ChildProcess | undefined;
  private readonly ownsStore: boolean;
  private readonly bin: string;
  private readonly options: NatsServerOptions;

  private constructor(
    bin: string,
    port: number,
    storeDir: string,
    ownsStore: boolean,
    options: NatsServerOptions,
  ) {
    this.bin = bin;
    this.port = port;
    this.storeDir = storeDir;
    this.ownsStore = ownsStore;
    this.options = options;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts a server; throws NatsServerNotFoundError with install instructions when there is no binary. */
  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const bin = findNatsServer();
    if (!bin) throw new NatsServerNotFoundError();
    const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), "jetway-nats-")));
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      const server = new NatsServer(bin, port, storeDir, !options.storeDir, options);
      try {
        await server.spawn();
        return server;
      } catch (error) {
        // A port picked free can be taken by another process before the server listens on it: pick again.
        if (options.port === undefined && attempt < PORT_ATTEMPTS && portTaken(error)) continue;
        if (!options.storeDir) await rm(storeDir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  private async spawn(): Promise<void> {
    const args = ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.storeDir];
    const { cluster, serverName } = this.options;
    if (serverName) args.push("-n", serverName);
    if (cluster) {
      args.push("--cluster_name", cluster.name, "--cluster", `nats://127.0.0.1:${cluster.port}`);
      if (cluster.routes.length > 0) args.push("--routes", cluster.routes.join(","));
    }
    args.push(...(this.options.args ?? []));
    const child = spawn(this.bin, args, {
      stdio: ["ignore", "ignore", "pipe"],
      detached: this.options.detached ?? false,
    });
    this.child = child;
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${stderr}`);
      if (await isListening(this.port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    throw new Error(`nats-server did not listen on ${this.port} within 10s: ${stderr}`);
  }

  private async waitExit(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    await exited;
    this.child = undefined;
  }

  /** Stops the process (SIGKILL for a crash), keeping the store so restart() resumes it. */
  async stopProcess(crash = false): Promise<void> {
    await this.waitExit(crash ? "SIGKILL" : "SIGTERM");
  }

  /** Starts the process again on the same port and store. */
  async restart(): Promise<void> {
    await this.stopProcess();
    await this.spawn();
  }

  /** Stops the server and removes its temp store. */
  async stop(): Promise<void> {
    await this.stopProcess();
    if (this.ownsStore) await rm(this.storeDir, { recursive: true, force: true });
  }
}
