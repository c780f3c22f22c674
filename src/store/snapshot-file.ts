// state/snapshot.json: the machines' persisted snapshot (the root and its conversations), private
// to the relay. It is written where a side effect depends on it (see src/runtime/daemon.ts); a
// snapshot of the single-machine version is recognised and handed to the migration.
import * as z from "zod/mini";
import type { RelayPaths } from "../config/paths.js";
import type { Logger } from "../runtime/log.js";
import { PRIVATE_FILE, readJsonFile, writeAtomic } from "./files.js";
import { type V1Context, v1ContextSchema } from "./migrate-v1.js";

const FORMAT = "relay-snapshot/2";
const V1_FORMAT = "relay-snapshot/1";

/** The shape a restore relies on; the rest is XState's own and is checked by the restore. */
const persistedSchema = z.pipe(
  z.looseObject({
    status: z.literal("active", { error: "the snapshot is not of a running relay" }),
    value: z.unknown(),
    context: z.looseObject({
      questions: z.array(z.looseObject({ id: z.string(), conversation: z.string(), session: z.string() })),
      outbox: z.record(z.string(), z.array(z.looseObject({ replyId: z.string(), session: z.string(), text: z.string() }))),
      unacked: z.array(z.string()),
      done: z.array(z.string()),
    }),
    children: z.record(z.string(), z.looseObject({ src: z.literal("conversation"), snapshot: z.looseObject({ status: z.string(), context: z.looseObject({ id: z.string() }) }) })),
  }),
  z.transform((s) => ({ ...s, status: "active" as const, output: undefined, error: undefined })),
);

const fileSchema = z.discriminatedUnion("format", [
  z.object({ format: z.literal(FORMAT), savedAt: z.string(), snapshot: persistedSchema }),
  z.object({ format: z.literal(V1_FORMAT), savedAt: z.string(), snapshot: z.looseObject({ status: z.literal("active"), value: z.unknown(), context: v1ContextSchema }) }),
]);

export type SnapshotRead =
  | { kind: "none" }
  | { kind: "ok"; snapshot: z.output<typeof persistedSchema>; savedAt: string }
  | { kind: "v1"; context: V1Context; value: unknown; savedAt: string }
  | { kind: "invalid"; error: string };

export async function readSnapshot(paths: RelayPaths): Promise<SnapshotRead> {
  const read = await readJsonFile(paths.snapshot, fileSchema);
  if (read.ok) {
    const file = read.value;
    return file.format === FORMAT
      ? { kind: "ok", snapshot: file.snapshot, savedAt: file.savedAt }
      : { kind: "v1", context: file.snapshot.context, value: file.snapshot.value, savedAt: file.savedAt };
  }
  if (read.missing) return { kind: "none" };
  return { kind: "invalid", error: `state/snapshot.json cannot be restored (${read.error}); move it aside to start fresh` };
}

/** Writes the snapshot when it changed; `durable` also fsyncs it (before a side effect a power cut must not undo). */
export class SnapshotWriter {
  private last = "";
  private lastDurable = false;

  constructor(
    private readonly paths: RelayPaths,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  async write(snapshot: unknown, opts: { durable: boolean }): Promise<void> {
    const body = JSON.stringify(snapshot);
    if (body === this.last && (this.lastDurable || !opts.durable)) return;
    try {
      await writeAtomic(this.paths.snapshot, `{"format":"${FORMAT}","savedAt":"${new Date(this.now()).toISOString()}","snapshot":${body}}\n`, { durable: opts.durable, mode: PRIVATE_FILE });
    } catch (err) {
      this.log.error({ err: err instanceof Error ? err.message : String(err) }, "cannot write state/snapshot.json");
      throw err;
    }
    this.last = body;
    this.lastDurable = opts.durable;
  }
}
