// One Claude Code session per relay session (CONTRACT §10): state/hooks/<session>.binding.json
// names the Claude Code session (`session_id`) the relay session is bound to. Every hook run of
// that session refreshes `seenAt` (a waiting hook every minute); SessionEnd releases it; a binding
// not seen for `releaseAfterMs` is taken to be gone and another session may take it.
import { join } from "node:path";
import * as z from "zod/mini";
import type { RelayPaths } from "../config/paths.js";
import { ensureDirs, readJsonFile, removeIfPresent, writeAtomic } from "../store/files.js";

const bindingSchema = z.object({ ccSession: z.string(), boundAt: z.string(), seenAt: z.string() });
export type Binding = z.infer<typeof bindingSchema>;

export const bindingFile = (paths: RelayPaths, session: string): string => join(paths.state, "hooks", `${session}.binding.json`);

export async function readBinding(paths: RelayPaths, session: string): Promise<Binding | null> {
  const read = await readJsonFile(bindingFile(paths, session), bindingSchema);
  return read.ok ? read.value : null;
}

export type Claim = { ok: true; binding: Binding } | { ok: false; holder: Binding };

/**
 * Bind the relay session to `ccSession`, or refresh the binding it already has. Refused while
 * another Claude Code session holds it and was seen within `releaseAfterMs`. Two hooks of
 * different sessions racing here both read before either writes only in the first instant of a
 * binding; the later write wins and the loser is refused at its next run.
 */
export async function claimBinding(paths: RelayPaths, session: string, ccSession: string, opts: { now: number; releaseAfterMs: number }): Promise<Claim> {
  const current = await readBinding(paths, session);
  const nowIso = new Date(opts.now).toISOString();
  if (current && current.ccSession !== ccSession && opts.now - Date.parse(current.seenAt) < opts.releaseAfterMs) return { ok: false, holder: current };
  const binding: Binding = current && current.ccSession === ccSession ? { ...current, seenAt: nowIso } : { ccSession, boundAt: nowIso, seenAt: nowIso };
  await ensureDirs(join(paths.state, "hooks"));
  await writeAtomic(bindingFile(paths, session), `${JSON.stringify(binding)}\n`, { mode: 0o600 });
  return { ok: true, binding };
}

/** SessionEnd: release the binding if `ccSession` holds it. */
export async function releaseBinding(paths: RelayPaths, session: string, ccSession: string): Promise<boolean> {
  const current = await readBinding(paths, session);
  if (current === null || current.ccSession !== ccSession) return false;
  return removeIfPresent(bindingFile(paths, session));
}
