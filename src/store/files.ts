// Files the relay owns: atomic writes (temporary file in the same directory, fsync, rename,
// fsync of the directory) and reads that validate what they find.
//
// Every call here but fsync is synchronous. The files are small and local, and a call through
// libuv's thread pool costs about 40 µs of CPU against 2 µs for the same call made directly
// (measured: 20,000 stats each way); the relay makes about 90 of them per envelope. fsync, the
// one call that can take milliseconds, still runs on the pool, off the event loop.
import { randomBytes } from "node:crypto";
import { closeSync, fchmodSync, fdatasync, fsync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { chmod, lstat, readdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import * as z from "zod/mini";
import "../zod-english.js";

/** fsync(2) on the thread pool: the one call here that may wait for the disk. */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** fdatasync(2) on the thread pool: the data, without the metadata a later read does not need. */
export function datasyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** `body` with the file descriptor `fd`, closed afterwards whatever happens. */
async function withFd<T>(fd: number, body: (fd: number) => Promise<T> | T): Promise<T> {
  try {
    return await body(fd);
  } finally {
    closeSync(fd);
  }
}

/** Write all of `data` at the descriptor's position (a single write(2) for anything but huge data). */
function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/** fsync a directory so a rename or unlink in it survives a power cut, not only a kill. */
export async function syncDir(dir: string): Promise<void> {
  await withFd(openSync(dir, "r"), fsyncFd);
}

/** The temporary name of an atomic write: hidden, beside its target, ending in .tmp (CONTRACT §5 ignores such names). */
const tmpNameFor = (path: string): string => join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.tmp`);
const TMP_NAME = /^\..+\.[0-9a-f]{8}\.tmp$/;
/** what write-file-atomic (the first version's writer) left behind when killed: `<file>.<uint32>` */
const V1_TMP_NAME = /^(snapshot\.json|ntfy_replies\.json|jc_input\.txt|jc_input\.rejected\.txt|resume\.request|\.env|config\.yaml)\.\d+$/;

/**
 * Write a whole file atomically: readers see the old content or the new, never half. `durable`
 * (the default) also fsyncs the data and the directory, so the new content survives a power cut;
 * without it the write still survives a kill -9 (the page cache outlives the process).
 */
export async function writeAtomic(path: string, data: string, opts: { mode?: number; durable?: boolean } = {}): Promise<void> {
  const durable = opts.durable ?? true;
  const tmp = tmpNameFor(path);
  const fd = openSync(tmp, "w", opts.mode ?? 0o644);
  try {
    await withFd(fd, async () => {
      writeAll(fd, data);
      if (opts.mode !== undefined) fchmodSync(fd, opts.mode); // the umask may have taken bits off
      if (durable) await fsyncFd(fd);
    });
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw err;
  }
  if (durable) await syncDir(dirname(path));
}

/** The names in `dir`; none when it does not exist. */
export async function readdirIfPresent(dir: string): Promise<string[]> {
  try {
    return readdirSync(dir);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw err;
  }
}

/** Remove temporaries of atomic writes a killed process left in `dir` (run at start, under the lock). */
export async function removeStaleTemporaries(dir: string): Promise<string[]> {
  const names = await readdirIfPresent(dir);
  const stale = names.filter((n) => TMP_NAME.test(n) || V1_TMP_NAME.test(n));
  for (const name of stale) await removeIfPresent(join(dir, name));
  return stale;
}

/** Files the relay writes for itself (conversation text, the ledger, the snapshot, logs): owner only. */
export const PRIVATE_FILE = 0o600;
export const PRIVATE_DIR = 0o700;
/** state/status.json, the public read model (CONTRACT §2: "relay writes, anyone reads"): redacted, readable by all. */
export const PUBLIC_FILE = 0o644;
/** state/: others may open a file they name in it (status.json) but not list it; every other file in it is 0600. */
export const TRAVERSABLE_DIR = 0o711;

/** A JSON file of the relay's own, private (0600). */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeAtomic(path, `${JSON.stringify(value, null, 1)}\n`, { mode: PRIVATE_FILE });
}

/** Write and fsync a file under a name of our choosing (the caller renames it into place); private (0600) unless `mode` says otherwise: it holds conversation text. */
export async function writeDurable(path: string, data: string | Uint8Array, mode = PRIVATE_FILE): Promise<void> {
  await withFd(openSync(path, "w", mode), async (fd) => {
    writeAll(fd, data);
    await fsyncFd(fd);
  });
}

/** Append one line with a single write() and fsync: a kill never leaves half a line. */
export async function appendLine(path: string, line: string): Promise<void> {
  await withFd(openSync(path, "a", PRIVATE_FILE), async (fd) => {
    const bytes = Buffer.from(`${line}\n`, "utf8");
    if (writeSync(fd, bytes) !== bytes.length) throw new Error(`${path}: short append`);
    await fsyncFd(fd);
  });
}

export type ReadResult<T> = { ok: true; value: T } | { ok: false; missing: boolean; error: string };

/** Read and validate a JSON file; `schema` may be a classic or a mini zod schema (both share zod's core). */
export async function readJsonFile<T>(path: string, schema: z.core.$ZodType<T>): Promise<ReadResult<T>> {
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { ok: false, missing: true, error: `${path} does not exist` };
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { ok: false, missing: false, error: `${path} is not valid JSON: ${(err as Error).message}` };
  }
  const parsed = z.safeParse(schema, json);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, missing: false, error: `${path}: ${parsed.error.message}` };
}

/** A file's text, or null when it does not exist. */
export async function readIfPresent(path: string): Promise<string | null> {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return null;
    throw err;
  }
}

/** Directories the relay makes are private (0700); existing ones keep their mode. */
export async function ensureDirs(...dirs: string[]): Promise<void> {
  for (const dir of dirs) mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
}

/**
 * Make what earlier versions created world-readable private: the directories given (0700) and
 * the regular files directly in them (0600). Links are left alone. Run at start, under the lock.
 */
export async function tightenModes(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
      await chmod(dir, PRIVATE_DIR);
    } catch (err) {
      if (isErrno(err, "ENOENT")) continue;
      throw err;
    }
    for (const name of names) {
      const path = join(dir, name);
      try {
        const st = await lstat(path);
        if (st.isFile() && (st.mode & 0o077) !== 0) await chmod(path, st.mode & 0o700);
      } catch (err) {
        if (!isErrno(err, "ENOENT")) throw err;
      }
    }
  }
}

export async function removeIfPresent(path: string): Promise<boolean> {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    throw err;
  }
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && "code" in err && (err as { code: unknown }).code === code;
}
