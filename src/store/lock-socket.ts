// The Linux lock: a listening socket in the abstract namespace, named after the lock file.
// Binding a name that is in use fails (EADDRINUSE), so of two simultaneous starts exactly one
// binds; the kernel frees the name when the holder's socket closes, however the holder dies.
import { createHash } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { basename, dirname, join, resolve } from "node:path";
import { isErrno } from "./files.js";

/** A socket address of exactly 107 bytes after the NUL: Node 20 pads shorter names with NULs, Node 22+ does not, so only a full-length name is the same address on both. */
const NAME_BYTES = 107;

/** The lock file's path with its directory's symlinks resolved, so two spellings of one root meet. */
function canonical(lockPath: string): string {
  const dir = dirname(resolve(lockPath));
  try {
    return join(realpathSync(dir), basename(lockPath));
  } catch {
    return join(dir, basename(lockPath));
  }
}

/** The abstract name (without its leading NUL) that stands for `lockPath`. */
export function abstractName(lockPath: string): string {
  const digest = createHash("sha256").update(canonical(lockPath)).digest("hex");
  return `relay-lock-${digest}-`.padEnd(NAME_BYTES, ".");
}

export type Bound = { bound: true; server: Server } | { bound: false };

/** Listen on the lock's name; every connection is told our pid and closed. */
export function bindLockSocket(lockPath: string): Promise<Bound> {
  return new Promise((settle, fail) => {
    const server = createServer((socket) => {
      socket.on("error", () => undefined);
      socket.end(`${process.pid}\n`);
    });
    server.once("error", (err) => {
      if (isErrno(err, "EADDRINUSE")) settle({ bound: false });
      else fail(err);
    });
    server.listen(`\0${abstractName(lockPath)}`, () => {
      server.removeAllListeners("error");
      server.on("error", () => undefined);
      server.unref();
      settle({ bound: true, server });
    });
  });
}

/** Ask the holder for its pid: a number, or null when nobody listens any more (it just died). */
export function askHolder(lockPath: string, timeoutMs = 2_000): Promise<number | null> {
  return new Promise((settle) => {
    const socket = connect(`\0${abstractName(lockPath)}`);
    let text = "";
    const done = (pid: number | null) => {
      clearTimeout(timer);
      socket.destroy();
      settle(pid);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("end", () => {
      const pid = Number.parseInt(text.trim(), 10);
      done(Number.isInteger(pid) && pid > 0 ? pid : null);
    });
    socket.on("error", () => done(null));
  });
}

/**
 * Whether a socket listens on the lock's name, from the kernel's own table (/proc/net/unix):
 * synchronous and cheap, and it never connects, so it cannot disturb the holder.
 * null when the table cannot be read.
 */
export function isListening(lockPath: string): boolean | null {
  let table: string;
  try {
    table = readFileSync("/proc/net/unix", "latin1");
  } catch {
    return null;
  }
  const name = `@${abstractName(lockPath)}`;
  const LISTENING = "00010000"; // __SO_ACCEPTCON in the Flags column
  for (const line of table.split("\n")) {
    if (!line.endsWith(name)) continue;
    const fields = line.trim().split(/\s+/);
    if (fields[3] === LISTENING && fields[7] === name) return true;
  }
  return false;
}
