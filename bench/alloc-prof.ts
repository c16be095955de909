/**
 * A sampled allocation profile of this process (`npm run bench -- --alloc-prof`): what was allocated from
 * `startAllocationProfile()` until `stop()`, objects the collector has already freed included, one sample
 * every ~8 KiB allocated. V8's default keeps only what is still alive when the profile is taken, which says
 * nothing about the garbage that makes a process collect (bench finding 17).
 */
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { join } from "node:path";

export interface AllocationProfile {
  /** Ends sampling and writes `ALLOC.<pid>.heapprofile` into the directory; returns the file. */
  stop(): Promise<string>;
}

export async function startAllocationProfile(dir: string, intervalBytes = 8_192): Promise<AllocationProfile> {
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: intervalBytes,
    // Not in Node's typings yet: keep samples of objects the scavenger and the full collector freed.
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  } as { samplingInterval: number });
  return {
    async stop() {
      const { profile } = await session.post("HeapProfiler.stopSampling");
      session.disconnect();
      const file = join(dir, `ALLOC.${process.pid}.heapprofile`);
      await writeFile(file, JSON.stringify(profile));
      return file;
    },
  };
}
