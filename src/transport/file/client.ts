// The two ways in, shared by the CLI, the status page and the Claude Code hook: an envelope
// dropped into queue/ (the contract's atomic way) and JC's answer in state/jc_input.txt.
import { randomBytes } from "node:crypto";
import { access, rename } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type RelayConfig, SESSION_ID } from "../../config/config.js";
import { parseJcInput } from "../../operator/jc-input.js";
import type { RelayPaths } from "../../config/paths.js";
import { MAX_CONTENT_BYTES } from "./queue.js";
import { ensureDirs, syncDir, writeAtomic, writeDurable } from "../../store/files.js";

export type InboxResult<T> = { ok: true; value: T } | { ok: false; error: string };

const known = (config: RelayConfig, session: string) => config.sessions.some((s) => s.id === session);
const sessionList = (config: RelayConfig) => config.sessions.map((s) => s.id).join(", ");

/** Write queue/.NAME.tmp, then rename it to queue/NAME.json. */
export async function dropEnvelope(paths: RelayPaths, config: RelayConfig, session: string, content: string): Promise<InboxResult<{ file: string }>> {
  if (!SESSION_ID.test(session)) return { ok: false, error: `${JSON.stringify(session)} is not a valid session id (${SESSION_ID.source})` };
  if (!known(config, session)) return { ok: false, error: `session ${session} is not in config.yaml (sessions: ${sessionList(config)})` };
  if (content.trim() === "") return { ok: false, error: "the message is empty" };
  if (Buffer.byteLength(content, "utf8") > MAX_CONTENT_BYTES) return { ok: false, error: "the message is over 1 MiB" };
  await ensureDirs(paths.queue);
  const name = `${Date.now()}-${session}-${randomBytes(4).toString("hex")}`;
  const tmp = join(paths.queue, `.${name}.tmp`);
  await writeDurable(tmp, JSON.stringify({ session_id: session, timestamp: new Date().toISOString(), content }));
  await rename(tmp, join(paths.queue, `${name}.json`));
  await syncDir(paths.queue);
  return { ok: true, value: { file: `${name}.json` } };
}

const exists = (path: string) => access(path).then(() => true, () => false);

/**
 * Write JC's answer atomically to state/jc_input.txt. An earlier answer not yet read is never
 * overwritten: this waits for the relay to take it (a few poll intervals at most).
 */
export async function submitJcInput(paths: RelayPaths, config: RelayConfig, text: string, opts: { waitMs?: number } = {}): Promise<InboxResult<{ kind: "direct" | "chat"; session?: string }>> {
  const parsed = parseJcInput(text);
  if (parsed.kind === "empty") return { ok: false, error: "the answer is empty" };
  if (parsed.kind === "direct" && !known(config, parsed.session)) {
    return { ok: false, error: `@${parsed.session} is not a session in config.yaml (sessions: ${sessionList(config)})` };
  }
  await ensureDirs(paths.state);
  const deadline = Date.now() + (opts.waitMs ?? Math.max(5_000, 3 * config.pollIntervalMs));
  while (await exists(paths.jcInput)) {
    if (Date.now() > deadline) return { ok: false, error: "an earlier JC answer in state/jc_input.txt has not been read yet; is `relay run` running?" };
    await sleep(25);
  }
  await writeAtomic(paths.jcInput, `${text.trim()}\n`);
  return { ok: true, value: parsed.kind === "direct" ? { kind: "direct", session: parsed.session } : { kind: "chat" } };
}
