import { randomBytes } from "node:crypto";
import { link, mkdir, readdir, readFile, unlink, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { ObjectStore } from "./entry.ts";

/**
 * The audit log in a local directory (default `.jetway/audit`). A write goes to a temp file first and is
 * then hard-linked into place: link() is atomic and fails if the key exists, so a crash never leaves a
 * torn entry and a redelivery never rewrites one.
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
    if (!this.#dirs.has(dir)) await this.#mkdir(dir);
    const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      await writeFile(tmp, body, { flag: "wx" });
    } catch (err) {
      // Removed behind our back: make it again, once.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      await this.#mkdir(dir);
      await writeFile(tmp, body, { flag: "wx" });
    }
    try {
      await link(tmp, path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    } finally {
      await unlink(tmp);
    }
  }

  async #mkdir(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
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
