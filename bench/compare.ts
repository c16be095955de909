/**
 * `npm run bench:compare -- <git-ref>`: the code in this checkout (head, uncommitted edits included) against
 * another commit (base), scenario by scenario, in pairs run in alternating order (AB, BA, …) so that what
 * a slow spell or the second-run advantage does to one side falls on the other too. Prints head/base per
 * figure for every pair, the range in each order, and CPU normalised by a process neither side changed;
 * writes the lot as JSON to bench/results/compare-<timestamp>.json. See bench/README.md.
 *
 *   node bench/compare.ts <git-ref> [--rounds 4] [--only bridge,pipeline] [-- <more bench/run.ts flags>]
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { figuresOf, formatSummary, type Pair, pairOrder, type Side, summarise } from "./compare-stats.ts";
import type { ScenarioResult } from "./scenarios/common.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: "string", default: "4" },
    only: { type: "string", default: "ceiling-http,bridge" },
  },
});
const ref = positionals[0];
if (!ref)
  throw new Error("usage: compare.ts <git-ref> [--rounds 4] [--only bridge,pipeline] [-- run.ts flags]");
const rounds = Number.parseInt(values.rounds ?? "4", 10);
if (!(rounds >= 1)) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
const runFlags = ["--only", values.only ?? "", ...positionals.slice(1)];
const repo = fileURLToPath(new URL("..", import.meta.url));
const log = (line: string) => process.stderr.write(`${line}\n`);

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${out.slice(-2000)}`)),
    );
  });
}

/** One bench run in a checkout; its results, read from the file it says it wrote. */
async function benchIn(dir: string): Promise<ScenarioResult[]> {
  const out = await run(process.execPath, ["bench/run.ts", ...runFlags], dir);
  const file = /results written to (.+\.json)/.exec(out)?.[1];
  if (!file) throw new Error(`no results file in the bench's output:\n${out.slice(-2000)}`);
  const report = JSON.parse(await readFile(file, "utf8")) as { results: ScenarioResult[] };
  await rm(file, { force: true });
  return report.results;
}

const worktree = await mkdtemp(join(tmpdir(), "jetway-compare-"));
await rm(worktree, { recursive: true });
await run("git", ["worktree", "add", "--detach", worktree, ref], repo);
try {
  // The base runs on this checkout's dependencies: say so when they differ.
  await symlink(join(repo, "node_modules"), join(worktree, "node_modules"), "dir");
  const lockDiff = await run("git", ["diff", "--stat", ref, "--", "package-lock.json"], repo);
  if (lockDiff.trim())
    log(`note: package-lock.json differs from ${ref}; the base runs on this checkout's node_modules`);

  const dirs: Record<Side, string> = { base: worktree, head: repo };
  const pairs = new Map<string, Pair[]>();
  for (const [i, order] of pairOrder(rounds).entries()) {
    const got: Partial<Record<Side, ScenarioResult[]>> = {};
    for (const side of order) {
      log(`round ${i + 1} of ${rounds}: ${side}`);
      got[side] = await benchIn(dirs[side]);
    }
    for (const head of got.head ?? []) {
      const base = got.base?.find((r) => r.name === head.name);
      if (!base) continue;
      const list = pairs.get(head.name) ?? [];
      list.push({ order, base: figuresOf(base), head: figuresOf(head) });
      pairs.set(head.name, list);
    }
  }
  const summaries = [...pairs].map(([scenario, list]) => ({
    scenario,
    pairs: list,
    figures: summarise(scenario, list),
  }));
  process.stdout.write(`head = this checkout, base = ${ref}; ${rounds} pairs, run AB, BA, …\n\n`);
  process.stdout.write(`${summaries.map((s) => formatSummary(s.scenario, s.figures)).join("\n\n")}\n`);
  const dir = join(repo, "bench", "results");
  await mkdir(dir, { recursive: true });
  const file = join(dir, `compare-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  await writeFile(
    file,
    `${JSON.stringify({ base: ref, rounds, flags: runFlags, scenarios: summaries }, null, 2)}\n`,
  );
  log(`comparison written to ${file}`);
} finally {
  await run("git", ["worktree", "remove", "--force", worktree], repo).catch((error: unknown) =>
    log(String(error)),
  );
}
