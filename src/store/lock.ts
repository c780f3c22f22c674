// Single instance: an advisory flock(2) on state/.lock. The kernel drops it when the holder
// dies, however it dies, so a kill -9 never leaves the next start blocked.
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { flockSync } from "fs-ext";
import { isErrno } from "./files.js";

export interface HeldLock {
  release(): void;
}

export type LockProbe = { held: true; pid: number | null } | { held: false; lastPid: number | null };

const ATTEMPTS = 6;
const RETRY_MS = 40;

function readHolderPid(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

const wouldBlock = (err: unknown) => isErrno(err, "EAGAIN") || isErrno(err, "EWOULDBLOCK");

/**
 * Take the lock or say who has it. Retries for a moment, because `relay status` may hold a
 * shared lock for a few microseconds while it checks.
 */
export async function acquireLock(path: string): Promise<{ ok: true; lock: HeldLock } | { ok: false; pid: number | null }> {
  const fd = openSync(path, "a+", 0o644);
  for (let attempt = 1; ; attempt++) {
    try {
      flockSync(fd, "exnb");
      break;
    } catch (err) {
      if (!wouldBlock(err)) {
        closeSync(fd);
        throw err;
      }
      if (attempt >= ATTEMPTS) {
        closeSync(fd);
        return { ok: false, pid: readHolderPid(path) };
      }
      await sleep(RETRY_MS);
    }
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  let released = false;
  return {
    ok: true,
    lock: {
      release() {
        if (released) return;
        released = true;
        try {
          ftruncateSync(fd, 0);
          flockSync(fd, "un");
        } finally {
          closeSync(fd);
        }
      },
    },
  };
}

/** Whether a live process holds the lock, without disturbing it. */
export function probeLock(path: string): LockProbe {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { held: false, lastPid: null };
    throw err;
  }
  try {
    flockSync(fd, "shnb");
    flockSync(fd, "un");
    return { held: false, lastPid: readHolderPid(path) };
  } catch (err) {
    if (wouldBlock(err)) return { held: true, pid: readHolderPid(path) };
    throw err;
  } finally {
    closeSync(fd);
  }
}
