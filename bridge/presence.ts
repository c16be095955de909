import { hostname } from "node:os";
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type pino from "pino";
import type { Config } from "./config.ts";

/**
 * Which bridge replicas consume each route, and what each reports of it: so that the replicas of a
 * rate-limited route split its `rate_limit` between them instead of each sending at the whole of it (and
 * KEDA multiplying it as it adds replicas), and so that `jetway status` can show every replica's circuit
 * breaker, which is each replica's own.
 *
 * Each replica keeps a key `<route>.<replica>` per route in a key-value bucket whose entries expire
 * (`<control.bucket>-presence`, max age PRESENCE_TTL_MS), puts it again with its report every
 * PRESENCE_INTERVAL_MS, and counts the rate-limited routes' keys as often: one stream-info request, no
 * consumer. A replica that stops purges its keys, so the others take up its share within two intervals
 * (ReplicaCount); one that dies is forgotten when its keys expire, and until then the others send less than
 * the limit, never more. A replica with a rate-limited route waits an interval and a half (JOIN_WAITS)
 * before its first count, by which time every other replica has counted it.
 */

export const PRESENCE_INTERVAL_MS = 1_000;
/** A few missed puts (a slow event loop, a reconnect) do not make a replica look gone. */
export const PRESENCE_TTL_MS = 5 * PRESENCE_INTERVAL_MS;
/** In intervals: the others' next count comes within one, and timers drift. */
const JOIN_WAITS = 1.5;
const STOP_WAIT_MS = 2_000;

export const presenceBucket = (control: Pick<Config["control"], "bucket">) => `${control.bucket}-presence`;

/** Creates the bucket if it is missing (idempotent) and opens it. */
export function openPresence(
  nc: NatsConnection,
  control: Pick<Config["control"], "bucket" | "replicas">,
  ttlMs = PRESENCE_TTL_MS,
): Promise<KV> {
  return new Kvm(nc).create(presenceBucket(control), {
    replicas: control.replicas,
    history: 1,
    ttl: ttlMs,
    description: "jetway bridge replicas per route and what each reports: <route>.<replica>, expiring",
  });
}

/** This process's name in the bucket: readable in `nats kv ls`, unique across restarts. */
export function replicaId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, "_");
  return `${host}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * The replicas announced per route, and every key: one stream-info request. A bucket not created yet
 * (no bridge has run yet) holds none.
 */
export async function countReplicas(
  jsm: JetStreamManager,
  bucket: string,
): Promise<{ replicas: Map<string, number>; keys: Set<string> }> {
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams
    .info(`KV_${bucket}`, { subjects_filter: `${prefix}>` })
    .catch((error: unknown) => {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
        return undefined;
      throw error;
    });
  const replicas = new Map<string, number>();
  const keys = new Set<string>();
  for (const subject of Object.keys(info?.state.subjects ?? {})) {
    const key = subject.slice(prefix.length);
    keys.add(key);
    const route = key.slice(0, key.indexOf("."));
    replicas.set(route, (replicas.get(route) ?? 0) + 1);
  }
  return { replicas, keys };
}

/**
 * One route's count of replicas, from readings taken every interval. More replicas (a smaller share) apply
 * at once; fewer only when two readings in a row say so. A key can be missing from one reading without its
 * replica having gone: its put was late, or the bucket's leader changed and expired every key at once (a
 * NATS outage longer than the keys' max age), and the others' puts came back one by one. Acting on such a
 * reading would send above the limit for an interval.
 */
export class ReplicaCount {
  private applied: number | undefined;
  private lower = 0;

  /** The count to apply after this reading, or undefined when it stays as it is. */
  read(replicas: number): number | undefined {
    if (replicas === this.applied) {
      this.lower = 0;
      return undefined;
    }
    if (this.applied !== undefined && replicas < this.applied && ++this.lower < 2) return undefined;
    this.lower = 0;
    this.applied = replicas;
    return replicas;
  }
}

/** What a replica says of a route, every interval. */
export interface RouteReport {
  /** Its circuit breaker has paused the route (the function looks down to this replica). */
  breaker_open: boolean;
  /** Messages it holds while the route is paused, by its breaker or an operator. */
  held: number;
  in_flight: number;
  /** Received and not sent yet: waiting for a slot, the rate limit or a batch. */
  waiting: number;
}

/** A replica's report as stored: the report, when it was made, and by whom. */
export interface ReplicaReport extends RouteReport {
  replica: string;
  at: string;
}

/** Every replica's latest report per route (for `jetway status`): a read per key. None without the bucket. */
export async function readReports(
  jsm: JetStreamManager,
  bucket: string,
): Promise<Map<string, ReplicaReport[]>> {
  const { keys } = await countReplicas(jsm, bucket);
  const out = new Map<string, ReplicaReport[]>();
  for (const key of [...keys].sort()) {
    const message = await jsm.streams
      .getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${key}` })
      .catch(() => null);
    // Gone since the listing (a replica stopped), or not a report.
    const report = message && parseReport(message.string());
    if (!report) continue;
    const dot = key.indexOf(".");
    const route = key.slice(0, dot);
    out.set(route, [...(out.get(route) ?? []), { replica: key.slice(dot + 1), ...report }]);
  }
  return out;
}

