/**
 * state/status.json as the daemon writes it, for tests that play the daemon: a valid file (checked
 * against statusFileSchema) with two sessions in the shared conversation, idle, unless told otherwise.
 */
import { writeJsonAtomic } from "../../src/store/files.js";
import type { RelayPaths } from "../../src/config/paths.js";
import { type QuestionView, STATUS_FORMAT, type StatusFile, statusFilePath, statusFileSchema } from "../../src/status/status-file.js";

export interface StatusFileParts extends Partial<StatusFile> {
  /** open questions, oldest first: `needsJc` becomes the first, `state` needsJc, and each asking conversation needsJc */
  openQuestions?: (Partial<QuestionView> & { question: string })[];
}

export function statusFile(parts: StatusFileParts = {}, now = Date.now()): StatusFile {
  const { openQuestions, ...over } = parts;
  const questions: QuestionView[] = (openQuestions ?? []).map((q, i) => ({
    id: `q-${i + 1}`,
    session: "session-1",
    conversation: "shared",
    since: new Date(now - 60_000 + i * 1_000).toISOString(),
    kind: "reply",
    ...q,
  }));
  const conversations: StatusFile["conversations"] = {
    shared: { state: "idle", sessions: ["session-1", "session-2"], chars: 0, turns: 0, question: null },
  };
  for (const q of questions) {
    const c = (conversations[q.conversation] ??= { state: "idle", sessions: [q.session], chars: 0, turns: 0, question: null });
    c.state = "needsJc";
    c.question ??= q.id;
  }
  const oldest = questions[0];
  return statusFileSchema.parse({
    format: STATUS_FORMAT,
    updatedAt: new Date(now).toISOString(),
    pid: 4242,
    state: oldest ? "needsJc" : "idle",
    needsJc: oldest ? { id: oldest.id, session: oldest.session, question: oldest.question, since: oldest.since } : null,
    questions,
    conversations,
    sessions: { "session-1": { pending: 0, conversation: "shared" }, "session-2": { pending: 0, conversation: "shared" } },
    history: { chars: 0, turns: 0 },
    lastError: null,
    retry: null,
    calls: { inFlight: 0, maxParallel: 4 },
    cost: { totalUsd: 0, todayUsd: 0, calls: 0, unpricedCalls: 0 },
    ...over,
  });
}

/** Write state/status.json atomically, as the daemon does. */
export async function writeStatusFile(paths: RelayPaths, parts: StatusFileParts = {}, now = Date.now()): Promise<StatusFile> {
  const file = statusFile(parts, now);
  await writeJsonAtomic(statusFilePath(paths), file);
  return file;
}
