import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync } from "node:fs";
import { open, readdir, readFile, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join, posix } from "node:path";
import { Coalescer } from "../sdk/coalesce.ts";
import type { ObjectStore } from "./entry.ts";

/** Where an entry sits: its segment file and the byte range of its body. */
interface Located {
  file: string;
  start: number;
  end: number;
}

const SEGMENT = ".log";

interface Append {
  dir: string;
  key: string;
  record: string;
}
const newSegmentName = () => `${hostname()}-${process.pid}-${randomBytes(4).toString("hex")}${SEGMENT}`;

/**
 * Keys a writer remembers per key directory by default: ~18 MB of heap each when full (~90 bytes a key),
 * and at 1,000 messages/s on a stream, the last 200 s — past any redelivery of the reference routes.
 * Remembering every key grew the heap without end: ~4 MB/s at the case study's peak (43k events/s).
 */
export const REMEMBERED_KEYS = 200_000;

/**
 * A writer moves to a new segment once this many bytes went into the current one in any directory: a
 * segment is read whole (Node reads no file over 2 GiB at once), and a stream's log grows without end.
 */
export const SEGMENT_BYTES = 256 * 1024 * 1024;

/**
 * The last `capacity` keys added, oldest forgotten first: a ring of keys for the order, a Set for lookup.
 * A Set alone would have to iterate past its deleted entries to find the oldest live one.
 */
class RecentKeys {
  readonly capacity: number;
  readonly #keys = new Set<string>();
  /** Keys in the order added; grows to `capacity`, then the oldest slot is reused. */
  readonly #ring: string[] = [];
  #next = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  add(key: string): void {
    if (this.capacity === 0 || this.#keys.has(key)) return;
    this.#keys.add(key);
    if (this.#ring.length < this.capacity) {
      this.#ring.push(key);
      return;
    }
    this.#keys.delete(this.#ring[this.#next] as string);
    this.#ring[this.#next] = key;
    this.#next = (this.#next + 1) % this.capacity;
  }

  clear(): void {
    this.#keys.clear();
    this.#ring.length = 0;
    this.#next = 0;
  }
}

export interface DirStoreOptions {
  /**
   * Keys remembered per key directory (default REMEMBERED_KEYS), so a long-running writer's memory stays
   * bounded. A redelivery of a key older than that (later than the last that many appends to its stream)
   * is appended again, and readers keep the first copy.
   */
  rememberedKeys?: number;
  /** Bytes a writer appends to one segment before it starts another (default SEGMENT_BYTES). */
  segmentBytes?: number;
}

/**
 * The audit log in a local directory (default `.jetway/audit`): for each key directory (a stream), append-
 * only segment files, one per writing process, each entry a header line `<key> <bytes>` and then the body.
 * An append is a few microseconds; a file per entry cost a new inode each — 40–650 µs of kernel time per
 * event on the benchmark machine, most of the audit function's CPU.
 *
 * - Once per key: a writer skips keys already in the directory (every segment, read when it first writes
 *   there) or appended by itself since, as far as it remembers them (the last `rememberedKeys` per
 *   directory). Two writers sharing the directory can both append a message that was redelivered from one
 *   to the other, and a redelivery older than what a writer remembers is appended again; readers keep the
 *   first copy (the bodies are identical).
 * - Crash-safe: an entry is one append; a torn last entry (a crash mid-write) is ignored by readers, and
 *   its message, never acknowledged, is delivered and written again.
 * - Entries written as one file each (`<stream>/<seq>.json`, the layout before segments) are read too.
 */
export class DirStore implements ObjectStore {
  readonly root: string;
  /** This writer's segment name: a file of its own, so no two writers append to one file. */
  #segment = newSegmentName();
  readonly #segmentLimit: number;
  /** Bytes this writer appended to its current segment, per key directory. */
  readonly #segmentBytes = new Map<string, number>();
  /** Per key directory: the keys this writer knows are stored there (the most recent ones). */
  readonly #written = new Map<string, Promise<RecentKeys>>();
  readonly #remembered: number;
  /** Keys whose append is on its way. */
  readonly #pending = new Map<string, Promise<boolean>>();
  /** Per key directory: the last index read, valid while its files and their sizes stay the same. */
  readonly #read = new Map<string, { signature: string; index: Map<string, Located> }>();

  constructor(root: string, options: DirStoreOptions = {}) {
    this.root = root;
    const remembered = options.rememberedKeys ?? REMEMBERED_KEYS;
    if (!Number.isInteger(remembered) || remembered < 0)
      throw new RangeError(`rememberedKeys must be a whole number >= 0, got ${remembered}`);
    this.#remembered = remembered;
    this.#segmentLimit = options.segmentBytes ?? SEGMENT_BYTES;
  }

  async putIfAbsent(key: string, body: string): Promise<boolean> {
    const dir = dirname(key);
    let known = this.#written.get(dir);
    if (!known) {
      known = this.#index(dir, false).then((index) => {
        const keys = new RecentKeys(this.#remembered);
        for (const key of index.keys()) keys.add(key);
        return keys;
      });
      this.#written.set(dir, known);
      // A read that failed once (EMFILE, a segment gone between readdir and stat) is tried again next time.
      known.catch(() => {
        if (this.#written.get(dir) === known) this.#written.delete(dir);
      });
    }
    const written = await known;
    const pending = this.#pending.get(key);
    // The same key on its way already: stored once, and refused (to be retried) if that write fails.
    if (pending) return pending.then(() => false);
    if (written.has(key)) return false;
    const record = `${key} ${Buffer.byteLength(body)}\n${body}\n`;
    const appended = this.#appends.add({ dir, key, record });
    this.#pending.set(key, appended);
    try {
      return await appended;
    } finally {
      this.#pending.delete(key);
    }
  }

