// logs/relay.jsonl, rotated by size: past `maxBytes` it becomes relay.1.jsonl (relay.1 becomes
// relay.2, and so on), at most `keep` rotated files are kept, and the live file keeps its name.
// Only the daemon writes it (it holds state/.lock), so no other writer races the renames.
// Written synchronously, one write() per line, like pino.destination({ sync: true }).
//
// Why not pino-roll: it appends a number to the live file's name (so logs/relay.jsonl would no
// longer be the log) and brings date-fns; this is the part of it the relay needs.
import { closeSync, fchmodSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";

export interface RotatingFileOptions {
  /** the live file, e.g. logs/relay.jsonl */
  path: string;
  maxBytes: number;
  /** rotated files kept beside it */
  keep: number;
}

/** The name of rotated file number `n` (1 is the newest): relay.jsonl → relay.1.jsonl. */
export function rotatedName(path: string, n: number): string {
  const ext = extname(path);
  return join(dirname(path), `${basename(path, ext)}.${n}${ext}`);
}

/** the most rotated files the settings allow (config.yaml limits.log_files) */
const MAX_FILES = 100;

export class RotatingFile {
  private fd: number;
  private size: number;

  constructor(private readonly opts: RotatingFileOptions) {
    mkdirSync(dirname(opts.path), { recursive: true, mode: 0o700 });
    this.fd = this.openLive();
    this.size = fstatSync(this.fd).size;
    // rotated files beyond the kept count (left by a larger log_files earlier)
    for (let n = opts.keep + 1; n <= MAX_FILES; n++) rmSync(rotatedName(opts.path, n), { force: true });
  }

  private openLive(): number {
    const fd = openSync(this.opts.path, "a", 0o600);
    try {
      fchmodSync(fd, 0o600); // a log created 0644 by an earlier version is private from now on
    } catch {
      // not ours to change: keep writing
    }
    return fd;
  }

  write(chunk: string | Buffer): boolean {
    const buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    if (this.size > 0 && this.size + buf.length > this.opts.maxBytes) this.rotate();
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    this.size += buf.length;
    return true;
  }

  private rotate(): void {
    closeSync(this.fd);
    const { path, keep } = this.opts;
    rmSync(rotatedName(path, keep), { force: true });
    for (let n = keep - 1; n >= 1; n--) {
      try {
        renameSync(rotatedName(path, n), rotatedName(path, n + 1));
      } catch {
        // a gap in the numbers: nothing to move
      }
    }
    renameSync(path, rotatedName(path, 1));
    this.fd = this.openLive();
    this.size = 0;
  }

  /** pino calls this on flushSync(); writes are synchronous already */
  flushSync(): void {}

  end(): void {
    closeSync(this.fd);
  }
}
