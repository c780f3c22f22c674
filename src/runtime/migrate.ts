// The first start on a root last run by the single-machine version: its snapshot's state is
// handed to the machines (machines/relay.ts `migration.v1`), its pending rejections are done,
// its staging files removed, and a snapshot of this version is written before anything else.
import type { V1Context } from "../store/migrate-v1.js";
import { migrateV1 } from "../store/migrate-v1.js";
import { sessionOf } from "./conversation-actors.js";
import type { RelayActor } from "./daemon.js";
import type { RelayDeps } from "./deps.js";

export async function migrateFromV1(actor: RelayActor, v1: V1Context, deps: RelayDeps): Promise<void> {
  const config = deps.config();
  const conversationOf = (session: string) => sessionOf(config, session).conversation;
  // The turn whose reply asked v1's open question: JC's answer answers its envelope.
  const asking = new Map<string, string>();
  if (v1.needsJc) {
    const { session, question } = v1.needsJc;
    const turn = (await deps.history.entries(conversationOf(session))).findLast((e) => e.kind === "turn" && e.reply === question);
    if (turn) asking.set(conversationOf(session), turn.id);
  }
  const { state, rejections } = migrateV1(v1, {
    stagingExists: (session, id) => deps.v1Staging.exists(session, id),
    conversationOf,
    askedBy: (conversation) => asking.get(conversation) ?? null,
  });
  actor.send({ type: "migration.v1", state });
  await deps.snapshots.write(actor.getPersistedSnapshot(), { durable: true });
  for (const r of rejections) await deps.inbox.reject(r.file, r.reason, r.at);
  for (const [session, replies] of Object.entries(v1.outbox)) for (const r of replies) await deps.v1Staging.remove(session, r.id);
  deps.log.info({ replies: state.outbox.length, conversations: Object.keys(state.conversations) }, "state/snapshot.json of the first version migrated");
}
