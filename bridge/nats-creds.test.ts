import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { connectNats, NatsConnectError } from "./nats.ts";
import { NatsServer } from "./nats-server.ts";
import { type Account, TestOperator, userCreds } from "./testing/nats-jwt.ts";
import { expectStoresThroughJetStream } from "./testing/stores.ts";

let dir: string;
let server: NatsServer;
let account: Account;
const operator = new TestOperator();

/** The bridge's `nats` section for this server with a creds file. */
const natsConfig = (credsFile: string) =>
  parseConfig({ nats: { servers: [server.url], creds_file: credsFile } }, "test", {}).nats;

async function credsFile(name: string, text: string): Promise<string> {
  const path = join(dir, `${name}.creds`);
  await writeFile(path, text, { mode: 0o600 });
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jetway-creds-"));
  account = operator.account("ORDERS");
  const conf = join(dir, "operator.conf");
  await writeFile(conf, operator.serverConfig(operator.account("SYS", false), [account]));
  server = await NatsServer.start({ args: ["-c", conf] });
});

afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the bridge's NATS connection with a creds file (JWT + nkey)", () => {
  it("connects as the account's user and stores through JetStream", async () => {
    let nc: NatsConnection | undefined;
    try {
      ({ nc } = await connectNats(natsConfig(await credsFile("bridge", userCreds(account, "bridge")))));
      await expectStoresThroughJetStream(nc, "CREDS", "signed in");
    } finally {
      await nc?.close();
    }
  });

  it("fails to start with the server's reason when the account is not one the operator trusts", async () => {
    const stranger = new TestOperator().account("ORDERS");
    const error = await connectNats(
      natsConfig(await credsFile("stranger", userCreds(stranger, "bridge"))),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsConnectError);
    expect((error as Error).message).toContain(server.url);
    expect(String((error as Error).cause)).toMatch(/authorization/i);
  });

  it("fails to start naming the file when the creds file cannot be read", async () => {
    const missing = join(dir, "missing.creds");
    const error = await connectNats(natsConfig(missing)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsConnectError);
    expect((error as Error).message).toContain(missing);
  });
});
