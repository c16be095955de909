/**
 * Runs calls made during one event-loop turn together, at its end. nats.js writes what a call queued at
 * the next microtask, so publishes made from separate requests' callbacks each cost a socket write (and a
 * nats-server wake-up); made from one callback, they share one. Nothing waits for a timer: an idle call
 * runs at the end of the turn it was made in.
 */
export class TurnBatch {
  private queue: (() => void)[] = [];
  private readonly drain = () => {
    const calls = this.queue;
    this.queue = [];
    for (const call of calls) call();
  };

  run<T>(call: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(this.drain);
      this.queue.push(() => {
        try {
          call().then(resolve, reject);
        } catch (error) {
          reject(error);
        }
      });
    });
  }
}
