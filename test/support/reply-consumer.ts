// A Claude Code session stand-in for the delivery tests: it takes each reply in
// dispatch/<session>/input.txt, records what it answers (input.json's in_reply_to), and deletes
// input.txt (the acknowledgement), polling every 30 ms until stopped.
import { readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { inputPath } from "./cli.js";

export function replyConsumer(root: string, session: string, seen: (string | null)[], text: RegExp = /^(answer number \d+|JC's own words)$/): { stop(): void } {
  let stopped = false;
  void (async () => {
    while (!stopped) {
      try {
        const reply = await readFile(inputPath(root, session), "utf8");
        const meta = JSON.parse(await readFile(join(root, "dispatch", session, "input.json"), "utf8")) as { in_reply_to: string | null };
        expect(reply).toMatch(text);
        seen.push(meta.in_reply_to);
        await unlink(inputPath(root, session));
      } catch {
        // no reply yet
      }
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  return {
    stop: () => {
      stopped = true;
    },
  };
}
