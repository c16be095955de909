import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Db, DbHandle } from "./client.ts";
import { uuidFrom } from "./ids.ts";
import { connectPostgres, createDb, migrate } from "./index.ts";
import { reusable } from "./prepared.ts";
import { markProcessed, pruneProcessed } from "./processed.ts";
import { stock } from "./schema.ts";
import { createTestDb, serveTestDb, testDb } from "./testing.ts";

async function exercise(handle: DbHandle) {
  const { db } = handle;
  await db.insert(stock).values({ sku: "sku-1", available: 2 });
  // The CHECK keeps stock from going negative even if a caller forgets the guard.
  await expect(
    db
      .update(stock)
      .set({ available: sql`${stock.available} - 3` })
      .where(eq(stock.sku, "sku-1")),
  ).rejects.toThrow();
  const [row] = await db.select().from(stock).where(eq(stock.sku, "sku-1"));
  expect(row?.available).toBe(2);
  expect(await markProcessed(db, "c", "m1")).toBe(true);
  expect(await markProcessed(db, "c", "m1")).toBe(false);
  expect(await markProcessed(db, "other", "m1")).toBe(true);
  expect(await pruneProcessed(db, 3600)).toBe(0);
  expect(await markProcessed(db, "c", "m2")).toBe(true);
  // At most `limit` rows a call: the caller repeats until fewer come back.
  expect(await pruneProcessed(db, 0, 2)).toBe(2);
  expect(await pruneProcessed(db, 0, 2)).toBe(1);
  expect(await pruneProcessed(db, 0, 2)).toBe(0);
  expect(await markProcessed(db, "c", "m1")).toBe(true);
}

describe("the test database (PostgreSQL, or PGlite without a server)", () => {
  let handle: DbHandle;
  beforeAll(async () => {
    handle = await createTestDb();
  });
  afterAll(async () => {
    await handle.close();
  });

  it("applies the schema and its constraints", async () => {
    await exercise(handle);
  });

  it("concurrent first migrations of one schema do not collide", async () => {
    const choice = await testDb();
    if (choice.driver === "pglite") {
      // One process owns a PGlite instance, so the race is between callers within it.
      const pglite = await createDb({ PGLITE_DIR: "memory" });
      try {
        await Promise.all([1, 2, 3].map(() => migrate(pglite)));
        await migrate(pglite);
        await exercise(pglite);
      } finally {
        await pglite.close();
      }
      return;
    }
    const schema = `t_conc_${Math.random().toString(16).slice(2, 10)}`;
    const handles = [1, 2, 3].map(() => connectPostgres(choice.url, { schema }));
    try {
      await Promise.all(handles.map((h) => migrate(h)));
      await migrate(handles[0] as DbHandle);
      await exercise(handles[0] as DbHandle);
    } finally {
      await Promise.all(handles.map((h) => h.close()));
      const admin = connectPostgres(choice.url, { max: 1 });
      if (admin.driver === "postgres") await admin.client.unsafe(`drop schema "${schema}" cascade`);
      await admin.close();
    }
  });

  it("keeps test schemas apart", async () => {
    const other = await createTestDb();
    try {
      expect(await other.db.select().from(stock)).toEqual([]);
    } finally {
      await other.close();
    }
  });
});

