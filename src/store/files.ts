// Files the relay owns: atomic writes (temporary file in the same directory, fsync, rename,
// fsync of the directory) and reads that validate what they find.
import { open, mkdir, readFile, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import writeFileAtomic from "write-file-atomic";
import type { z } from "zod";

/** fsync a directory so a rename or unlink in it survives a power cut, not only a kill. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Write a whole file atomically: readers see the old content or the new, never half. */
export async function writeAtomic(path: string, data: string, opts: { mode?: number } = {}): Promise<void> {
  await writeFileAtomic(path, data, { fsync: true, ...(opts.mode === undefined ? {} : { mode: opts.mode }) });
  await syncDir(dirname(path));
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeAtomic(path, `${JSON.stringify(value, null, 1)}\n`);
}

/** Write `path` durably under a name of our choosing, then rename it into place (no write-file-atomic temp names). */
export async function writeThenRename(tmp: string, target: string, data: string): Promise<void> {
  await writeDurable(tmp, data);
  await rename(tmp, target);
  await syncDir(dirname(target));
}

export async function writeDurable(path: string, data: string): Promise<void> {
  const handle = await open(path, "w", 0o644);
  try {
    await handle.writeFile(data, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Append one line with a single write() and fsync: a kill never leaves half a line. */
export async function appendLine(path: string, line: string): Promise<void> {
  const handle = await open(path, "a", 0o644);
  try {
    await handle.write(`${line}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export type ReadResult<T> = { ok: true; value: T } | { ok: false; missing: boolean; error: string };

export async function readJsonFile<T>(path: string, schema: z.ZodType<T>): Promise<ReadResult<T>> {
  let raw: string;
  try {
    raw = await readFile(path, "utf8");
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
  const parsed = schema.safeParse(json);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, missing: false, error: `${path}: ${parsed.error.message}` };
}

/** A file's text, or null when it does not exist. */
export async function readIfPresent(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return null;
    throw err;
  }
}

export async function ensureDirs(...dirs: string[]): Promise<void> {
  for (const dir of dirs) await mkdir(dir, { recursive: true });
}

export async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    throw err;
  }
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && "code" in err && (err as { code: unknown }).code === code;
}
