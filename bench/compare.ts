/**
 * `npm run bench:compare -- <git-ref>`: the code in this checkout (head, uncommitted edits included) against
 * another commit (base), scenario by scenario, in pairs run in alternating order (AB, BA, …) so that what
 * a slow spell or the second-run advantage does to one side falls on the other too. Prints head/base per
 * figure for every pair, the range in each order, and CPU normalised by a process neither side changed;
 * writes the lot as JSON to bench/results/compare-<timestamp>.json. See bench/README.md.
 * `--base-env` / `--head-env NAME=VALUE` set a variable for one side's runs; without a ref both sides run
 * this checkout, so a setting (a nats-server binary, GOMAXPROCS) is compared the same way.
 *
 *   node bench/compare.ts [<git-ref>] [--rounds 4] [--only bridge,pipeline] [--head-env NAME=VALUE]…
 *                         [-- <more bench/run.ts flags>]
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseCompareArgs } from "./compare-args.ts";
import { figuresOf, formatSummary, type Pair, pairOrder, type Side, summarise } from "./compare-stats.ts";
import type { ScenarioResult } from "./scenarios/common.ts";

const { ref, rounds, runFlags, env } = parseCompareArgs(process.argv.slice(2));
const repo = fileURLToPath(new URL("..", import.meta.url));
const log = (line: string) => process.stderr.write(`${line}\n`);

function run(cmd: string, args: string[], cwd: string, vars: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, ...vars },
      stdio: ["ignore", "pipe", "pipe"],
    });
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
async function benchIn(dir: string, vars: Record<string, string>): Promise<ScenarioResult[]> {
  const out = await run(process.execPath, ["bench/run.ts", ...runFlags], dir, vars);
  const file = /results written to (.+\.json)/.exec(out)?.[1];
  if (!file) throw new Error(`no results file in the bench's output:\n${out.slice(-2000)}`);
  const report = JSON.parse(await readFile(file, "utf8")) as { results: ScenarioResult[] };
  await rm(file, { force: true });
  return report.results;
}

/** The base's checkout: a temporary worktree of the ref, on this checkout's dependencies. */
async function checkout(commit: string): Promise<string> {
  const worktree = await mkdtemp(join(tmpdir(), "jetway-compare-"));
  await rm(worktree, { recursive: true });
  await run("git", ["worktree", "add", "--detach", worktree, commit], repo);
  try {
    await symlink(join(repo, "node_modules"), join(worktree, "node_modules"), "dir");
    const lockDiff = await run("git", ["diff", "--stat", commit, "--", "package-lock.json"], repo);
    if (lockDiff.trim())
      log(`note: package-lock.json differs from ${commit}; the base runs on this checkout's node_modules`);
    return worktree;
  } catch (error) {
    await removeWorktree(worktree);
    throw error;
  }
}

const removeWorktree = (worktree: string) =>
  run("git", ["worktree", "remove", "--force", worktree], repo).catch((error: unknown) => log(String(error)));

const describeEnv = (vars: Record<string, string>) =>
  Object.entries(vars)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
const baseName = [ref ?? "this checkout", describeEnv(env.base)].filter(Boolean).join(" with ");
const headName = ["this checkout", describeEnv(env.head)].filter(Boolean).join(" with ");
const worktree = ref === undefined ? undefined : await checkout(ref);
try {
  const dirs: Record<Side, string> = { base: worktree ?? repo, head: repo };
  const pairs = new Map<string, Pair[]>();
  for (const [i, order] of pairOrder(rounds).entries()) {
    const got: Partial<Record<Side, ScenarioResult[]>> = {};
    for (const side of order) {
      log(`round ${i + 1} of ${rounds}: ${side}`);
      got[side] = await benchIn(dirs[side], env[side]);
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
  process.stdout.write(`head = ${headName}, base = ${baseName}; ${rounds} pairs, run AB, BA, …\n\n`);
  process.stdout.write(`${summaries.map((s) => formatSummary(s.scenario, s.figures)).join("\n\n")}\n`);
  const dir = join(repo, "bench", "results");
  await mkdir(dir, { recursive: true });
  const file = join(dir, `compare-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  await writeFile(
    file,
    `${JSON.stringify({ base: ref, env, rounds, flags: runFlags, scenarios: summaries }, null, 2)}\n`,
  );
  log(`comparison written to ${file}`);
} finally {
  if (worktree) await removeWorktree(worktree);
}