  /** Entries put in one event-loop turn: one append per key directory (one open, write and close). */
  readonly #appends = new Coalescer<Append, true>(async (entries) => {
    const byDir = new Map<string, Append[]>();
    for (const e of entries) {
      const group = byDir.get(e.dir);
      if (group) group.push(e);
      else byDir.set(e.dir, [e]);
    }
    const failed = new Map<Append, Error>();
    for (const [dir, group] of byDir) {
      try {
        await this.#append(dir, group);
      } catch (err) {
        for (const e of group) failed.set(e, err as Error);
      }
    }
    return entries.map((e) => failed.get(e) ?? true);
  });

  async #append(dir: string, group: readonly Append[]): Promise<void> {
    const written = (await this.#written.get(dir)) ?? new RecentKeys(this.#remembered);
    const text = group.map((e) => e.record).join("");
    const path = join(this.root, dir, this.#segment);
    try {
      try {
        appendFileSync(path, text);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        // The directory is gone (removed behind our back, or new): what this writer knew went with it.
        mkdirSync(dirname(path), { recursive: true });
        written.clear();
        appendFileSync(path, text);
      }
    } catch (err) {
      // Part of the entries may have reached the file (a full disk): readers stop at a torn entry, so
      // later ones go to a fresh segment.
      this.#nextSegment();
      throw err;
    }
    for (const e of group) written.add(e.key);
    const bytes = (this.#segmentBytes.get(dir) ?? 0) + Buffer.byteLength(text);
    this.#segmentBytes.set(dir, bytes);
    if (bytes >= this.#segmentLimit) this.#nextSegment();
  }

  #nextSegment(): void {
    this.#segment = newSegmentName();
    this.#segmentBytes.clear();
  }

  async get(key: string): Promise<string | undefined> {
    const at = (await this.#index(dirname(key))).get(key);
    if (!at) return undefined;
    if (at.end === Number.POSITIVE_INFINITY) return readFile(at.file, "utf8");
    const file = await open(at.file, "r");
    try {
      const body = Buffer.alloc(at.end - at.start);
      await file.read(body, 0, body.length, at.start);
      return body.toString("utf8");
    } finally {
      await file.close();
    }
  }

  async list(prefix = ""): Promise<string[]> {
    const keys: string[] = [];
    for (const dir of await this.#dirs()) {
      for (const key of (await this.#index(dir)).keys()) if (key.startsWith(prefix)) keys.push(key);
    }
    return keys.sort();
  }

  /** Key directories under the root, as keys name them (`/`-separated). */
  async #dirs(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.root, { recursive: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const dirs = new Set<string>();
    for (const name of names) {
      if (name.endsWith(SEGMENT) || name.endsWith(".json"))
        dirs.add(posix.dirname(name.split("\\").join("/")));
    }
    return [...dirs];
  }

  /**
   * Every entry of one key directory, first copy of each key winning: segments, then single files. Kept for
   * the next read while the directory's files and sizes stay the same; a writer's one load is not kept
   * (it needs the keys only, and holds them itself).
   */
  async #index(dir: string, keep = true): Promise<Map<string, Located>> {
    const path = join(this.root, dir);
    let names: string[];
    try {
      names = (await readdir(path)).filter((n) => n.endsWith(SEGMENT) || n.endsWith(".json")).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return new Map();
      throw err;
    }
    const segments = names.filter((n) => n.endsWith(SEGMENT));
    const sizes = await Promise.all(segments.map(async (n) => (await stat(join(path, n))).size));
    const signature = `${names.join("/")}|${sizes.join("/")}`;
    const cached = this.#read.get(dir);
    if (cached?.signature === signature) return cached.index;
    const index = new Map<string, Located>();
    for (const name of segments) {
      const file = join(path, name);
      for (const [key, at] of parseSegment(await readFile(file), file))
        if (!index.has(key)) index.set(key, at);
    }
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      const key = dir === "." ? name : `${dir}/${name}`;
      if (!index.has(key))
        index.set(key, { file: join(path, name), start: 0, end: Number.POSITIVE_INFINITY });
    }
    if (keep) this.#read.set(dir, { signature, index });
    return index;
  }
}

/** The entries of one segment, in order; stops at a torn or malformed entry (nothing after it is trusted). */
function parseSegment(data: Buffer, file: string): [string, Located][] {
  const entries: [string, Located][] = [];
  let at = 0;
  while (at < data.length) {
    const eol = data.indexOf(0x0a, at);
    if (eol < 0) break;
    const header = data.subarray(at, eol).toString("utf8");
    const space = header.lastIndexOf(" ");
    const length = Number(header.slice(space + 1));
    const start = eol + 1;
    const end = start + length;
    if (space <= 0 || !Number.isInteger(length) || length < 0 || end >= data.length || data[end] !== 0x0a)
      break;
    entries.push([header.slice(0, space), { file, start, end }]);
    at = end + 1;
  }
  return entries;
}
