import { freePort, NatsServer, portTaken } from "../../bridge/nats-server.ts";

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

/** A node of a test cluster: its server name, its process and its monitoring port. */
export interface ClusterNode {
  name: string;
  server: NatsServer;
  monitorPort: number;
}

interface MetaCluster {
  leader?: string;
  replicas?: { name: string }[];
}

async function metaClusterOf(monitorPort: number): Promise<MetaCluster | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${monitorPort}/jsz`, { signal: AbortSignal.timeout(2_000) });
    return ((await res.json()) as { meta_cluster?: MetaCluster }).meta_cluster;
  } catch {
    return undefined;
  }
}

/**
 * Waits until the JetStream meta group holds every node. nats-server 2.10 can bootstrap a fresh cluster's
 * meta group with only the nodes whose votes elected the first leader, shrinking its expected size to
 * match and leaving the other node out for good, so R3 streams get "no suitable peers for placement"
 * however long one waits (2 to 5 in 40 fresh 3-node starts on a loaded 2-core machine; `/jsz` shows
 * `cluster_size` 2). Restarting the node left out makes it join; so does this, after `restartAfterMs`.
 */
export async function awaitMetaGroup(
  nodes: readonly ClusterNode[],
  { restartAfterMs = 8_000, timeoutMs = 60_000 } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let incompleteSince: number | undefined;
  let members = new Set<string>();
  let metas: (MetaCluster | undefined)[] = [];
  while (Date.now() < deadline) {
    metas = await Promise.all(nodes.map((n) => metaClusterOf(n.monitorPort)));
    // The leader's own view: 2.10 lists the meta group's other members only there, while newer servers
    // (2.15.1 here) list each node's own, possibly stale, view everywhere, without the node itself.
    const view = metas.find((m, i) => m?.leader !== undefined && m.leader === nodes[i]?.name);
    if (view?.leader) {
      members = new Set([view.leader, ...(view.replicas ?? []).map((r) => r.name)]);
      if (members.size === nodes.length) return;
      incompleteSince ??= Date.now();
      if (Date.now() - incompleteSince > restartAfterMs) {
        for (const node of nodes) {
          if (members.has(node.name)) continue;
          process.stderr.write(`restarting ${node.name}: the JetStream meta group formed without it\n`);
          await node.server.restart();
        }
        incompleteSince = undefined;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const seen = nodes.map((n, i) => `${n.name}: leader ${metas[i]?.leader ?? "none"}`).join("; ");
  throw new PollTimeoutError(
    `timed out after ${timeoutMs}ms waiting for the meta group to hold all ${nodes.length} nodes ` +
      `(members: ${[...members].join(", ") || "no leader"}; ${seen})`,
  );
}

/**
 * N nats-server processes on loopback forming one JetStream cluster: free client, route and monitoring
 * ports, one temp store each, every node routing to every other. Node names are `n1`…`nN`. start() returns
 * once the meta group holds every node (awaitMetaGroup).
 */
export class NatsCluster {
  readonly name: string;
  readonly nodes: ReadonlyMap<string, NatsServer>;

  private constructor(name: string, nodes: Map<string, NatsServer>) {
    this.name = name;
    this.nodes = nodes;
  }

  static async start(size = 3, name = `jetway-${process.pid}`): Promise<NatsCluster> {
    // Route and monitoring ports are picked before any node starts; one taken meanwhile means new ones.
    for (let attempt = 1; ; attempt++) {
      try {
        return await NatsCluster.startOnce(size, name);
      } catch (error) {
        if (attempt >= 3 || !portTaken(error)) throw error;
      }
    }
  }

  private static async startOnce(size: number, name: string): Promise<NatsCluster> {
    const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    const monitorPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
    // All nodes start together: JetStream in a cluster needs a quorum before its meta leader exists.
    const started = await Promise.allSettled(
      clusterPorts.map((port, i) =>
        NatsServer.start({
          serverName: `n${i + 1}`,
          cluster: { name, port, routes },
          args: ["-m", String(monitorPorts[i])],
        }),
      ),
    );
    const servers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) {
      await Promise.all(servers.map((s) => s.stop()));
      throw failed.reason;
    }
    const nodes = servers.map((server, i) => ({
      name: `n${i + 1}`,
      server,
      monitorPort: monitorPorts[i] as number,
    }));
    try {
      await awaitMetaGroup(nodes);
    } catch (error) {
      await Promise.all(servers.map((s) => s.stop()));
      throw error;
    }
    return new NatsCluster(name, new Map(nodes.map((n) => [n.name, n.server])));
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
