import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify as stringifyYaml } from "yaml";
import {
  findNatsServer,
  isListening,
  NatsServer,
  NatsServerNotFoundError,
} from "../../bridge/nats-server.ts";
import { BRIDGE_NODE_FLAGS } from "../../bridge/node-flags.ts";
import { DOMAIN_APPS } from "./apps.ts";
import { banner } from "./banner.ts";
import { devBridgeConfig, readRawConfig } from "./bridge-config.ts";
import { DevChild } from "./child.ts";
import { LogRouter } from "./log-router.ts";
import { type DevPorts, devPorts, type FunctionName, localUrl } from "./ports.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DEFAULT_DEV_CONFIG = join(ROOT, "infra/bridge.dev.yaml");
const BIN = join(ROOT, "bin/jetway.ts");
const HOST_MAIN = join(ROOT, "infra/dev/host-main.ts");
const START_TIMEOUT_MS = 90_000;

export interface DevOptions {
  portBase?: number | undefined;
  only?: string | undefined;
  json: boolean;
  config: string;
  /** State directory: NATS store, PGlite data, audit log, logs. Default `.jetway`. */
  dataDir: string;
  env: NodeJS.ProcessEnv;
  colour: boolean;
}

/** Something went wrong starting the stack; the message says what to do. */
export class DevStartError extends Error {
  override name = "DevStartError";
}

interface Nats {
  url: string;
  server: NatsServer | undefined;
}

/**
 * Every port the stack serves on must be free: otherwise the first instance would answer for this one (its
 * /readyz, its functions) while this one's children fail one by one.
 */
async function refuseTakenPorts(ports: DevPorts): Promise<void> {
  const wanted: [string, number][] = [["bridge", ports.bridge], ...Object.entries(ports.functions)];
  const taken = (
    await Promise.all(
      wanted.map(async ([name, port]) => ((await isListening(port)) ? `${port} (${name})` : "")),
    )
  ).filter(Boolean);
  if (taken.length === 0) return;
  const [ports_, are] = taken.length > 1 ? ["ports", "are"] : ["port", "is"];
  throw new DevStartError(
    `${ports_} ${taken.join(", ")} ${are} already in use: is another jetway dev running? Stop it, or start this one with --port-base N`,
  );
}

/** NATS_URL, else a server already on the dev NATS port, else our own nats-server with a persistent store. */
async function resolveNats(options: DevOptions, ports: DevPorts, say: Say): Promise<Nats> {
  if (options.env.NATS_URL) return { url: options.env.NATS_URL, server: undefined };
  if (await isListening(ports.nats)) return { url: `nats://127.0.0.1:${ports.nats}`, server: undefined };
  if (!findNatsServer(options.env)) throw new NatsServerNotFoundError();
  const storeDir = join(options.dataDir, "nats");
  await mkdir(storeDir, { recursive: true });
  const server = await NatsServer.start({ port: ports.nats, storeDir, detached: true });
  say("started nats-server", { url: server.url, store: storeDir, child_pid: server.pid });
  return { url: server.url, server };
}

type Say = (msg: string, fields?: Record<string, unknown>, level?: number) => void;

async function waitFor(what: string, child: DevChild, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!child.running) throw new DevStartError(`${what} exited during start-up (see .jetway/logs)`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new DevStartError(`${what} was not ready within ${START_TIMEOUT_MS / 1000}s`);
}

/**
 * `jetway dev`: NATS, the function host (all functions in one process, one database), then the bridge;
 * runs until SIGINT/SIGTERM and stops them in reverse order. Resolves with the exit code.
 */
