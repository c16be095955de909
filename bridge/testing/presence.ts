import type { PresentRoute, RouteReport } from "../presence.ts";

const IDLE: RouteReport = { breaker_open: false, held: 0, in_flight: 0, waiting: 0 };

/** A route for Presence that reports `report` (idle by default) and records the shares it is told to take. */
export class ShareRecorder implements PresentRoute {
  readonly seen: number[] = [];
  private readonly reported: RouteReport;
  constructor(reported: RouteReport = IDLE) {
    this.reported = reported;
  }
  report(): RouteReport {
    return this.reported;
  }
  shareRateLimit(replicas: number): void {
    this.seen.push(replicas);
  }
  get last(): number | undefined {
    return this.seen.at(-1);
  }
}
