import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { ObjectStore } from "./entry.ts";

/**
 * The audit log in a local directory (default `.jetway/audit`). A write goes to a temp file first and is
 * then hard-linked into place: link() is atomic and fails if the key exists, so a crash never leaves a
 * torn entry and a redelivery never rewrites one.
 *
 * The writes are synchronous on purpose: an entry is a few hundred bytes on a local disk, where each of the
 * five calls takes microseconds, while a call through libuv's thread pool costs a thread hand-off and a
 * wake-up of the event loop — more CPU than the write itself (about a quarter of the audit function's CPU
 * in the pipeline benchmark). A remote or slow file system wants an object store (S3Store) instead.
 */
export class DirStore implements ObjectStore {
  readonly root: string;
  /** Directories known to exist: one mkdir per stream, not one per event. */
  readonly #dirs = new Set<string>();
  constructor(root: string) {
    this.root = root;
  }

  async putIfAbsent(key: string, body: string): Promise<boolean> {
    const path = join(this.root, key);
    const dir = dirname(path);
    if (!this.#dirs.has(dir)) this.#mkdir(dir);
    const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      writeFileSync(tmp, body, { flag: "wx" });
    } catch (err) {
      // Removed behind our back: make it again, once.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      this.#mkdir(dir);
      writeFileSync(tmp, body, { flag: "wx" });
    }
    try {
      linkSync(tmp, path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    } finally {
      unlinkSync(tmp);
    }
  }

  #mkdir(dir: string): void {
    mkdirSync(dir, { recursive: true });
    this.#dirs.add(dir);
  }

  async get(key: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.root, key), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  async list(prefix = ""): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.root, { recursive: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return names
      .map((n) => relative(this.root, join(this.root, n)).split(sep).join("/"))
      .filter((k) => k.endsWith(".json") && k.startsWith(prefix))
      .sort();
  }
}
