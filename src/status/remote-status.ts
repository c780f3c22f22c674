// state/remote_status.json: on an agent's root (`transport: nats`, CONTRACT §11), the relay's
// status as `relay agent` last saw it on NATS. The agent rewrites it whenever it changes, and the
// relay's heartbeat (every 10 s) is part of it, so a live relay keeps the file younger than
// MIRROR_STALE_MS. The age is measured on this host's clock (`mirroredAt`, written by the agent
// here), never against the relay host's clock.
import { join } from "node:path";
import * as z from "zod/mini";
import type { RelayPaths } from "../config/paths.js";
import { readJsonFile } from "../store/files.js";
import { readStatusFile, type StatusFile, type StatusFileRead, statusFileSchema } from "./status-file.js";

/** Older than this, the relay counts as unreachable from this host (three missed heartbeats). */
export const MIRROR_STALE_MS = 30_000;

export const remoteStatusSchema = z.looseObject({
  /** the relay's state/status.json object; null while the relay has published none */
  status: z.nullable(statusFileSchema),
  /** the relay's last heartbeat, on the relay host's clock */
  relayHeartbeatAt: z.nullable(z.string()),
  agent: z.looseObject({ name: z.string(), pid: z.number(), sessions: z.array(z.string()) }),
  /** when the agent wrote this file, on this host's clock */
  mirroredAt: z.string(),
});
export type RemoteStatus = z.infer<typeof remoteStatusSchema>;

export const remoteStatusPath = (paths: RelayPaths): string => join(paths.state, "remote_status.json");

/** What an agent's root knows of the relay: the mirrored status, how old it is, and whether that is too old. */
export type RelayMirror =
  | { kind: "fresh"; status: StatusFile | null; ageMs: number; mirror: RemoteStatus }
  | { kind: "stale"; status: StatusFile | null; ageMs: number; mirror: RemoteStatus }
  /** no mirror yet (the agent has not reached NATS since it started), or one that cannot be read */
  | { kind: "none"; why: string };

export async function readRelayMirror(paths: RelayPaths, now = Date.now()): Promise<RelayMirror> {
  const read = await readJsonFile(remoteStatusPath(paths), remoteStatusSchema);
  if (!read.ok) return { kind: "none", why: read.missing ? "the agent has not reached the relay yet" : read.error };
  const at = Date.parse(read.value.mirroredAt);
  const ageMs = Number.isFinite(at) ? Math.max(0, now - at) : Number.POSITIVE_INFINITY;
  return { kind: ageMs > MIRROR_STALE_MS ? "stale" : "fresh", status: read.value.status, ageMs, mirror: read.value };
}

/** "42 s", "3 min", "2 h": how old a mirror is, for a person. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return "of unknown age";
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/**
 * The relay's status file as this root sees it: state/status.json on the relay's root, the mirror
 * on an agent's root (`agentRoot`). A stale mirror is still read: what the relay last said is the
 * best knowledge this host has, and readers that care about its age use readRelayMirror.
 */
export async function readRelayStatus(paths: RelayPaths, opts: { agentRoot: boolean }): Promise<StatusFileRead> {
  if (!opts.agentRoot) return readStatusFile(paths);
  const mirror = await readRelayMirror(paths);
  if (mirror.kind === "none" || mirror.status === null) return { kind: "none" };
  return { kind: "ok", status: mirror.status };
}
