import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { freePort, NatsServer, portTaken } from "./nats-server.ts";

let held: Server | undefined;
const savedTmp = process.env.TMPDIR;
afterEach(() => {
  held?.close();
  held = undefined;
  process.env.TMPDIR = savedTmp;
});

it("a port taken for good ends start() with the server's own reason, its temp store removed", async () => {
  const port = await freePort();
  held = createServer();
  await new Promise<void>((resolve) => held?.listen(port, "127.0.0.1", resolve));
  // start() makes its temp store under TMPDIR: a directory of this test's own shows whether it is left.
  const tmp = await mkdtemp(join(tmpdir(), "jetway-start-"));
  process.env.TMPDIR = tmp;
  // The monitoring port is fixed, so picking other client ports cannot help: every attempt fails alike.
  const error = await NatsServer.start({ args: ["-m", String(port)] }).then(
    async (server) => {
      await server.stop();
      return new Error("started");
    },
    (e: unknown) => e as Error,
  );
  process.env.TMPDIR = savedTmp;
  expect(error.message).toMatch(/address already in use/);
  expect(portTaken(error)).toBe(true);
  expect(await readdir(tmp)).toEqual([]);
  await rm(tmp, { recursive: true, force: true });
});
