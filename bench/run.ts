/**
 * `npm run bench`: the end-to-end benchmark. Starts the null function (a child), then runs each scenario
 * against its own nats-server and consumer child, prints a table with the targets, and writes
 * bench/results/<timestamp>.json and bench/results/latest.json. See bench/README.md.
 *
 *   node bench/run.ts [--quick] [--n 100000] [--backlog 1000000] [--only bridge,latency]
 *                     [--concurrency 64] [--rate 1000] [--log-level info] [--log-acks debug]
 *                     [--pipeline-clients 32] [--pipeline-orders 10000]
 *                     [--pipeline-warmup 5000] [--gateway-latency-ms 0] [--cpu-prof] [--alloc-prof]
 *                     [--repeat 3]
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Child } from "./children.ts";
import { medianRun } from "./repeat.ts";
import { checkTargets, formatReport } from "./report.ts";
import type { RunContext, ScenarioResult } from "./scenarios/common.ts";
import { ingressScenario } from "./scenarios/ingress.ts";
import { latencyScenario } from "./scenarios/latency.ts";
import { memoryScenario } from "./scenarios/memory.ts";
import { pipelineScenario } from "./scenarios/pipeline.ts";
import { backlogScenario, ceilingHttp } from "./scenarios/throughput.ts";

const { values } = parseArgs({
  options: {
    n: { type: "string" },
    backlog: { type: "string" },
    only: { type: "string" },
    quick: { type: "boolean", default: false },
    concurrency: { type: "string", default: "64" },
    rate: { type: "string", default: "1000" },
    repeat: { type: "string", default: "1" },
    "log-level": { type: "string", default: "info" },
    "log-acks": { type: "string", default: "debug" },
    "cpu-prof": { type: "boolean", default: false },
    "alloc-prof": { type: "boolean", default: false },
    "pipeline-clients": { type: "string", default: "32" },
    "pipeline-orders": { type: "string" },
    "pipeline-warmup": { type: "string" },
    "gateway-latency-ms": { type: "string", default: "0" },
  },
});
const quick = values.quick ?? false;
const int = (v: string | undefined, fallback: number) =>
  v === undefined ? fallback : Number.parseInt(v, 10);
const here = fileURLToPath(new URL(".", import.meta.url));
const profileDir = join(here, "profiles");

const SCENARIOS: Record<string, (ctx: RunContext) => Promise<ScenarioResult>> = {
  "ceiling-js": (ctx) => backlogScenario(ctx, "ceiling-js"),
  "ceiling-http": ceilingHttp,
  bridge: (ctx) => backlogScenario(ctx, "bridge"),
  "bridge-batch": (ctx) => backlogScenario(ctx, "bridge-batch"),
  "bridge-events": (ctx) => backlogScenario(ctx, "bridge-events"),
  "latency-floor": (ctx) => latencyScenario(ctx, quick ? 3 : 10, int(values.rate, 1_000), "floor"),
  latency: (ctx) => latencyScenario(ctx, quick ? 3 : 10, int(values.rate, 1_000)),
  ingress: ingressScenario,
  pipeline: pipelineScenario,
  memory: memoryScenario,
};

/**
 * Scenarios `--repeat` runs again (the median is kept): on a noisy box one run can be 0.6× another. The
 * backlog one is not: it fills a million-message stream each time.
 */
const REPEATED = new Set([
  "ceiling-js",
  "ceiling-http",
  "bridge",
  "bridge-batch",
  "bridge-events",
  "latency-floor",
  "latency",
  "ingress",
  "pipeline",
]);
const repeat = Math.max(1, int(values.repeat, 1));

const only = values.only?.split(",").map((s) => s.trim());
const unknown = only?.filter((name) => !(name in SCENARIOS)) ?? [];
if (unknown.length > 0)
  throw new Error(`unknown scenario ${unknown.join(", ")}; known: ${Object.keys(SCENARIOS).join(", ")}`);

const log = (line: string) => process.stderr.write(`${line}\n`);
const tmp = await mkdtemp(join(tmpdir(), "jetway-bench-"));
const execArgv = values["cpu-prof"] ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [];
const fn = Child.start("function", "null-function.ts", [], {}, execArgv);
const { port } = await fn.waitFor("ready", 30_000);
const ctx: RunContext = {
  fn,
  fnUrl: `http://127.0.0.1:${port}/events`,
  n: int(values.n, quick ? 10_000 : 50_000),
  backlog: int(values.backlog, quick ? 50_000 : 1_000_000),
  concurrency: int(values.concurrency, 64),
  logLevel: values["log-level"] ?? "info",
  logAcks: values["log-acks"] ?? "debug",
  pipelineClients: int(values["pipeline-clients"], 32),
  pipelineOrders: int(values["pipeline-orders"], quick ? 500 : 10_000),
  pipelineWarmup: int(values["pipeline-warmup"], quick ? 100 : 5_000),
  gatewayLatencyMs: int(values["gateway-latency-ms"], 0),
  quick,
  tmp,
  execArgv,
  allocProfDir: values["alloc-prof"] ? profileDir : undefined,
};
if (values["alloc-prof"]) await mkdir(profileDir, { recursive: true });

const startedAt = new Date();
const loadBefore = loadavg()[0] ?? 0;
// Other work on the machine skews every figure here (two cores): say so rather than report noise.
if (loadBefore > cpus().length / 2)
  log(`warning: load average ${loadBefore.toFixed(1)} before the run; figures will be noisy`);
const results: ScenarioResult[] = [];
try {
  for (const [name, run] of Object.entries(SCENARIOS)) {
    if (only && !only.includes(name)) continue;
    const runs: ScenarioResult[] = [];
    for (let i = 0; i < (REPEATED.has(name) ? repeat : 1); i++) {
      log(`- ${name}${runs.length > 0 ? ` (run ${i + 1} of ${repeat})` : ""} ...`);
      const t0 = performance.now();
      try {
        runs.push(await run(ctx));
      } catch (error) {
        runs.push({ name, status: "failed", note: (error as Error).message.slice(0, 300) });
      }
      log(`  ${runs.at(-1)?.status} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    results.push(medianRun(runs));
  }
} finally {
  await fn.stop();
  await rm(tmp, { recursive: true, force: true });
}

const targets = checkTargets(results);
process.stdout.write(`${formatReport(results, targets)}\n`);
const report = {
  started_at: startedAt.toISOString(),
  duration_s: Math.round((Date.now() - startedAt.getTime()) / 1000),
  host: {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model,
    node: process.version,
    load_1m_before: Math.round(loadBefore * 100) / 100,
    load_1m_after: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  },
  settings: {
    n: ctx.n,
    backlog: ctx.backlog,
    concurrency: ctx.concurrency,
    log_level: ctx.logLevel,
    log_acks: ctx.logAcks,
    quick,
    repeat,
  },
  results,
  targets,
};
const dir = join(here, "results");
await mkdir(dir, { recursive: true });
const json = `${JSON.stringify(report, null, 2)}\n`;
const file = join(dir, `${startedAt.toISOString().replace(/[:.]/g, "-")}.json`);
await writeFile(file, json);
// latest.json is the last complete run (the one bench/README.md quotes); --only runs never replace it.
if (!only) await writeFile(join(dir, "latest.json"), json);
log(`results written to ${only ? file : join(dir, "latest.json")}`);
