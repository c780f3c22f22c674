// state/config.cache.json: config.yaml as the YAML parser made it (its JavaScript value, before
// validation), with the identity of the config.yaml it came from. The commands that start often
// (the Claude Code hooks on every agent turn, `relay status`) read it instead of loading the
// YAML parser, which costs more than their own work. It is only ever a copy: the settings are
// validated from it exactly as from config.yaml, and anything amiss (another config.yaml, even
// one edited within the file system's time granularity, a torn or foreign file, another format)
// is a miss, after which config.yaml is parsed and the copy rewritten. Writing it is best
// effort: a read-only root, or one without state/, just parses config.yaml every time.
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { RelayPaths } from "./paths.js";
import { writeAtomic } from "../store/files.js";

/** Bumped when what the cache holds changes meaning. */
const FORMAT = 1;

/**
 * A config.yaml modified this recently is not cached: an edit within the same tick of a coarse
 * file-system clock (whole seconds, 2 s on FAT) could keep its size and times, as git's "racily
 * clean" entries; once this much older, any later edit has other times.
 */
export const CONFIG_CACHE_SETTLE_MS = 3_000;

export const configCachePath = (paths: RelayPaths): string => join(paths.state, "config.cache.json");

/** A hit (config.yaml's parsed value), or a miss with the key to write the copy under (null: no config.yaml, or too fresh to cache). */
export type ConfigCacheRead = { hit: true; document: unknown } | { hit: false; key: string | null };

/** config.yaml's identity: device, inode, size, modification and change times (ns); null when it is missing. */
async function configKey(paths: RelayPaths, now: number): Promise<{ key: string; settled: boolean } | null> {
  try {
    const s = await stat(paths.config, { bigint: true });
    return { key: [FORMAT, s.dev, s.ino, s.size, s.mtimeNs, s.ctimeNs].join(":"), settled: now - Number(s.mtimeMs) >= CONFIG_CACHE_SETTLE_MS };
  } catch {
    return null;
  }
}

/** The cache file's text when this user owns it and no one else may write it, else null. */
async function readOwnFile(path: string): Promise<string | null> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch {
    return null;
  }
  try {
    const s = await handle.stat();
    if ((process.getuid !== undefined && s.uid !== process.getuid()) || (s.mode & 0o022) !== 0) return null;
    return await handle.readFile("utf8");
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/** config.yaml's parsed value from the cache when the cache is config.yaml's; read config.yaml's identity before config.yaml itself. */
export async function readConfigCache(paths: RelayPaths, now = Date.now()): Promise<ConfigCacheRead> {
  const identity = await configKey(paths, now);
  if (identity === null) return { hit: false, key: null };
  const key = identity.settled ? identity.key : null;
  if (key === null) return { hit: false, key };
  const text = await readOwnFile(configCachePath(paths));
  if (text === null) return { hit: false, key };
  let entry: unknown;
  try {
    entry = JSON.parse(text);
  } catch {
    return { hit: false, key };
  }
  if (typeof entry !== "object" || entry === null || !("key" in entry) || entry.key !== key || !("document" in entry)) return { hit: false, key };
  return { hit: true, document: entry.document };
}

/**
 * Keep `document` (config.yaml's parsed value, read after its identity `key` was taken) for the
 * next command, owner-only. Skipped when JSON would not give back the same value (YAML's .inf,
 * .nan, -0), or when `key` is null; a failure to write is ignored.
 */
export async function writeConfigCache(paths: RelayPaths, key: string | null, document: unknown): Promise<void> {
  if (key === null) return;
  const text = JSON.stringify({ key, document });
  const entry: unknown = JSON.parse(text);
  if (typeof entry !== "object" || entry === null || !("document" in entry) || !isDeepStrictEqual(entry.document, document)) return;
  try {
    await writeAtomic(configCachePath(paths), `${text}\n`, { mode: 0o600, durable: false });
  } catch {
    // a read-only root, or one without state/: config.yaml is parsed every time
  }
}
