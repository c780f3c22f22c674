// Single instance (CONTRACT §8) with no native code. The kernel holds the lock and drops it when
// the holder dies, however it dies, so a kill -9 never leaves the next start blocked:
// - Linux: a listening socket in the abstract namespace named after state/.lock (lock-socket.ts);
// - macOS and the BSDs: flock(2) on state/.lock, taken by open(2)'s O_EXLOCK (lock-flock.ts).
// state/.lock also records the holder's pid, for messages and `relay status`.
import { closeSync, ftruncateSync, readFileSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { monotonicMs } from "../runtime/monotonic.js";
import { isErrno } from "./files.js";
import { isFlocked, takeFlock } from "./lock-flock.js";
import { askHolder, bindLockSocket, isListening } from "./lock-socket.js";

export interface HeldLock {
  release(): void;
}

export type LockProbe = { held: true; pid: number | null } | { held: false; lastPid: number | null };

type Acquired = { ok: true; lock: HeldLock } | { ok: false; pid: number | null };

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

function pidIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, "EPERM");
  }
}

/** A lock whose first release clears the recorded pid, then lets the kernel's lock go; later releases do nothing. */
function holding(clearPid: () => void, letGo: () => void): HeldLock {
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        clearPid();
      } catch {
        // a pid left in a lock file nobody holds is only a hint (`lastPid`)
      } finally {
        letGo();
      }
    },
  };
}

type Mechanism = "socket" | "flock";

function mechanism(): Mechanism {
  switch (process.platform) {
    case "linux":
      return "socket";
    case "darwin":
    case "freebsd":
    case "openbsd":
    case "netbsd":
      return "flock";
    default:
      throw new Error(`relay's single-instance lock needs Linux or macOS (this is ${process.platform})`);
  }
}

async function acquireSocketLock(path: string): Promise<Acquired> {
  let holder: number | null = null;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const bound = await bindLockSocket(path);
    if (bound.bound) {
      writeFileSync(path, `${process.pid}\n`, { mode: 0o644 });
      return { ok: true, lock: holding(() => truncateSync(path, 0), () => bound.server.close()) };
    }
    holder = await askHolder(path);
    if (holder !== null) return { ok: false, pid: holder };
    // Nobody answered: the holder died between our bind and our question. Bind again.
    await sleep(RETRY_MS);
  }
  return { ok: false, pid: holder ?? readHolderPid(path) };
}

/** Retries for a moment, because `relay status` may hold a shared lock for a few microseconds while it checks. */
async function acquireFlock(path: string): Promise<Acquired> {
  for (let attempt = 1; ; attempt++) {
    const fd = takeFlock(path);
    if (fd !== null) {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
      return { ok: true, lock: holding(() => ftruncateSync(fd, 0), () => closeSync(fd)) };
    }
    if (attempt >= ATTEMPTS) return { ok: false, pid: readHolderPid(path) };
    await sleep(RETRY_MS);
  }
}

/** Take the lock or say who has it. The directory of `path` must exist. */
export function acquireLock(path: string): Promise<Acquired> {
  return mechanism() === "socket" ? acquireSocketLock(path) : acquireFlock(path);
}

/**
 * Take the lock, waiting while someone else holds it (the kernel lets a dead holder's go), or null
 * when it is still held after `timeoutMs`. For short critical sections between processes, such as
 * two Claude Code hooks updating one file at once.
 */
export async function acquireLockWaiting(path: string, timeoutMs: number): Promise<HeldLock | null> {
  const deadline = monotonicMs() + timeoutMs;
  for (;;) {
    const got = await acquireLock(path);
    if (got.ok) return got.lock;
    if (monotonicMs() >= deadline) return null;
    await sleep(RETRY_MS);
  }
}

/** Whether a live process holds the lock, without disturbing it. Synchronous and cheap: the Claude Code hook asks on every stop. */
export function probeLock(path: string): LockProbe {
  let held: boolean;
  if (mechanism() === "socket") {
    const listening = isListening(path);
    // Without /proc (a rare sandbox), the recorded pid being alive is the best evidence left.
    held = listening ?? (() => {
      const pid = readHolderPid(path);
      return pid !== null && pidIsAlive(pid);
    })();
  } else {
    held = isFlocked(path);
  }
  const pid = readHolderPid(path);
  return held ? { held: true, pid } : { held: false, lastPid: pid };
}
