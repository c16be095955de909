import type pino from "pino";

export interface SignalHandlerOptions {
  logger: pino.Logger;
  /** The graceful stop; the process exits 0 when it resolves, 1 when it throws. */
  onShutdown: (signal: NodeJS.Signals) => Promise<void>;
  exit?: (code: number) => void;
  signals?: NodeJS.Signals[];
}

/**
 * Two-stage shutdown: the first SIGTERM/SIGINT drains gracefully, a second one forces the exit (for an
 * operator who will not wait out the grace period). Returns a function that removes the handlers.
 */
export function handleSignals({
  logger,
  onShutdown,
  exit = (code) => process.exit(code),
  signals = ["SIGTERM", "SIGINT"],
}: SignalHandlerOptions): () => void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal, forcing exit");
      exit(1);
      return;
    }
    stopping = true;
    logger.info({ signal }, "shutting down gracefully (send again to force)");
    onShutdown(signal).then(
      () => {
        logger.info("shutdown complete");
        exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        exit(1);
      },
    );
  };
  for (const signal of signals) process.on(signal, handler);
  return () => {
    for (const signal of signals) process.off(signal, handler);
  };
}

/** Runs `fn` once; later calls get the same promise (shutdown may be asked for from several places). */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => {
    running ??= fn();
    return running;
  };
}
