// Live reload of config.yaml (and .env): on an edit or SIGHUP the new config replaces the
// running one; an invalid edit keeps the running config, logs one clear error and notifies.
import { type FSWatcher, statSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import { ConfigError, type RelayConfig } from "./config.js";
import type { Logger } from "../runtime/log.js";
import type { RelayPaths } from "./paths.js";

export interface ConfigReloader {
  current(): RelayConfig;
  /** re-read now (SIGHUP); resolves true when the new config is in force */
  reload(reason: string): Promise<boolean>;
  close(): void;
}

const SETTLE_MS = 150;
/** The poll that backs up the watcher: every 5 s without one, every 30 s with it (an edit is seen at once; this catches one the watcher missed, or a symlinked file edited elsewhere, without waking an idle relay every 5 s). */
const POLL_MS = 5_000;
const WATCHED_POLL_MS = 30_000;

export function startConfigReloader(opts: {
  paths: RelayPaths;
  initial: RelayConfig;
  load: () => Promise<RelayConfig>;
  log: Logger;
  onInvalid: (message: string) => void;
  onReloaded?: (next: RelayConfig) => void;
}): ConfigReloader {
  let config = opts.initial;
  let lastError = "";
  let timer: NodeJS.Timeout | null = null;
  let lastStamp = "";
  // Two stat() calls made synchronously: within the poll timer's one wake-up of the process,
  // where the thread pool would wake it once more for each (an idle relay's wake-ups count).
  const stamp = (): string =>
    [opts.paths.config, opts.paths.env]
      .map((p) => {
        try {
          const s = statSync(p);
          return `${s.mtimeMs}:${s.size}`;
        } catch {
          return "-";
        }
      })
      .join("|");
  lastStamp = stamp();

  const reload = async (reason: string): Promise<boolean> => {
    lastStamp = stamp();
    try {
      const next = await opts.load();
      const changed = JSON.stringify(next) !== JSON.stringify(config);
      config = next;
      lastError = "";
      if (changed) {
        opts.log.info({ reason, sessions: next.sessions.map((s) => s.id), model: next.model }, "config reloaded");
        opts.onReloaded?.(next);
      }
      return true;
    } catch (err) {
      const message = err instanceof ConfigError ? err.message : `cannot reload the config: ${(err as Error).message}`;
      if (message !== lastError) {
        lastError = message;
        opts.log.error({ reason }, `config edit ignored, the running config stays: ${message}`);
        opts.onInvalid(message);
      }
      return false;
    }
  };

  const schedule = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void reload("file changed");
    }, SETTLE_MS);
  };

  const names = new Set([basename(opts.paths.config), basename(opts.paths.env)]);
  let watcher: FSWatcher | null = null;
  try {
    const w = watch(dirname(opts.paths.config), { persistent: false }, (_event, name) => {
      if (name && names.has(String(name))) schedule();
    });
    w.on("error", () => {
      w.close();
      if (watcher === w) watcher = null;
    });
    watcher = w;
  } catch {
    // the poll below still notices edits
  }
  let poll: NodeJS.Timeout | null = null;
  const arm = (): void => {
    poll = setTimeout(
      () => {
        if (stamp() !== lastStamp) schedule();
        arm();
      },
      watcher === null ? POLL_MS : WATCHED_POLL_MS,
    );
    poll.unref();
  };
  arm();

  return {
    current: () => config,
    reload,
    close() {
      watcher?.close();
      watcher = null;
      if (poll) clearTimeout(poll);
      poll = null;
      if (timer) clearTimeout(timer);
    },
  };
}
