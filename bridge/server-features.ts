/** What the connected nats-server can do, decided once from its version (nc.info.version). */
export interface ServerFeatures {
  version: string;
  /** `+TERM <reason>` is understood (2.10+); older servers ignore the whole ack and redeliver. */
  termWithReason: boolean;
}

function atLeast(version: string, major: number, minor: number): boolean {
  const match = /^v?(\d+)\.(\d+)/.exec(version.trim());
  if (!match) return false;
  const [maj, min] = [Number(match[1]), Number(match[2])];
  return maj > major || (maj === major && min >= minor);
}

/** An unparseable version gets the conservative feature set. */
export function serverFeatures(version: string): ServerFeatures {
  return { version, termWithReason: atLeast(version, 2, 10) };
}
