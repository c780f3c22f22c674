// Waiting for a directory to change: fs.watch wakes the waiter at once, and a poll interval
// stands in where events are missed (network file systems, a watcher that failed to start).
import { type FSWatcher, watch } from "node:fs";

export class DirWaiter {
  private watcher: FSWatcher | null = null;
  private wake: (() => void) | null = null;

  constructor(dir: string) {
    try {
      this.watcher = watch(dir, () => this.wake?.());
      this.watcher.on("error", () => undefined);
    } catch {
      this.watcher = null; // polling alone still notices within the interval
    }
  }

  /** Resolves when something in the directory changes, or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  close(): void {
    this.watcher?.close();
  }
}
