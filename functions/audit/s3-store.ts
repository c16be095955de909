import { AwsClient } from "aws4fetch";
import { AuditStoreError, type ObjectStore } from "./entry.ts";

export interface S3Options {
  /** e.g. https://s3.eu-west-1.amazonaws.com, https://<account>.r2.cloudflarestorage.com, http://minio:9000 */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region?: string;
  fetch?: typeof fetch;
}

const NAMED: Record<string, string> = { lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" };

/** XML's five named entities and numeric ones (`&#39;`, `&#x27;`: what MinIO and s3rver write for `'`). */
const unescapeXml = (s: string) =>
  s.replace(/&(#x[0-9a-f]+|#[0-9]+|lt|gt|quot|apos|amp);/gi, (whole, name: string) => {
    if (name[0] !== "#") return NAMED[name.toLowerCase()] ?? whole;
    const code =
      name[1] === "x" || name[1] === "X" ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
    return Number.isInteger(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });

/**
 * The audit log in an S3-compatible bucket (S3, R2, MinIO), path-style, SigV4-signed by aws4fetch — which
 * runs on Workers as well as Node. Writes carry `If-None-Match: *`: stores that support conditional
 * writes refuse an existing key (412, counted as already written); others overwrite it with the
 * byte-identical entry, which is just as idempotent.
 */
export class S3Store implements ObjectStore {
  private readonly client: AwsClient;
  private readonly base: string;
  private readonly doFetch: typeof fetch;

  constructor(options: S3Options) {
    this.client = new AwsClient({
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      service: "s3",
      region: options.region ?? "us-east-1",
    });
    this.base = `${options.endpoint.replace(/\/+$/, "")}/${encodeURIComponent(options.bucket)}`;
    this.doFetch = options.fetch ?? fetch;
  }

  private url(key: string): string {
    return `${this.base}/${key.split("/").map(encodeURIComponent).join("/")}`;
  }

  private async send(url: string, init: RequestInit): Promise<Response> {
    const signed = await this.client.sign(url, init);
    try {
      return await this.doFetch(signed);
    } catch (cause) {
      throw new AuditStoreError(`object store unreachable: ${(cause as Error).message}`, { cause });
    }
  }

  async putIfAbsent(key: string, body: string): Promise<boolean> {
    const res = await this.send(this.url(key), {
      method: "PUT",
      body,
      headers: { "content-type": "application/json", "if-none-match": "*" },
    });
    await res.body?.cancel();
    if (res.status === 412) return false;
    if (!res.ok) throw new AuditStoreError(`PUT ${key} answered ${res.status}`, { status: res.status });
    return true;
  }

  async get(key: string): Promise<string | undefined> {
    const res = await this.send(this.url(key), { method: "GET" });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) throw new AuditStoreError(`GET ${key} answered ${res.status}`, { status: res.status });
    return res.text();
  }

  async list(prefix = ""): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const query = new URLSearchParams({ "list-type": "2", prefix });
      if (token) query.set("continuation-token", token);
      const res = await this.send(`${this.base}?${query}`, { method: "GET" });
      const xml = await res.text();
      if (!res.ok) throw new AuditStoreError(`LIST ${prefix} answered ${res.status}`, { status: res.status });
      for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(unescapeXml(m[1] ?? ""));
      const truncated = /<IsTruncated>true<\/IsTruncated>/.test(xml);
      const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
      token = truncated && next ? unescapeXml(next) : undefined;
    } while (token);
    return keys.sort();
  }
}

/** An S3Store from AUDIT_S3_* settings, or undefined when AUDIT_S3_BUCKET is not set. */
export function s3StoreFromVars(vars: Record<string, string | undefined>): S3Store | undefined {
  const bucket = vars.AUDIT_S3_BUCKET;
  if (!bucket) return undefined;
  const need = (k: string) => {
    const v = vars[k];
    if (!v) throw new AuditStoreError(`${k} is required with AUDIT_S3_BUCKET`);
    return v;
  };
  return new S3Store({
    endpoint: need("AUDIT_S3_ENDPOINT"),
    bucket,
    accessKeyId: need("AUDIT_S3_ACCESS_KEY_ID"),
    secretAccessKey: need("AUDIT_S3_SECRET_ACCESS_KEY"),
    region: vars.AUDIT_S3_REGION ?? "us-east-1",
  });
}

/** The bucket store, for runtimes without a local disk (Workers, Lambda). */
export function requireS3Store(vars: Record<string, string | undefined>): S3Store {
  const s3 = s3StoreFromVars(vars);
  if (!s3) throw new AuditStoreError("AUDIT_S3_BUCKET is not set");
  return s3;
}