function parseReport(text: string): Omit<ReplicaReport, "replica"> | undefined {
  let r: Partial<ReplicaReport> | null;
  try {
    r = JSON.parse(text) as Partial<ReplicaReport> | null;
  } catch {
    return undefined;
  }
  if (typeof r !== "object" || r === null || typeof r.at !== "string") return undefined;
  const count = (n: unknown) => (typeof n === "number" ? n : 0);
  return {
    at: r.at,
    breaker_open: r.breaker_open === true,
    held: count(r.held),
    in_flight: count(r.in_flight),
    waiting: count(r.waiting),
  };
}

/** One route of this replica, as presence sees it. */
export interface PresentRoute {
  report(): RouteReport;
  /** On a rate-limited route: take a `1 / replicas` share of the limit. */
  shareRateLimit?(replicas: number): void;
}

export interface PresenceOptions {
  kv: KV;
  jsm: JetStreamManager;
  bucket: string;
  /** This replica's routes, by name. */
  routes: ReadonlyMap<string, PresentRoute>;
  /** Those of them with a `rate_limit`: counted every interval, and told their share. */
  rateLimited: ReadonlySet<string>;
  log: pino.Logger;
  id?: string;
  intervalMs?: number;
}

export class Presence {
  readonly id: string;
  private readonly o: PresenceOptions;
  private readonly stream: string;
  private readonly intervalMs: number;
  private readonly counts = new Map<string, ReplicaCount>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(options: PresenceOptions) {
    this.o = options;
    this.id = options.id ?? replicaId();
    this.stream = `KV_${options.bucket}`;
    this.intervalMs = options.intervalMs ?? PRESENCE_INTERVAL_MS;
    for (const route of options.rateLimited) this.counts.set(route, new ReplicaCount());
  }

  /**
   * Announces this replica; with a rate-limited route, waits until the others have counted it, then applies
   * the first count. May be called again after it failed (start-up retries it while JetStream is not ready).
   */
  async start(): Promise<void> {
    try {
      await this.announce();
    } catch (error) {
      // Without a rate limit to share, presence only informs `jetway status`: not worth failing for.
      if (this.o.rateLimited.size > 0) throw error;
      this.o.log.warn({ err: error }, "announcing this replica failed: jetway status will not show it");
    }
    if (this.o.rateLimited.size > 0) {
      await new Promise((r) => setTimeout(r, JOIN_WAITS * this.intervalMs));
      await this.count();
    }
    if (this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs).unref();
  }

  /** The tick on its way, if any: stop() waits for it, or its put would bring a purged key back. */
  private ticking: Promise<void> | undefined;

  private tick(): Promise<void> {
    // A slow NATS makes a tick outlast the interval: one at a time.
    if (this.stopped || this.ticking) return this.ticking ?? Promise.resolve();
    this.ticking = (async () => {
      try {
        await this.announce();
        await this.count();
      } catch (error) {
        // The last count stands: NATS away means nothing is delivered meanwhile either.
        this.o.log.debug({ err: error }, "presence update failed, will try again");
      } finally {
        this.ticking = undefined;
      }
    })();
    return this.ticking;
  }

  private key(route: string): string {
    return `${route}.${this.id}`;
  }

  private async announce(): Promise<void> {
    const at = new Date().toISOString();
    await Promise.all(
      [...this.o.routes].map(([route, r]) =>
        this.o.kv.put(this.key(route), JSON.stringify({ at, ...r.report() })),
      ),
    );
  }

  private async count(): Promise<void> {
    if (this.stopped || this.o.rateLimited.size === 0) return;
    const { replicas: seen, keys } = await countReplicas(this.o.jsm, this.o.bucket);
    for (const route of this.o.rateLimited) {
      // This replica counts whether or not its own put got through.
      const reading = (seen.get(route) ?? 0) + (keys.has(this.key(route)) ? 0 : 1);
      const replicas = this.counts.get(route)?.read(reading);
      if (replicas === undefined) continue;
      this.o.log.info({ route, replicas }, "rate limit shared");
      this.o.routes.get(route)?.shareRateLimit?.(replicas);
    }
  }

  /** Stops announcing and removes this replica's keys: the others take up its share within two counts. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const purged = (this.ticking ?? Promise.resolve()).then(() =>
      Promise.all(
        [...this.o.routes.keys()].map((route) =>
          this.o.jsm.streams.purge(this.stream, { filter: `$KV.${this.o.bucket}.${this.key(route)}` }),
        ),
      ),
    );
    // Shutdown does not wait on a NATS that is away: the keys expire by themselves.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no answer within 2s")), STOP_WAIT_MS);
    });
    await Promise.race([purged, late])
      .catch((error: unknown) => {
        this.o.log.warn({ err: error }, "removing this replica's presence failed: it expires by itself");
      })
      .finally(() => clearTimeout(timer));
  }
}
