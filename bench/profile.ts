/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): self time by function and by file; or a
 * .heapprofile (from `--alloc-prof`): bytes allocated by function and by file.
 *   node bench/profile.ts bench/profiles/CPU.<…>.cpuprofile [--top 25]
 *   node bench/profile.ts bench/profiles/ALLOC.<pid>.heapprofile [--top 25]
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

interface HeapProfileNode {
  callFrame: ProfileNode["callFrame"];
  selfSize: number;
  children: HeapProfileNode[];
}
export interface HeapProfile {
  head: HeapProfileNode;
}

/** Sampled bytes allocated per key (each node's own allocations), largest first. */
export function allocatedBytes(
  profile: HeapProfile,
  key: (node: HeapProfileNode) => string,
): [string, number][] {
  const totals = new Map<string, number>();
  const pending = [profile.head];
  for (let node = pending.pop(); node; node = pending.pop()) {
    if (node.selfSize > 0) totals.set(key(node), (totals.get(key(node)) ?? 0) + node.selfSize);
    pending.push(...node.children);
  }
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
  if (!file) throw new Error("usage: node bench/profile.ts <file.cpuprofile|file.heapprofile> [--top N]");
  const parsed = JSON.parse(await readFile(file, "utf8")) as CpuProfile | HeapProfile;
  const top = Number(values.top);
  const byFunction = (n: { callFrame: ProfileNode["callFrame"] }) =>
    `${n.callFrame.functionName || "(anon)"} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const byFile = (n: { callFrame: ProfileNode["callFrame"] }) =>
    shortUrl(n.callFrame.url) || n.callFrame.functionName;
  const print = (title: string, rows: [string, number][], all: number, unit: (v: number) => string) => {
    process.stdout.write(`\n${title} (of ${unit(all)} sampled)\n`);
    for (const [k, v] of rows.slice(0, top))
      process.stdout.write(`${unit(v).padStart(12)} ${((v / all) * 100).toFixed(1).padStart(5)}%  ${k}\n`);
  };
  if ("head" in parsed) {
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MB`;
    const all = allocatedBytes(parsed, () => "all")[0]?.[1] ?? 0;
    print("bytes allocated by function", allocatedBytes(parsed, byFunction), all, mb);
    print("bytes allocated by file", allocatedBytes(parsed, byFile), all, mb);
  } else {
    const ms = (v: number) => `${v.toFixed(1)} ms`;
    const all = selfTimes(parsed, () => "all")[0]?.[1] ?? 0;
    print("self time by function", selfTimes(parsed, byFunction), all, ms);
    print("self time by file", selfTimes(parsed, byFile), all, ms);
  }
}
