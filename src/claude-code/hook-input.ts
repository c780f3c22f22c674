// What Claude Code writes on a hook's standard input (FACTS "Claude Code hooks"), parsed
// leniently: unknown fields are kept, a missing optional field is not an error.
import * as z from "zod/mini";
import "../zod-english.js";

const stopInputSchema = z.looseObject({
  session_id: z.optional(z.string()),
  transcript_path: z.optional(z.string()),
  cwd: z.optional(z.string()),
  hook_event_name: z.optional(z.string()),
  stop_hook_active: z._default(z.boolean(), false),
  permission_mode: z.optional(z.string()),
  last_assistant_message: z.optional(z.nullable(z.string())),
});
export type StopInput = z.infer<typeof stopInputSchema>;

const startInputSchema = z.looseObject({
  session_id: z.optional(z.string()),
  transcript_path: z.optional(z.string()),
  hook_event_name: z.optional(z.string()),
  source: z.optional(z.string()),
});
export type StartInput = z.infer<typeof startInputSchema>;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export function parseJsonWith<T>(raw: string, schema: z.ZodMiniType<T>): Parsed<T> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: raw.trim() === "" ? "standard input is empty" : `standard input is not JSON (${(err as Error).message})` };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const [issue] = parsed.error.issues;
  const where = issue && issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ` : "";
  return { ok: false, error: `standard input is not the hook's JSON (${where}${issue?.message ?? "invalid"})` };
}

export const parseStopInput = (raw: string): Parsed<StopInput> => parseJsonWith(raw, stopInputSchema);
export const parseStartInput = (raw: string): Parsed<StartInput> => parseJsonWith(raw, startInputSchema);

const endInputSchema = z.looseObject({ session_id: z.optional(z.string()), hook_event_name: z.optional(z.string()), reason: z.optional(z.string()) });
export type EndInput = z.infer<typeof endInputSchema>;
export const parseEndInput = (raw: string): Parsed<EndInput> => parseJsonWith(raw, endInputSchema);

/** All of standard input, or what arrived before `timeoutMs` (Claude Code writes it and closes it). */
export async function readStdin(stream: NodeJS.ReadStream = process.stdin, timeoutMs = 5_000): Promise<string> {
  if (stream.isTTY) return "";
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    const timer = setTimeout(finish, timeoutMs);
    function finish(): void {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", finish);
      stream.off("error", finish);
      stream.pause();
      resolve();
    }
    function onData(chunk: Buffer | string): void {
      chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    }
    stream.on("data", onData);
    stream.once("end", finish);
    stream.once("error", finish);
  });
  if (!stream.readableEnded) stream.destroy();
  return Buffer.concat(chunks).toString("utf8");
}
