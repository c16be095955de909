import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { afterEach, expect, it } from "vitest";
import { freePort, NatsServer, portTaken } from "./nats-server.ts";

let held: Server | undefined;
afterEach(() => {
  held?.close();
  held = undefined;
});

it("a port taken for good ends start() with the server's own reason, its temp store removed", async () => {
  const port = await freePort();
  held = createServer();
  await new Promise<void>((resolve) => held?.listen(port, "127.0.0.1", resolve));
  // The route port is fixed, so picking other client ports cannot help: every attempt fails alike (and
  // late enough that the server has printed where its store is).
  const error = await NatsServer.start({
    serverName: "n1",
    cluster: { name: "taken", port, routes: [`nats://127.0.0.1:${port}`] },
  }).then(
    () => new Error("started"),
    (e: unknown) => e as Error,
  );
  expect(error.message).toMatch(/address already in use/);
  expect(portTaken(error)).toBe(true);
  const store = /Store Directory:\s+"([^"]+)\/jetstream"/.exec(error.message)?.[1];
  expect(store).toMatch(/jetway-nats-/);
  expect(existsSync(store as string)).toBe(false);
});
