import { describe, expect, it } from "vitest";
import { S3Store } from "./s3-store.ts";

describe("S3Store against answers s3rver does not give", () => {
  it("paginates (mock S3): continuation tokens with +/= and entities go back intact", async () => {
    const token = "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=+a&b";
    const seen: (string | null)[] = [];
    const fake = (async (input: Request) => {
      const q = new URL(input.url).searchParams;
      seen.push(q.get("continuation-token"));
      const page =
        q.get("continuation-token") === token
          ? "<Contents><Key>S/2.json</Key></Contents><IsTruncated>false</IsTruncated>"
          : `<Contents><Key>S/1.json</Key></Contents><IsTruncated>true</IsTruncated><NextContinuationToken>${token.replace(/&/g, "&amp;")}</NextContinuationToken>`;
      return new Response(`<?xml version="1.0"?><ListBucketResult>${page}</ListBucketResult>`);
    }) as unknown as typeof fetch;
    const s = new S3Store({
      endpoint: "http://x",
      bucket: "b",
      accessKeyId: "k",
      secretAccessKey: "s",
      fetch: fake,
    });
    expect(await s.list()).toEqual(["S/1.json", "S/2.json"]);
    expect(seen).toEqual([null, token]);
  });

  it("412 is already written; 409/500 are errors", async () => {
    const mk = (status: number) =>
      new S3Store({
        endpoint: "http://x",
        bucket: "b",
        accessKeyId: "k",
        secretAccessKey: "s",
        fetch: (async () => new Response("", { status })) as typeof fetch,
      });
    expect(await mk(412).putIfAbsent("S/1.json", "x")).toBe(false);
    await expect(mk(409).putIfAbsent("S/1.json", "x")).rejects.toThrow(/409/);
    await expect(mk(500).putIfAbsent("S/1.json", "x")).rejects.toThrow(/500/);
    await expect(mk(403).putIfAbsent("S/1.json", "x")).rejects.toThrow(/403/);
  });
});
