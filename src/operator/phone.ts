// JC's answers published to the private reply topic go down the same path as `relay jc`.
import { readFile } from "node:fs/promises";
import type { RelayConfig } from "../config/config.js";
import { submitJcInput } from "../transport/file/client.js";
import { claimedJcFiles } from "./jc-input.js";
import type { Notifier } from "./ntfy.js";
import type { RelayPaths } from "../config/paths.js";

const holds = async (path: string, text: string) => (await readFile(path, "utf8").catch(() => "")).trim() === text.trim();

/**
 * Resolves once the answer is in state/jc_input.txt (or is refused for good, and JC is told why);
 * rejects while an earlier answer is still unread, so the subscriber retries later.
 */
export async function takeReplyFromPhone(paths: RelayPaths, config: RelayConfig, m: { text: string; redelivered?: boolean }, notifier: Notifier): Promise<void> {
  // After a crash inside the hand-over the same message comes again: skip it if it is already there.
  if (m.redelivered) {
    for (const file of [paths.jcInput, ...(await claimedJcFiles(paths))]) if (await holds(file, m.text)) return;
  }
  const result = await submitJcInput(paths, config, m.text, { waitMs: 2_000 });
  if (result.ok) return;
  if (/not been read yet/.test(result.error)) throw new Error(result.error);
  notifier.notify({ title: "relay: your answer was not taken", message: result.error, priority: 3, tags: ["warning"] });
}
