import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { JsMsg } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { Invoker } from "./invoker.ts";
import { TlsFileError } from "./tls-files.ts";

const TLS_DIR = new URL("./testing/tls/", import.meta.url).pathname;
const file = (name: string) => `${TLS_DIR}${name}`;

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((r) => server.close(r));
});

/** A function behind HTTPS with the test CA's server certificate; with `clientCa`, mutual TLS. */
async function httpsFunction(clientCa = false): Promise<string> {
  const server = createServer(
    {
      cert: readFileSync(file("server.pem")),
      key: readFileSync(file("server-key.pem")),
      ...(clientCa && { ca: readFileSync(file("ca.pem")), requestCert: true, rejectUnauthorized: true }),
    },
    (req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"events":[]}');
      });
    },
  );
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
}

function invoker(url: string, tls?: Record<string, string>): Invoker {
  const config = parseConfig(
    {
      streams: [{ name: "S", subjects: ["s.>"] }],
      routes: [{ name: "secure", stream: "S", url, timeout: "2s", ...(tls && { tls }) }],
    },
    "test",
    {},
  );
  return new Invoker(config.routes[0] as never);
}

const message = {
  subject: "s.x",
  data: new TextEncoder().encode("{}"),
  headers: undefined,
  info: { timestampNanos: 0 },
};
async function deliver(inv: Invoker) {
  try {
    return await inv.invoke(message as unknown as JsMsg, { id: "m-1", stream: "S", seq: 1, delivery: 1 });
  } finally {
    await inv.destroy();
  }
}

describe("TLS towards a route's function (routes[].tls)", () => {
  it("trusts a function's private CA given as ca_file, and refuses its certificate without", async () => {
    const url = await httpsFunction();
    expect(await deliver(invoker(url, { ca_file: file("ca.pem") }))).toMatchObject({ status: 200 });
    const refused = await deliver(invoker(url));
    expect(refused.status).toBeUndefined();
    expect(refused.errorMessage).toMatch(/certificate/i);
  });

  it("presents a client certificate to a function that requires one (mutual TLS)", async () => {
    const url = await httpsFunction(true);
    const client = {
      ca_file: file("ca.pem"),
      cert_file: file("client.pem"),
      key_file: file("client-key.pem"),
    };
    expect(await deliver(invoker(url, client))).toMatchObject({ status: 200 });
    const without = await deliver(invoker(url, { ca_file: file("ca.pem") }));
    expect(without.status).toBeUndefined();
    expect(without.error).toBeDefined();
  });

  it("checks the certificate against server_name instead of the URL's host", async () => {
    const url = await httpsFunction();
    const ca = file("ca.pem");
    expect(await deliver(invoker(url, { ca_file: ca, server_name: "localhost" }))).toMatchObject({
      status: 200,
    });
    const other = await deliver(invoker(url, { ca_file: ca, server_name: "payment.internal" }));
    expect(other.status).toBeUndefined();
    expect(other.errorMessage).toMatch(/payment\.internal|altnames|hostname/i);
  });

  it("stops start-up naming the route and the field of a file it cannot read", () => {
    expect(() => invoker("https://127.0.0.1:9/events", { ca_file: "/nonexistent/ca.pem" })).toThrow(
      TlsFileError,
    );
    expect(() => invoker("https://127.0.0.1:9/events", { ca_file: "/nonexistent/ca.pem" })).toThrow(
      /route "secure" tls\.ca_file: cannot read \/nonexistent\/ca\.pem/,
    );
  });
});
