/** What the connected nats-server can do, decided once from its version (nc.info.version). */
export interface ServerFeatures {
  version: string;
  /**
   * `+TERM <reason>` is understood. Added in nats-server 2.10.4 (nats-server#4697; the Go client's
   * TermWithReason documents ">= 2.10.4"). Older servers ignore the whole ack and redeliver.
   */
  termWithReason: boolean;
}

/** True when `version` (e.g. "2.10.22", "v2.11.0-RC.1") is at least major.minor.patch. */
export function versionAtLeast(version: string, major: number, minor: number, patch = 0): boolean {
  const match = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  if (!match) return false;
  const [maj, min, pat] = [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
  if (maj !== major) return maj > major;
  if (min !== minor) return min > minor;
  return pat >= patch;
}

/** An unparseable version gets the conservative feature set. */
export function serverFeatures(version: string): ServerFeatures {
  return { version, termWithReason: versionAtLeast(version, 2, 10, 4) };
}
