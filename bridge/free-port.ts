import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** Ports this process has handed out: two callers never get the same one. */
const handedOut = new Set<number>();

/** How many ports below the kernel's ephemeral range are tried. */
const SPAN = 12_000;

/** [low, high) just below the kernel's ephemeral port range, or undefined where the range is not known. */
function belowEphemeral(): { low: number; high: number } | undefined {
  try {
    const [start] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);
    const high = Number(start);
    if (!Number.isInteger(high) || high <= 2_048) return undefined;
    return { low: Math.max(1_024, high - SPAN), high };
  } catch {
    return undefined;
  }
}

const range = belowEphemeral();

/** Listens on `port` (0: any) on loopback and closes again; the port it got, or undefined if taken. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(undefined));
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : undefined));
    });
  });
}

/**
 * A free TCP port on loopback, for a server that listens on it later. Picked below the kernel's ephemeral
 * range where that is known: a port from listen(0) comes out of that range, which is where every outgoing
 * connection's local port comes from too, so between this check and the real listen any client socket on
 * the machine could take it (a test suite failing to start with EADDRINUSE now and then).
 */
export async function freePort(): Promise<number> {
  if (range) {
    for (let attempt = 0; attempt < 100; attempt++) {
      const candidate = range.low + Math.floor(Math.random() * (range.high - range.low));
      if (handedOut.has(candidate)) continue;
      // Taken before the probe, so a concurrent call cannot pick it meanwhile.
      handedOut.add(candidate);
      if ((await probe(candidate)) !== undefined) return candidate;
      handedOut.delete(candidate);
    }
  }
  const port = await probe(0);
  if (port === undefined) throw new Error("no free port on 127.0.0.1");
  handedOut.add(port);
  return port;
}
