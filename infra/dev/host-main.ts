import { join } from "node:path";
import pino from "pino";
import { createDb, migrate } from "../../functions/db/index.ts";
import { startFunctionHost } from "./host.ts";
import { type DevPorts, devPorts } from "./ports.ts";
import { seedDevStock } from "./seed.ts";
import { functionVars } from "./vars.ts";

/*
 * The dev function host process (started by `jetway dev`): one database (DATABASE_URL, else PGlite in
 * <data dir>/pglite), migrated and seeded, then every function on its port. JSON log lines on stdout.
 * Env: JETWAY_DEV_PORTS (JSON DevPorts), JETWAY_DEV_DIR (default .jetway).
 */
const env = process.env;
const logger = pino({ base: { fn: "dev" }, timestamp: pino.stdTimeFunctions.isoTime });
const ports: DevPorts = env.JETWAY_DEV_PORTS ? (JSON.parse(env.JETWAY_DEV_PORTS) as DevPorts) : devPorts();
const dataDir = env.JETWAY_DEV_DIR ?? ".jetway";

const db = await createDb({
  DATABASE_URL: env.DATABASE_URL,
  DATABASE_SCHEMA: env.DATABASE_SCHEMA,
  PGLITE_DIR: env.PGLITE_DIR ?? join(dataDir, "pglite"),
});
await migrate(db);
await seedDevStock(db.db);
logger.info({ driver: db.driver }, "database migrated and seeded");
const vars = functionVars(ports, dataDir, env);
// Function code reads settings through hono's env(c), which on Node is process.env itself.
Object.assign(process.env, vars);
const host = await startFunctionHost({ ports, db, vars, logger });

let stopping = false;
const stop = async (signal: NodeJS.Signals) => {
  if (stopping) process.exit(1);
  stopping = true;
  logger.info({ signal }, "closing function servers and the database");
  await host.close();
  await db.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// The runner holds our stdin open: when it dies without stopping us (kill -9), stop rather than linger.
process.stdin.on("end", () => stop("SIGTERM"));
process.stdin.resume();
