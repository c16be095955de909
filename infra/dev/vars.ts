import { join } from "node:path";
import { type DevPorts, localUrl } from "./ports.ts";

/** The signing secret shared by the dev bridge and functions when JETWAY_SECRET is not set. */
export const DEV_SECRET = "dev-secret";

/** The bindings every dev function request sees: where the gateway, the bridge and the audit log are. */
export function functionVars(
  ports: DevPorts,
  dataDir: string,
  env: NodeJS.ProcessEnv,
): Record<string, string> {
  const vars: Record<string, string> = {
    JETWAY_SECRET: env.JETWAY_SECRET ?? DEV_SECRET,
    GATEWAY_URL: localUrl(ports.functions["gateway-sim"]),
    JETWAY_PUBLISH_URL: localUrl(ports.bridge),
    AUDIT_DIR: env.AUDIT_DIR ?? join(dataDir, "audit"),
  };
  if (env.JETWAY_PUBLISH_TOKEN) vars.JETWAY_PUBLISH_TOKEN = env.JETWAY_PUBLISH_TOKEN;
  if (env.JETWAY_PUBLISH_SECRET) vars.JETWAY_PUBLISH_SECRET = env.JETWAY_PUBLISH_SECRET;
  return vars;
}
