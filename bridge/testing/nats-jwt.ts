import { randomBytes } from "node:crypto";
import { createAccount, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";

/*
 * Decentralised NATS auth for tests: an operator, accounts it signs and users they sign, as JWTs a
 * nats-server in operator mode (`resolver: MEMORY`) accepts, and the `.creds` file a client presents.
 * Only what the tests need: JetStream enabled on accounts, no limits, no signing keys.
 */

const b64url = (data: Uint8Array | string) => Buffer.from(data).toString("base64url");
const HEADER = b64url(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }));

function encodeJwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const claims = {
    jti: randomBytes(16).toString("hex").toUpperCase(),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  };
  const signed = `${HEADER}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${b64url(issuer.sign(new TextEncoder().encode(signed)))}`;
}

const UNLIMITED = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
};
const JETSTREAM = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };

export interface Account {
  key: KeyPair;
  jwt: string;
}

export class TestOperator {
  readonly key = createOperator();
  readonly jwt = encodeJwt(this.key, this.key.getPublicKey(), "test-operator", { type: "operator" });

  account(name: string, jetstream = true): Account {
    const key = createAccount();
    const limits = jetstream ? { ...UNLIMITED, ...JETSTREAM } : UNLIMITED;
    return { key, jwt: encodeJwt(this.key, key.getPublicKey(), name, { type: "account", limits }) };
  }

  /** nats-server config (operator mode) trusting this operator and preloading `accounts`. */
  serverConfig(system: Account, accounts: Account[]): string {
    const preload = [system, ...accounts].map((a) => `  ${a.key.getPublicKey()}: ${a.jwt}`).join("\n");
    return `operator: ${this.jwt}\nsystem_account: ${system.key.getPublicKey()}\nresolver: MEMORY\nresolver_preload: {\n${preload}\n}\n`;
  }
}

/** A user of `account`, as the `.creds` file text nats clients read. */
export function userCreds(account: Account, name: string): string {
  const user = createUser();
  const jwt = encodeJwt(account.key, user.getPublicKey(), name, {
    type: "user",
    pub: {},
    sub: {},
    subs: -1,
    data: -1,
    payload: -1,
  });
  const seed = new TextDecoder().decode(user.getSeed());
  return [
    "-----BEGIN NATS USER JWT-----",
    jwt,
    "------END NATS USER JWT------",
    "",
    "-----BEGIN USER NKEY SEED-----",
    seed,
    "------END USER NKEY SEED------",
    "",
  ].join("\n");
}
