/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): self time by function and by file.
 *   node bench/profile.ts bench/profiles/CPU.<…>.cpuprofile [--top 25]
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time in ms per key, heaviest first. */
export function selfTimes(profile: CpuProfile, key: (node: ProfileNode) => string): [string, number][] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const k = key(node);
    totals.set(k, (totals.get(k) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return [...totals].sort((a, b) => b[1] - a[1]);
}

const shortUrl = (url: string) =>
  url
    .replace(/^file:\/\//, "")
    .replace(/.*node_modules\//, "~/")
    .replace(/^.*\/work\/main\//, "");

if (import.meta.main) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { top: { type: "string", default: "25" } },
  });
  const file = positionals[0];
  if (!file) throw new Error("usage: node bench/profile.ts <file.cpuprofile> [--top N]");
  const profile = JSON.parse(await readFile(file, "utf8")) as CpuProfile;
  const top = Number(values.top);
  const all = selfTimes(profile, () => "all")[0]?.[1] ?? 0;
  const print = (title: string, rows: [string, number][]) => {
    process.stdout.write(`\n${title} (of ${all.toFixed(0)} ms sampled)\n`);
    for (const [k, ms] of rows.slice(0, top))
      process.stdout.write(
        `${ms.toFixed(1).padStart(9)} ms ${((ms / all) * 100).toFixed(1).padStart(5)}%  ${k}\n`,
      );
  };
  print(
    "self time by function",
    selfTimes(
      profile,
      (n) =>
        `${n.callFrame.functionName || "(anon)"} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`,
    ),
  );
  print(
    "self time by file",
    selfTimes(profile, (n) => shortUrl(n.callFrame.url) || n.callFrame.functionName),
  );
}