export async function runDev(options: DevOptions): Promise<number> {
  const ports = devPorts(options.portBase);
  const dataDir = resolve(options.dataDir);
  const router = new LogRouter({
    dir: join(dataDir, "logs"),
    only: options.only,
    json: options.json,
    colour: options.colour,
  });
  const say: Say = (msg, fields = {}, level = 30) => {
    const record = { level, time: new Date().toISOString(), fn: "dev", msg, ...fields };
    router.write({ tag: "dev", record, raw: JSON.stringify(record) });
  };

  let nats: Nats | undefined;
  const children: DevChild[] = [];
  let stopping: Promise<number> | undefined;
  let fail: (error: Error) => void = () => {};
  const stop = (code: number): Promise<number> => {
    stopping ??= (async () => {
      // Reverse start order: the bridge finishes in-flight calls while the functions still answer.
      for (const child of [...children].reverse()) {
        say(`stopping ${child.tag}`, { pid: child.pid });
        await child.stop(child.tag === "bridge" ? 30_000 : 15_000);
      }
      if (nats?.server) {
        say("stopping nats-server", { pid: nats.server.pid });
        await nats.server.stop();
      }
      await router.close();
      return code;
    })();
    return stopping;
  };

  const exit = new Promise<number>((done) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        for (const child of children) child.kill();
        done(1);
        return;
      }
      say("shutting down (again to force)", { signal });
      stop(0).then(done, () => done(1));
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    // Also settles when start-up fails or a child dies.
    fail = (error) => {
      say(error.message, {}, 50);
      stop(1).then(done, () => done(1));
    };
  });

  try {
    await refuseTakenPorts(ports);
    nats = await resolveNats(options, ports, say);
    // A signal during start-up stops what exists; nothing may be started after that.
    if (stopping) {
      await nats.server?.stop();
      return exit;
    }
    const hostEnv = {
      ...options.env,
      JETWAY_DEV_PORTS: JSON.stringify(ports),
      JETWAY_DEV_DIR: dataDir,
    };
    const host = new DevChild({ tag: "functions", args: [HOST_MAIN], env: hostEnv, router });
    children.push(host);
    say("function host started", { child_pid: host.pid });
    const served = Object.keys(DOMAIN_APPS) as FunctionName[];
    await waitFor("the function host", host, async () => {
      const up = await Promise.all(
        ["gateway-sim" as const, ...served].map((n) => isListening(ports.functions[n])),
      );
      return up.every(Boolean);
    });

    const configFile = join(dataDir, "bridge.dev.yaml");
    const raw = devBridgeConfig(await readRawConfig(options.config), ports);
    await writeFile(configFile, stringifyYaml(raw));
    if (stopping) return exit;
    const bridgeEnv: NodeJS.ProcessEnv = { ...options.env, NATS_URL: nats.url };
    // JETWAY_SECRET= turns signature checks off in the functions; the bridge's ${JETWAY_SECRET:-…} then
    // falls back to the dev secret (as in a shell), and unverified signatures are harmless.
    const bridge = new DevChild({
      tag: "bridge",
      args: [...BRIDGE_NODE_FLAGS, BIN, "bridge", "--config", configFile],
      env: bridgeEnv,
      router,
      forceTag: true,
    });
    children.push(bridge);
    say("bridge started", { child_pid: bridge.pid });
    await waitFor("the bridge", bridge, async () => (await fetch(localUrl(ports.bridge, "/readyz"))).ok);
    const text = banner(ports, nats.url, options.dataDir);
    (options.json ? process.stderr : process.stdout).write(`${text}\n`);
    for (const child of children) {
      child.exited.then((code) => {
        if (!stopping) fail(new DevStartError(`${child.tag} exited unexpectedly with code ${code}`));
      });
    }
  } catch (error) {
    // Shutting down already (a signal during start-up): a child ending now is expected, not a failure.
    if (stopping) return exit;
    // No binary: the install instructions, plainly, instead of a log line.
    if (error instanceof NatsServerNotFoundError) {
      process.stderr.write(`${error.message}\n`);
      fail(new DevStartError("no NATS_URL, nothing listening on the NATS port, and no nats-server to start"));
    } else {
      fail(error instanceof Error ? error : new Error(String(error)));
    }
  }
  return exit;
}
