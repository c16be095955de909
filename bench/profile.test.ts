import { describe, expect, it } from "vitest";
import { allocatedBytes, type HeapProfile } from "./profile.ts";

const frame = (functionName: string, url = "file:///app/x.js") => ({ functionName, url, lineNumber: 0 });

describe("allocatedBytes", () => {
  it("sums each node's own bytes by key, however deep, largest first", () => {
    const profile: HeapProfile = {
      head: {
        callFrame: frame("(root)", ""),
        selfSize: 0,
        children: [
          {
            callFrame: frame("publish"),
            selfSize: 100,
            children: [{ callFrame: frame("encode"), selfSize: 40, children: [] }],
          },
          {
            callFrame: frame("deliver"),
            selfSize: 10,
            children: [{ callFrame: frame("publish"), selfSize: 30, children: [] }],
          },
        ],
      },
    };
    expect(allocatedBytes(profile, (n) => n.callFrame.functionName)).toEqual([
      ["publish", 130],
      ["encode", 40],
      ["deliver", 10],
    ]);
    expect(allocatedBytes(profile, () => "all")).toEqual([["all", 180]]);
  });
});
