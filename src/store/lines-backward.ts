// The lines of a JSON-lines file from its end backwards, read in small chunks: what the status page
// and `relay costs` show of a long file's newest lines costs the same however long the file is.
import { open } from "node:fs/promises";
import { isErrno } from "./files.js";

const CHUNK_BYTES = 256 * 1024;

export interface BackwardRead {
  /** the file does not exist */
  missing: boolean;
  /** bytes read from the end (whole lines only count once they are complete) */
  bytesRead: number;
  /** older lines were left unread: `visit` stopped, or `maxBytes` was reached first */
  stoppedEarly: boolean;
}

/**
 * Calls `visit` with each non-empty line, newest first, until it returns false or `maxBytes` have
 * been read; a line that starts before the bound is not visited (it is never seen torn). A torn
 * last line (no newline yet) is visited like any other: the caller's parser skips it.
 */
export async function readLinesBackward(file: string, visit: (line: string) => boolean, opts: { maxBytes?: number } = {}): Promise<BackwardRead> {
  const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(file, "r");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { missing: true, bytesRead: 0, stoppedEarly: false };
    throw err;
  }
  try {
    const { size } = await fh.stat();
    const floor = Math.max(0, size - maxBytes);
    let end = size;
    let carry = Buffer.alloc(0);
    while (end > floor) {
      const start = Math.max(floor, end - CHUNK_BYTES);
      const chunk = Buffer.alloc(end - start);
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, start);
      const buf = Buffer.concat([chunk.subarray(0, bytesRead), carry]);
      // lines wholly inside buf; the piece before the first newline waits for the next chunk (or is the file's first line)
      const firstNl = start === 0 ? -1 : buf.indexOf(0x0a);
      end = start;
      if (start > 0 && firstNl === -1) {
        carry = buf; // inside one long line: read on
        continue;
      }
      const lines = buf.subarray(firstNl + 1).toString("utf8").split("\n").reverse();
      for (const line of lines) {
        if (line.trim() === "") continue;
        if (!visit(line)) return { missing: false, bytesRead: size - end, stoppedEarly: true };
      }
      carry = firstNl < 0 ? Buffer.alloc(0) : Buffer.from(buf.subarray(0, firstNl + 1));
    }
    return { missing: false, bytesRead: size - end, stoppedEarly: end > 0 };
  } finally {
    await fh.close();
  }
}