describe("postgres.js connections", () => {
  it("run drizzle's statements as prepared ones, in transactions too, unless prepare is off", async () => {
    const base = await createTestDb();
    const served = await serveTestDb(base);
    try {
      for (const prepare of [true, false]) {
        const handle = connectPostgres(served.url, { schema: served.schema, max: 1, prepare });
        if (handle.driver !== "postgres") throw new Error("expected postgres.js");
        try {
          const marker = `jetway_prep_${prepare}`;
          for (let i = 0; i < 2; i++) await handle.db.execute(sql`select ${i}::int as ${sql.raw(marker)}`);
          await handle.db.transaction(async (tx) => {
            await tx.execute(sql`select ${1}::int as ${sql.raw(`${marker}_tx`)}`);
          });
          // Statements named on purpose (.prepare(name), reusable) are unnamed too when prepare is off: a
          // pooler in transaction mode would run them on a connection that never saw them prepared.
          const selectAs = (db: Db, alias: string) =>
            db.select({ n: sql<number>`${sql.placeholder("n")}::int`.as(`${marker}_${alias}`) }).from(stock);
          await selectAs(handle.db, "named").prepare("probe").execute({ n: 1 });
          const reused = reusable("probe", (db) => selectAs(db, "reused"));
          await handle.db.transaction((tx) => reused(tx, { n: 1 }));
          const rows = await handle.client.unsafe<{ statement: string }[]>(
            "select statement from pg_prepared_statements",
          );
          const ours = rows.map((r) => r.statement).filter((text) => text.includes(marker));
          expect(ours).toHaveLength(prepare ? 4 : 0);
        } finally {
          await handle.close();
        }
      }
    } finally {
      await served.close();
      await base.close();
    }
  });

  it("plan every execution of a named statement on a long-lived pool unless DATABASE_PLAN_CACHE_MODE says otherwise", async () => {
    const base = await createTestDb();
    const served = await serveTestDb(base);
    const env = { DATABASE_URL: served.url, DATABASE_SCHEMA: served.schema };
    /** Generic plans PostgreSQL made for one statement run ten times on one connection (a transaction). */
    const genericPlans = async (extra: Record<string, string>) => {
      const handle = await createDb({ ...env, ...extra });
      try {
        return await handle.db.transaction(async (tx) => {
          const name = `jetway_plans_${Object.values(extra).join("_") || "default"}`;
          const marker = sql.raw(name);
          // PostgreSQL tries a generic plan from the sixth execution on; ten leave no doubt.
          for (let i = 0; i < 10; i++)
            await tx.execute(sql`select ${i}::int as ${marker} from orders where id = ${"x"}`);
          // postgres.js answers a row array.
          const rows = (await tx.execute(
            sql`select statement, generic_plans from pg_prepared_statements`,
          )) as unknown as { statement: string; generic_plans: string }[];
          const ours = rows.filter((r) => r.statement.includes(name));
          return ours.map((r) => Number(r.generic_plans));
        });
      } finally {
        await handle.close();
      }
    };
    try {
      const [auto] = await genericPlans({ DATABASE_PLAN_CACHE_MODE: "auto" });
      expect(auto).toBeGreaterThan(0);
      // PGlite served over TCP is one session for every connection and ignores start-up parameters, so
      // only a PostgreSQL server can show the setting at work (CI always has one).
      if (base.driver === "postgres") expect(await genericPlans({})).toEqual([0]);
      expect(await genericPlans({ DATABASE_PREPARE: "false" })).toEqual([]);
      await expect(createDb({ ...env, DATABASE_PLAN_CACHE_MODE: "always" })).rejects.toThrow(
        /DATABASE_PLAN_CACHE_MODE must be one of auto, force_custom_plan, force_generic_plan/,
      );
    } finally {
      await served.close();
      await base.close();
    }
  });
});

describe("pglite", () => {
  it("runs the same migrations in memory", async () => {
    const handle = await createDb({ PGLITE_DIR: "memory" });
    try {
      expect(handle.driver).toBe("pglite");
      await migrate(handle);
      await migrate(handle);
      await exercise(handle);
    } finally {
      await handle.close();
    }
  });
});

describe("uuidFrom", () => {
  it("is stable per name, distinct across names, and a valid v8 UUID", async () => {
    const a = await uuidFrom("payments.completed:ord_1");
    expect(await uuidFrom("payments.completed:ord_1")).toBe(a);
    expect(await uuidFrom("payments.completed:ord_2")).not.toBe(a);
    expect(z.uuid().safeParse(a).success).toBe(true);
    expect(a[14]).toBe("8");
  });
});
