import type { Pausable } from "../control.ts";

/**
 * One route for a PauseWatcher that records what it is told: each pause as its reason, each resume as
 * "resumed", in order.
 */
export function pauseRecorder(route: string): { calls: string[]; routes: Map<string, Pausable> } {
  const calls: string[] = [];
  const target: Pausable = { pause: (reason) => calls.push(reason), resume: () => calls.push("resumed") };
  return { calls, routes: new Map([[route, target]]) };
}
