import { type AddressInfo, createServer } from "node:net";
import { fileURLToPath } from "node:url";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { connectNats, NatsConnectError } from "./nats.ts";
import { NatsServer } from "./nats-server.ts";
import { expectStoresThroughJetStream } from "./testing/stores.ts";

const tls = (name: string) => fileURLToPath(new URL(`./testing/tls/${name}`, import.meta.url));
let server: NatsServer;

/** The bridge's `nats` section for this server, TLS options as given. */
const natsConfig = (tlsOptions: Record<string, unknown>) =>
  parseConfig({ nats: { servers: [server.url], tls: tlsOptions } }, "test", {}).nats;

beforeAll(async () => {
  // Mutual TLS: the server presents its certificate and requires one from the client, both from the test CA.
  server = await NatsServer.start({
    args: [
      "--tlsverify",
      "--tlscert",
      tls("server.pem"),
      "--tlskey",
      tls("server-key.pem"),
      "--tlscacert",
      tls("ca.pem"),
    ],
  });
});

afterAll(async () => {
  await server?.stop();
});

describe("the bridge's NATS connection over TLS", () => {
  it("connects with nats.tls (CA, client certificate and key) and stores through JetStream", async () => {
    let nc: NatsConnection | undefined;
    try {
      ({ nc } = await connectNats(
        natsConfig({ ca_file: tls("ca.pem"), cert_file: tls("client.pem"), key_file: tls("client-key.pem") }),
      ));
      expect(nc.info?.tls_required ?? nc.info?.tls_verify).toBe(true);
      await expectStoresThroughJetStream(nc, "TLS", "over tls");
    } finally {
      await nc?.close();
    }
  });

  it("gives up after nats.connect_timeout on a server that never answers, pointing at the certificate under TLS", async () => {
    // A listener that accepts and stays silent, as a TLS 1.3 server does after refusing the client's certificate.
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const connectTo = (tlsOptions?: Record<string, unknown>) =>
        connectNats(
          parseConfig(
            {
              nats: {
                servers: [`nats://127.0.0.1:${port}`],
                connect_timeout: "300ms",
                ...(tlsOptions ? { tls: tlsOptions } : {}),
              },
            },
            "test",
            {},
          ).nats,
        ).then(
          (handle) => {
            void handle.nc.close();
            throw new Error("connected to a server that never answers");
          },
          (e: unknown) => e as Error,
        );
      const started = performance.now();
      const withTls = await connectTo({
        ca_file: tls("ca.pem"),
        cert_file: tls("client.pem"),
        key_file: tls("client-key.pem"),
      });
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(withTls).toBeInstanceOf(NatsConnectError);
      expect(withTls.message).toMatch(/timeout/i);
      expect(withTls.message).toContain("nats.tls.cert_file");
      const plain = await connectTo();
      expect(plain).toBeInstanceOf(NatsConnectError);
      expect(plain.message).not.toContain("nats.tls");
    } finally {
      silent.close();
    }
  });

  it("fails to start when the server's certificate is not from a trusted CA", async () => {
    // No ca_file: the system's CAs, which never signed the test CA.
    const error = await connectNats(
      natsConfig({ cert_file: tls("client.pem"), key_file: tls("client-key.pem") }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsConnectError);
    expect((error as Error).message).toContain(server.url);
    expect(String((error as Error).cause)).toMatch(/certificate/i);
  });
});
