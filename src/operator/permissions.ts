// Claude Code permission prompts put before JC (CONTRACT §10 "Evidence and permission
// prompts"): the PermissionRequest hook writes state/permissions/<id>.json (the request: its
// existence means a hook waits for it), the relay opens a question and, once JC answers, writes
// <id>.decision.json, which the hook reads, returns to Claude Code, and removes with the request.
// A hook that gives up (its timeout: a deny) removes the request; the relay then closes the
// question, and a later answer to it is refused.
import { join } from "node:path";
import * as z from "zod/mini";
import type { PermissionRequest } from "../../machines/types.js";
import type { RelayPaths } from "../config/paths.js";
import { ensureDirs, readdirIfPresent, readJsonFile, removeIfPresent, writeAtomic } from "../store/files.js";

export const permissionsDir = (paths: RelayPaths): string => join(paths.state, "permissions");
const requestFile = (paths: RelayPaths, id: string): string => join(permissionsDir(paths), `${id}.json`);
const decisionFile = (paths: RelayPaths, id: string): string => join(permissionsDir(paths), `${id}.decision.json`);

/** `p-<epoch ms, base 36>-<6 hex>` */
export const PERMISSION_ID = /^p-[a-z0-9]+-[0-9a-f]{6}$/;

const requestSchema = z.object({
  id: z.string().check(z.regex(PERMISSION_ID)),
  session: z.string(),
  text: z.string(),
  since: z.number(),
  tool: z.optional(z.string()),
  command: z.optional(z.string()),
  path: z.optional(z.string()),
  reason: z.optional(z.string()),
  evidence: z.optional(z.string()),
  deadline: z.optional(z.number()),
});
const decisionSchema = z.object({ allow: z.boolean(), reason: z.string(), by: z.string(), at: z.string() });
export type PermissionDecision = z.infer<typeof decisionSchema>;

/** The hook: put the request before the relay. */
export async function writeRequest(paths: RelayPaths, request: PermissionRequest): Promise<void> {
  await ensureDirs(permissionsDir(paths));
  await writeAtomic(requestFile(paths, request.id), `${JSON.stringify(request)}\n`, { mode: 0o600 });
}

/** The relay: every request a hook waits for, oldest first. */
export async function pendingRequests(paths: RelayPaths): Promise<PermissionRequest[]> {
  const names = (await readdirIfPresent(permissionsDir(paths))).filter((n) => /^p-[a-z0-9-]+\.json$/.test(n) && !n.endsWith(".decision.json"));
  const requests: PermissionRequest[] = [];
  for (const name of names) {
    const read = await readJsonFile(join(permissionsDir(paths), name), requestSchema);
    if (read.ok) requests.push(read.value);
  }
  return requests.sort((a, b) => a.since - b.since || a.id.localeCompare(b.id));
}

/** The relay: the decision for a hook that still waits (none is written for one that gave up). */
export async function writeDecision(paths: RelayPaths, id: string, decision: PermissionDecision): Promise<boolean> {
  if ((await readJsonFile(requestFile(paths, id), requestSchema)).ok === false) return false;
  await writeAtomic(decisionFile(paths, id), `${JSON.stringify(decision)}\n`, { mode: 0o600 });
  return true;
}

export async function readDecision(paths: RelayPaths, id: string): Promise<PermissionDecision | null> {
  const read = await readJsonFile(decisionFile(paths, id), decisionSchema);
  return read.ok ? read.value : null;
}

/** The hook, when it is done (decided, or gave up): the request goes first, so the relay never decides a withdrawn one. */
export async function closeRequest(paths: RelayPaths, id: string): Promise<void> {
  await removeIfPresent(requestFile(paths, id));
  await removeIfPresent(decisionFile(paths, id));
}
