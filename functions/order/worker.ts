import { perRequestPostgres } from "../db/providers.ts";
import { createOrder } from "./app.ts";
import { CRON_TASKS, HousekeepingError, runHousekeeping } from "./housekeeping.ts";

interface ScheduledController {
  cron: string;
}
interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

// Cloudflare Workers: DATABASE_URL secret or a HYPERDRIVE binding; JETWAY_PUBLISH_URL var. The cron
// triggers of wrangler.toml run the outbox flush and the processed-record prune (housekeeping.ts).
const postgres = perRequestPostgres();
const order = createOrder({ db: postgres.db });
const http = postgres.handler(order.app);

export default {
  fetch: http.fetch,
  async scheduled(controller: ScheduledController, env: Record<string, unknown>, ctx: ExecutionContext) {
    const task = CRON_TASKS[controller.cron];
    // A trigger added to wrangler.toml without a task here fails loudly in the cron's log.
    if (!task) throw new HousekeepingError(`no housekeeping task for cron "${controller.cron}"`);
    const result = await runHousekeeping(task, (request) => http.fetch(request, env, ctx), env);
    order.log.info({ ...result }, "housekeeping done");
  },
};
