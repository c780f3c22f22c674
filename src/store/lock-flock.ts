// The lock on macOS and the BSDs: flock(2) taken atomically by open(2) itself, through the
// O_EXLOCK / O_SHLOCK flags those kernels accept (no addon needed: Node hands numeric flags to
// open unchanged). The kernel drops it when the holder dies, however it dies.
import { closeSync, constants, openSync } from "node:fs";
import { isErrno } from "./files.js";

const O_SHLOCK = 0x10;
const O_EXLOCK = 0x20;

export const wouldBlock = (err: unknown): boolean => isErrno(err, "EAGAIN") || isErrno(err, "EWOULDBLOCK");

/** The lock's descriptor, or null when another process holds it. */
export function takeFlock(lockPath: string): number | null {
  try {
    return openSync(lockPath, constants.O_RDWR | constants.O_CREAT | O_EXLOCK | constants.O_NONBLOCK, 0o644);
  } catch (err) {
    if (wouldBlock(err)) return null;
    throw err;
  }
}

/** Whether another process holds the lock: a shared lock for an instant, at once given back. */
export function isFlocked(lockPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, constants.O_RDONLY | O_SHLOCK | constants.O_NONBLOCK);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    if (wouldBlock(err)) return true;
    throw err;
  }
  closeSync(fd);
  return false;
}
