import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { allEvents } from "./index.ts";

export const JSON_DIR = join(dirname(fileURLToPath(import.meta.url)), "json");

/**
 * One JSON Schema per subject, keyed by file name. `io: "input"` describes what a producer may put on the
 * wire: fields with defaults are optional and unknown fields are allowed, so adding an optional field to
 * a version stays compatible for consumers written against the file.
 */
export function renderJsonSchemas(): Map<string, string> {
  const files = new Map<string, string>();
  for (const event of allEvents) {
    const schema = z.toJSONSchema(event.schema, { io: "input", target: "draft-2020-12" });
    const document = { $id: `${event.subject}.json`, title: event.subject, ...schema };
    files.set(`${event.subject}.json`, `${JSON.stringify(document, null, 2)}\n`);
  }
  return files;
}

async function main(): Promise<void> {
  const files = renderJsonSchemas();
  await mkdir(JSON_DIR, { recursive: true });
  // Drop files of subjects that no longer exist so the directory mirrors the source exactly.
  for (const existing of await readdir(JSON_DIR)) {
    if (!files.has(existing)) await rm(join(JSON_DIR, existing));
  }
  for (const [name, text] of files) await writeFile(join(JSON_DIR, name), text);
  process.stdout.write(`wrote ${files.size} schemas to ${JSON_DIR}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
