// state/snapshot.json: the machine's persisted snapshot, written atomically after every
// transition, latest wins; `flush()` waits until what was saved so far is on disk.
import type { StateValue } from "xstate";
import { z } from "zod";
import type { RelayContext } from "../../machines/relay.js";
import type { Logger } from "../runtime/log.js";
import type { RelayPaths } from "../config/paths.js";
import { readJsonFile, writeAtomic } from "./files.js";

const FORMAT = "relay-snapshot/1";

const workItem = z.object({
  id: z.string(),
  source: z.enum(["envelope", "jc"]),
  session: z.string(),
  text: z.string(),
  file: z.string().optional(),
  timestamp: z.string().optional(),
});

/** The machine's context as persisted: checked field by field before it is trusted again. */
export const relayContextSchema = z.object({
  current: workItem.nullable(),
  reply: z.string().nullable(),
  notes: z.array(z.object({ id: z.string(), session: z.string(), text: z.string() })),
  jcChats: z.array(workItem),
  outbox: z.record(z.string(), z.array(z.object({ id: z.string(), text: z.string(), staged: z.boolean() }))),
  unacked: z.array(z.string()),
  needsJc: z.object({ session: z.string(), question: z.string(), since: z.number() }).nullable(),
  failure: z
    .object({ kind: z.enum(["transient", "permanent"]), message: z.string(), attempt: z.number(), nextAt: z.number(), since: z.number() })
    .nullable(),
  lastError: z.object({ message: z.string(), at: z.number() }).nullable(),
  lastSession: z.string().nullable(),
  done: z.array(z.string()),
  rejections: z.array(z.object({ id: z.string(), file: z.string(), reason: z.string(), at: z.number() })),
  overCap: z.array(z.string()),
}) satisfies z.ZodType<RelayContext>;

const stateValue: z.ZodType<StateValue> = z.union([z.string(), z.record(z.string(), z.lazy(() => stateValue))]);

const fileSchema = z.object({
  format: z.literal(FORMAT),
  savedAt: z.string(),
  snapshot: z
    .looseObject({
      status: z.literal("active", { error: "the snapshot is not of a running relay" }),
      value: stateValue,
      context: relayContextSchema,
    })
    .transform((s) => ({ ...s, status: "active" as const, output: undefined, error: undefined })),
});

export type SnapshotRead = { kind: "none" } | { kind: "ok"; snapshot: z.infer<typeof fileSchema>["snapshot"]; savedAt: string } | { kind: "invalid"; error: string };

export async function readSnapshot(paths: RelayPaths): Promise<SnapshotRead> {
  const read = await readJsonFile(paths.snapshot, fileSchema);
  if (read.ok) return { kind: "ok", snapshot: read.value.snapshot, savedAt: read.value.savedAt };
  if (read.missing) return { kind: "none" };
  return { kind: "invalid", error: `state/snapshot.json cannot be restored (${read.error}); move it aside to start fresh` };
}

export class SnapshotWriter {
  private pending: unknown = null;
  private writing: Promise<void> | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly paths: RelayPaths,
    private readonly log: Logger,
  ) {}

  save(snapshot: unknown): void {
    this.pending = snapshot;
    if (!this.writing) this.writing = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending !== null) {
        const snapshot = this.pending;
        this.pending = null;
        await writeAtomic(this.paths.snapshot, `${JSON.stringify({ format: FORMAT, savedAt: new Date().toISOString(), snapshot })}\n`);
      }
    } catch (err) {
      this.failure = err as Error;
      this.log.error({ err: (err as Error).message }, "cannot write state/snapshot.json");
    } finally {
      this.writing = null;
    }
  }

  /** Resolves once every snapshot saved before the call is on disk; throws if a write failed. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.failure) {
      const err = this.failure;
      this.failure = null;
      throw err;
    }
  }
}
