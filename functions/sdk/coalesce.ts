export interface CoalescerOptions {
  /** Most items one call of `run` gets (default 100). */
  maxBatch?: number;
  /** Batches running at once (default 1): what arrives meanwhile waits and goes out together next. */
  maxInFlight?: number;
}

interface Waiting<In, Out> {
  item: In;
  resolve: (out: Out) => void;
  reject: (error: unknown) => void;
}

const soon: (run: () => void) => void = globalThis.setImmediate ?? ((run) => setTimeout(run, 0));

/**
 * Concurrent calls share one batch: the calls of one event-loop turn, and the calls made while
 * `maxInFlight` batches are running, reach `run` together. Under load a hundred requests cost one statement
 * or one round trip instead of a hundred (group commit); an idle call waits only for the end of its turn.
 *
 * `run` answers one result per item, in order; an `Error` in place of a result rejects that item's call
 * alone, and a `run` that throws rejects the whole batch. Share a Coalescer no wider than the handle it
 * batches on: on Workers a database handle or connection belongs to one request.
 */
export class Coalescer<In, Out> {
  private queue: Waiting<In, Out>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly run: (items: In[]) => Promise<readonly (Out | Error)[]>;

  constructor(run: (items: In[]) => Promise<readonly (Out | Error)[]>, options: CoalescerOptions = {}) {
    this.run = run;
    this.maxBatch = Math.max(1, options.maxBatch ?? 100);
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  }

  add(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    soon(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      this.inFlight++;
      void this.runBatch(this.queue.splice(0, this.maxBatch));
    }
  };

  private async runBatch(batch: Waiting<In, Out>[]): Promise<void> {
    try {
      const results = await this.run(batch.map((w) => w.item));
      if (results.length !== batch.length) {
        throw new Error(`coalesced run answered ${results.length} results for ${batch.length} items`);
      }
      batch.forEach((w, i) => {
        const result = results[i] as Out | Error;
        if (result instanceof Error) w.reject(result);
        else w.resolve(result);
      });
    } catch (error) {
      for (const w of batch) w.reject(error);
    } finally {
      this.inFlight--;
      // The next batch leaves at the end of this turn, with whatever else this turn adds.
      if (this.queue.length > 0) this.schedule();
    }
  }
}
