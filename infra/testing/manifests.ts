import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments } from "yaml";
import { z } from "zod";
import { configSchema } from "../../bridge/config.ts";

/** infra/ and the repo root, wherever the tests run from. */
export const INFRA = dirname(dirname(fileURLToPath(import.meta.url)));
export const ROOT = dirname(INFRA);

export const readText = (path: string): string => readFileSync(join(ROOT, path), "utf8");

/** A loosely typed YAML node: tests walk manifests whose shape they assert as they go. */
export type Node = Record<string, unknown>;

export const asNode = (value: unknown, what: string): Node => {
  if (!value || typeof value !== "object" || Array.isArray(value))
    throw new TypeError(`${what} is not a mapping`);
  return value as Node;
};

export const asList = (value: unknown, what: string): unknown[] => {
  if (!Array.isArray(value)) throw new TypeError(`${what} is not a list`);
  return value;
};

/** Follows a dotted path (`spec.template.spec`) through mappings. */
export function at(node: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((cur, key) => asNode(cur, `${path} (at ${key})`)[key], node);
}

/** A YAML file; `merge` turns on `<<:` merge keys (compose anchors). Parse errors throw. */
export function readYaml(path: string, merge = false): Node {
  return asNode(parse(readText(path), { merge }), path);
}

/** Every document of a multi-document YAML file (`---` separated), failing on any parse error. */
export function readYamlDocs(path: string): Node[] {
  return parseAllDocuments(readText(path)).map((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${path} document ${i}: ${doc.errors[0]?.message}`);
    return asNode(doc.toJS(), `${path} document ${i}`);
  });
}

/** `${VAR}` references without a default: what must be in the environment for a config to load. */
export function requiredEnv(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] ?? ""))];
}

/** Every option path of the bridge config schema: `nats.tls.ca_file`, `routes[].batch.size`, … */
export function configOptionPaths(): string[] {
  const paths: string[] = [];
  const walk = (schema: unknown, prefix: string) => {
    const node = asNode(schema, prefix || "schema");
    if (node.type === "array" && node.items) return walk(node.items, `${prefix}[]`);
    for (const variant of [...((node.anyOf as unknown[]) ?? []), ...((node.oneOf as unknown[]) ?? [])]) {
      walk(variant, prefix);
    }
    const properties = node.properties as Record<string, unknown> | undefined;
    for (const [key, child] of Object.entries(properties ?? {})) {
      const path = prefix ? `${prefix}.${key}` : key;
      paths.push(path);
      walk(child, path);
    }
  };
  walk(z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }), "");
  return paths;
}
