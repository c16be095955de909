import { freePort, NatsServer } from "../../bridge/nats-server.ts";

/** Thrown by poll() when the condition never held; carries the last error seen while polling. */
export class PollTimeoutError extends Error {
  override name = "PollTimeoutError";
}

/**
 * Calls `probe` until it returns something other than undefined. Errors count as "not yet": a cluster
 * mid-election answers with timeouts and 503s that are expected, not failures.
 */
export async function poll<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 15_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const detail = lastError instanceof Error ? `: last error ${lastError.message}` : "";
  throw new PollTimeoutError(`timed out after ${timeoutMs}ms waiting for ${what}${detail}`, {
    cause: lastError,
  });
}

/**
 * N nats-server processes on loopback forming one JetStream cluster: free client and route ports, one
 * temp store each, every node routing to every other. Node names are `n1`…`nN`.
 */
export class NatsCluster {
  readonly name: string;
  readonly nodes: ReadonlyMap<string, NatsServer>;

  private constructor(name: string, nodes: Map<string, NatsServer>) {
    this.name = name;
    this.nodes = nodes;
  }

  static async start(size = 3, name = `jetway-${process.pid}`): Promise<NatsCluster> {
    const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
    // All nodes start together: JetStream in a cluster needs a quorum before its meta leader exists.
    const started = await Promise.allSettled(
      clusterPorts.map((port, i) =>
        NatsServer.start({ serverName: `n${i + 1}`, cluster: { name, port, routes } }),
      ),
    );
    const servers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) {
      await Promise.all(servers.map((s) => s.stop()));
      throw failed.reason;
    }
    return new NatsCluster(name, new Map(servers.map((s, i) => [`n${i + 1}`, s])));
  }

  /** Client URLs of every node, for a connection that fails over between them. */
  get urls(): string[] {
    return [...this.nodes.values()].map((n) => n.url);
  }

  node(serverName: string): NatsServer {
    const node = this.nodes.get(serverName);
    if (!node) throw new Error(`no node named ${serverName} in cluster ${this.name}`);
    return node;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.stop()));
  }
}
