import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import type { RouteConfig } from "./config.ts";

/** What undici's connector takes for TLS towards a function (a subset of tls.ConnectionOptions). */
export interface FunctionTlsOptions {
  ca?: (string | Buffer)[];
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
}

/** A TLS file of the config that cannot be read: start-up stops and names it. */
export class TlsFileError extends Error {
  override name = "TlsFileError";
}

/** Reads a certificate or key file named by the config field `field` (for the error). */
export function readTlsFile(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new TlsFileError(`${field}: cannot read ${path} (${(error as Error).message})`, { cause: error });
  }
}

/**
 * A route's `tls` as connect options, its files read once at start-up. A private CA is added to Node's
 * bundled roots rather than replacing them: Node's `ca` option replaces the whole trust store.
 */
export function functionTls(route: Pick<RouteConfig, "name" | "tls">): FunctionTlsOptions | undefined {
  const { tls } = route;
  if (!tls) return undefined;
  const read = (field: "ca_file" | "cert_file" | "key_file"): Buffer | undefined => {
    const path = tls[field];
    return path === undefined ? undefined : readTlsFile(path, `route "${route.name}" tls.${field}`);
  };
  const ca = read("ca_file");
  const cert = read("cert_file");
  const key = read("key_file");
  return {
    ...(ca && { ca: [...rootCertificates, ca] }),
    ...(cert && { cert }),
    ...(key && { key }),
    ...(tls.server_name !== undefined && { servername: tls.server_name }),
  };
}
