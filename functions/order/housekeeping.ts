/**
 * The order function's scheduled upkeep, for platforms whose scheduler calls the function itself instead of
 * its URL: Workers cron triggers (worker.ts, wrangler.toml) and an EventBridge schedule on Lambda (lambda.ts,
 * sst.config.ts). Each task goes through the same admin endpoint a cluster's CronJob calls over HTTP
 * (infra/k8s/order-housekeeping.yaml), admin token included, so the rules live in one place (admin.ts).
 */
export const HOUSEKEEPING_TASKS = ["outbox-flush", "processed-prune"] as const;
export type HousekeepingTask = (typeof HOUSEKEEPING_TASKS)[number];

/** wrangler.toml's cron triggers, and the task each one runs. */
export const CRON_TASKS: Readonly<Record<string, HousekeepingTask>> = {
  "*/5 * * * *": "outbox-flush",
  "17 3 * * *": "processed-prune",
};

/** What a schedule hands the Lambda entry (sst.config.ts sets it as the schedule's event). */
export interface HousekeepingEvent {
  jetway_housekeeping: HousekeepingTask;
}

/** Prune calls per run, each up to 100,000 rows: a backlog larger than that waits for the next run. */
const MAX_PRUNE_CALLS = 10;

/** The task's endpoint answered something other than 2xx: the run fails, so the platform reports it. */
export class HousekeepingError extends Error {
  override name = "HousekeepingError";
}

export interface HousekeepingResult {
  task: HousekeepingTask;
  /** The endpoint's answers, one per call. */
  calls: Record<string, unknown>[];
}

/** The task an event asks for, when it is a housekeeping event rather than an HTTP request. */
export function housekeepingTaskOf(event: unknown): HousekeepingTask | undefined {
  const task = (event as Partial<HousekeepingEvent> | null)?.jetway_housekeeping;
  if (task === undefined) return undefined;
  if (!HOUSEKEEPING_TASKS.includes(task)) {
    throw new HousekeepingError(
      `jetway_housekeeping must be one of ${HOUSEKEEPING_TASKS.join(", ")}, not ${JSON.stringify(task)}`,
    );
  }
  return task;
}

/** JETWAY_PRUNE_OLDER_THAN_S when set: the prune's `older_than_s`, else the endpoint's default. */
const retentionOf = (vars: Record<string, unknown>): string | undefined =>
  typeof vars.JETWAY_PRUNE_OLDER_THAN_S === "string" && vars.JETWAY_PRUNE_OLDER_THAN_S
    ? vars.JETWAY_PRUNE_OLDER_THAN_S
    : undefined;

function requestFor(task: HousekeepingTask, vars: Record<string, unknown>): Request {
  const headers: Record<string, string> = {};
  if (typeof vars.JETWAY_ADMIN_TOKEN === "string" && vars.JETWAY_ADMIN_TOKEN) {
    headers.authorization = `Bearer ${vars.JETWAY_ADMIN_TOKEN}`;
  }
  const retention = retentionOf(vars);
  let path = task === "outbox-flush" ? "/orders/outbox/flush" : "/orders/processed/prune";
  if (task === "processed-prune" && retention) path += `?older_than_s=${encodeURIComponent(retention)}`;
  // The host is never reached: the request goes straight to the app.
  return new Request(`http://order.housekeeping${path}`, { method: "POST", headers });
}

/**
 * Runs one task through `fetch` (the function's own app, with the platform's bindings). The prune calls
 * again while the answer says `more`, up to 10 calls. `vars` supplies JETWAY_ADMIN_TOKEN and, for the
 * prune, JETWAY_PRUNE_OLDER_THAN_S (seconds; the endpoint's default, 7 days, when unset).
 */
export async function runHousekeeping(
  task: HousekeepingTask,
  fetch: (request: Request) => Response | Promise<Response>,
  vars: Record<string, unknown>,
): Promise<HousekeepingResult> {
  const calls: Record<string, unknown>[] = [];
  for (let i = 0; i < (task === "processed-prune" ? MAX_PRUNE_CALLS : 1); i++) {
    const res = await fetch(requestFor(task, vars));
    const text = await res.text();
    if (!res.ok) {
      // A refused older_than_s came from the function's settings: name the variable, not the query.
      const retention = task === "processed-prune" && res.status === 400 ? retentionOf(vars) : undefined;
      const from = retention ? ` (JETWAY_PRUNE_OLDER_THAN_S=${retention})` : "";
      throw new HousekeepingError(`${task}: ${res.status} ${text.slice(0, 500)}${from}`);
    }
    const answer = JSON.parse(text) as Record<string, unknown>;
    calls.push(answer);
    if (answer.more !== true) break;
  }
  return { task, calls };
}
