/**
 * `new Date(ms).toISOString()`, remembered for the last millisecond asked: per-message timestamps (a
 * log line's `time`, a delivery's `ce-time`) mostly repeat the previous one under load. Each caller keeps
 * its own, so two clocks never evict each other.
 */
export function isoTimeCache(): (ms: number) => string {
  let lastMs = Number.NaN;
  let last = "";
  return (ms) => {
    if (ms !== lastMs) {
      lastMs = ms;
      last = new Date(ms).toISOString();
    }
    return last;
  };
}
