import { headers as natsHeaders } from "@nats-io/nats-core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { waitFor } from "../../bridge/testing/http-function.ts";
import { routeFixture, useHarness } from "../../bridge/testing/route-fixture.ts";
import { defineEvent } from "../../schemas/define.ts";
import { BATCH_CONTENT_TYPE } from "./contract.ts";
import { defineFunction } from "./define-function.ts";
import { serveNode } from "./node.ts";

const { h, cleanups } = useHarness();
const SECRET = "route-secret";

describe("a producer's message shaped as a batch, through a real bridge and function", () => {
  it("is one event of its subject: no handler of another type runs, and it is dead-lettered as invalid", async () => {
    const fn = defineFunction({ name: "forged", logger: pino({ level: "silent" }), secret: () => SECRET });
    const server = serveNode(fn.app, { port: 0, hostname: "127.0.0.1", logger: pino({ level: "silent" }) });
    const { port } = await server.ready;
    cleanups.push(() => server.close());
    const f = await routeFixture(h, `http://127.0.0.1:${port}/events`, { secret: SECRET, max_deliver: 3 });
    cleanups.push(() => f.consumer.stop(1_000));
    const prefix = f.subject.split(".")[0] as string;
    const Created = defineEvent(`${prefix}.created.v1`, z.object({ order_id: z.string() }));
    const Refund = defineEvent(`${prefix}.refund.v1`, z.object({ order_id: z.string() }));
    const handled: string[] = [];
    fn.handle(Created, (e) => void handled.push(`created ${e.id}`));
    fn.handle(Refund, (e) => void handled.push(`refund ${e.id} ${e.data.order_id}`));
    await f.consumer.start();

    // Allowed to publish Created only, it sends a batch of its own making under the batch content type.
    const forged = JSON.stringify([
      { specversion: "1.0", id: "forged-1", source: "x", type: Refund.subject, data: { order_id: "victim" } },
    ]);
    const hdrs = natsHeaders();
    hdrs.set("Content-Type", BATCH_CONTENT_TYPE);
    await h.js.publish(Created.subject, forged, { headers: hdrs });

    await waitFor("the dead letter", async () => (await f.dlq()).length === 1);
    const [letter] = await f.dlq();
    expect(letter?.header.get("Jetway-Dlq-Status")).toBe("422");
    expect(letter?.header.get("Jetway-Dlq-Delivery")).toBe("1");
    expect(handled).toEqual([]);
    expect(f.outcomes.map((o) => o.outcome)).toEqual(["dead_letter"]);
  });
});
