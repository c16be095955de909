/**
 * Lets stop() wait until in-flight work drains or a grace period ends, whichever comes first; the work
 * side calls notify() when it goes idle.
 */
export class IdleGate {
  private resolve: (() => void) | undefined;

  notify(): void {
    this.resolve?.();
  }

  async wait(gracePeriodMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.resolve = resolve;
      timer = setTimeout(resolve, gracePeriodMs);
    });
    clearTimeout(timer);
    this.resolve = undefined;
  }
}
