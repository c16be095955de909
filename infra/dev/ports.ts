/**
 * The local dev port layout. Without a base the fixed ports of infra/bridge.dev.yaml apply; with
 * `--port-base N` (or JETWAY_PORT_BASE) everything moves into one contiguous block starting at N, so
 * several dev stacks (or tests) can run side by side.
 */
export const FUNCTION_NAMES = ["gateway-sim", "order", "payment", "inventory", "audit"] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

export interface DevPorts {
  bridge: number;
  /** Used only when the runner starts its own nats-server. */
  nats: number;
  functions: Record<FunctionName, number>;
}

export const DEFAULT_PORTS: DevPorts = {
  bridge: 8080,
  nats: 4222,
  functions: { "gateway-sim": 8790, order: 8791, payment: 8792, inventory: 8793, audit: 8794 },
};

/** bridge N, gateway-sim N+1, order N+2, payment N+3, inventory N+4, audit N+5, nats N+6. */
export function devPorts(base?: number): DevPorts {
  if (base === undefined) return structuredClone(DEFAULT_PORTS);
  if (!Number.isInteger(base) || base < 1 || base + 6 > 65_535) {
    throw new RangeError(`port base must be an integer between 1 and 65529, got ${base}`);
  }
  const functions = Object.fromEntries(FUNCTION_NAMES.map((name, i) => [name, base + 1 + i])) as Record<
    FunctionName,
    number
  >;
  return { bridge: base, nats: base + 6, functions };
}

export const localUrl = (port: number, path = ""): string => `http://127.0.0.1:${port}${path}`;

/** The function served on a default dev port (used to re-point route URLs of the dev bridge config). */
export function functionAtDefaultPort(port: number): FunctionName | undefined {
  return FUNCTION_NAMES.find((name) => DEFAULT_PORTS.functions[name] === port);
}
