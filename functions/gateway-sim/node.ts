import { serve } from "@hono/node-server";
import { createFunctionLogger } from "../sdk/logger.ts";
import { createGatewayApp } from "./app.ts";
import { GatewayState } from "./state.ts";

/** Dev only. `node functions/gateway-sim/node.ts` — PORT (8790), GATEWAY_LATENCY_MS, GATEWAY_ERROR_RATE, GATEWAY_THROTTLE_RATE. */
const num = (value: string | undefined, fallback: number) => (value === undefined ? fallback : Number(value));
const env = process.env;
const state = new GatewayState({
  controls: {
    latency_ms: num(env.GATEWAY_LATENCY_MS, 0),
    error_rate: num(env.GATEWAY_ERROR_RATE, 0),
    throttle_rate: num(env.GATEWAY_THROTTLE_RATE, 0),
  },
});
const port = num(env.PORT, 8790);
serve({ fetch: createGatewayApp(state).fetch, port }, (info) => {
  createFunctionLogger("gateway-sim").info({ port: info.port, controls: state.controls }, "listening");
});
