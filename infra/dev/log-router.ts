import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { formatLine, type LogLine, parseLine, tagPalette } from "./log-format.ts";

export interface LogRouterOptions {
  /** `.jetway/logs`: each tag's raw lines go to `<dir>/<tag>.log`. */
  dir: string;
  /** Show only this tag's lines on the terminal (files still get everything). */
  only?: string | undefined;
  /** Print the raw JSON lines instead of the readable form. */
  json?: boolean;
  out?: Writable;
  colour?: boolean;
  /** Called for every line (tests and the runner's own checks). */
  onLine?: (line: LogLine) => void;
}

/**
 * Fans the output of the dev processes out by function: a file per tag, and one terminal stream of
 * prefixed, coloured lines (or one tag's lines with --only).
 */
export class LogRouter {
  readonly #files = new Map<string, WriteStream>();
  readonly #palette = tagPalette();
  readonly #options: LogRouterOptions;
  readonly #out: Writable;
  readonly #colour: boolean;

  constructor(options: LogRouterOptions) {
    this.#options = options;
    this.#out = options.out ?? process.stdout;
    this.#colour = options.colour ?? false;
    mkdirSync(options.dir, { recursive: true });
  }

  /** Reads a child's output line by line; `forceTag` ignores `fn` (every bridge line is "[bridge]"). */
  attach(stream: Readable, defaultTag: string, forceTag = false): void {
    const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    lines.on("line", (raw) => {
      if (raw.trim()) this.write(parseLine(raw, defaultTag, forceTag));
    });
  }

  write(line: LogLine): void {
    this.#file(line.tag).write(`${line.raw}\n`);
    this.#options.onLine?.(line);
    if (this.#options.only && line.tag !== this.#options.only) return;
    const text = this.#options.json
      ? line.raw
      : formatLine(line, { colour: this.#colour, tagWidth: 11, tagColour: this.#palette });
    this.#out.write(`${text}\n`);
  }

  #file(tag: string): WriteStream {
    let file = this.#files.get(tag);
    if (!file) {
      const safe = tag.replace(/[^A-Za-z0-9_.-]/g, "_");
      file = createWriteStream(join(this.#options.dir, `${safe}.log`), { flags: "a" });
      this.#files.set(tag, file);
    }
    return file;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#files.values()].map((f) => new Promise<void>((r) => f.end(r))));
    this.#files.clear();
  }
}
