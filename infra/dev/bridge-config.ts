import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { type DevPorts, functionAtDefaultPort } from "./ports.ts";

/** Plain YAML object of a bridge config, before validation (so ${VAR} references survive). */
export type RawConfig = Record<string, unknown>;

export async function readRawConfig(file: string): Promise<RawConfig> {
  const raw: unknown = parseYaml(await readFile(file, "utf8"));
  if (!raw || typeof raw !== "object" || Array.isArray(raw))
    throw new TypeError(`${file} is not a YAML mapping`);
  return raw as RawConfig;
}

/** A route URL pointing at a default dev port, moved to that function's port in `ports`. */
export function repoint(url: string, ports: DevPorts): string {
  const parsed = new URL(url);
  const name = functionAtDefaultPort(Number(parsed.port));
  if (!name) return url;
  parsed.port = String(ports.functions[name]);
  return parsed.toString();
}

/**
 * infra/bridge.dev.yaml re-pointed at the given ports: the bridge's HTTP port and every route URL that
 * names a default dev function port. `patch` merges per-route overrides (e.g. short backoffs in tests).
 */
export function devBridgeConfig(
  raw: RawConfig,
  ports: DevPorts,
  patch: { routes?: Record<string, Record<string, unknown>>; [key: string]: unknown } = {},
): RawConfig {
  const { routes: routePatch = {}, ...rest } = patch;
  const http = { ...(raw.http as Record<string, unknown> | undefined), port: ports.bridge };
  const routes = ((raw.routes as Record<string, unknown>[] | undefined) ?? []).map((route) => {
    const url = typeof route.url === "string" ? repoint(route.url, ports) : route.url;
    return { ...route, url, ...routePatch[String(route.name)] };
  });
  return { ...raw, http, routes, ...rest };
}
