import type { DevPorts } from "./ports.ts";
import { FUNCTION_NAMES, localUrl } from "./ports.ts";

/** The example order of the banner and the README: SKUs the dev seed stocks, the simulator's good card. */
export const EXAMPLE_ORDER = {
  customer_id: "cus_demo",
  currency: "EUR",
  payment_token: "tok_visa",
  items: [
    { sku: "sku-coffee", quantity: 2, unit_price_minor: 1250 },
    { sku: "sku-mug", quantity: 1, unit_price_minor: 900 },
  ],
};

/** The working curl commands printed at start: create an order, then watch its status. */
export function curlExample(ports: DevPorts): { create: string; watch: string } {
  const order = localUrl(ports.functions.order);
  const create = [
    `curl -sS -X POST ${order}/orders`,
    `-H 'content-type: application/json'`,
    `-H 'Idempotency-Key: demo-order-2'`,
    `-d '${JSON.stringify(EXAMPLE_ORDER)}'`,
  ].join(" ");
  return { create, watch: `curl -sS ${order}/orders/<order_id>` };
}

/** `jetway status` against the running stack: the re-pointed config, and its NATS when not the default. */
export function statusCommand(natsUrl: string, dataDir: string): string {
  const env = natsUrl === "nats://127.0.0.1:4222" ? "" : `NATS_URL=${natsUrl} `;
  return `${env}npm run jetway -- status --config ${dataDir}/bridge.dev.yaml`;
}

export function banner(ports: DevPorts, natsUrl: string, dataDir: string): string {
  const { create, watch } = curlExample(ports);
  const rows = FUNCTION_NAMES.map((name) => `  ${name.padEnd(12)} ${localUrl(ports.functions[name])}`);
  return [
    "",
    "jetway dev is up",
    `  ${"bridge".padEnd(12)} ${localUrl(ports.bridge)}  (POST /v1/publish/<subject>, /readyz, /metrics)`,
    ...rows,
    `  ${"nats".padEnd(12)} ${natsUrl}`,
    `  logs         ${dataDir}/logs/<function>.log`,
    "",
    "Create an order:",
    `  ${create}`,
    "then watch it go to paid / reserved / confirmed:",
    `  ${watch}`,
    "Every route at once (lag, messages held, dead letters, open circuits):",
    `  ${statusCommand(natsUrl, dataDir)}`,
    "",
  ].join("\n");
}
