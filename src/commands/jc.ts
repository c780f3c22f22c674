import { access } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { Args } from "@oclif/core";
import { loadConfig } from "../config.js";
import { parseJcInput } from "../jc.js";
import { ensureDirs, writeAtomic } from "../store.js";
import { RelayCommand, UsageError } from "./base.js";

const exists = (path: string) => access(path).then(() => true, () => false);

export default class Jc extends RelayCommand {
  static override description = 'Answer as JC: "@session-1: text" goes straight to that session; any other text is the next chat turn.';
  static override args = { text: Args.string({ description: "the answer", required: true }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Jc);
    const paths = this.resolvePaths(flags.root);
    const parsed = parseJcInput(args.text);
    if (parsed.kind === "empty") throw new UsageError("the answer is empty");
    const config = await loadConfig(paths);
    if (parsed.kind === "direct" && !config.sessions.some((s) => s.id === parsed.session)) {
      throw new UsageError(`@${parsed.session} is not a session in config.yaml (sessions: ${config.sessions.map((s) => s.id).join(", ")})`);
    }
    await ensureDirs(paths.state);
    // Never overwrite an answer the relay has not read yet.
    const deadline = Date.now() + Math.max(5_000, 3 * config.pollIntervalMs);
    while (await exists(paths.jcInput)) {
      if (Date.now() > deadline) throw new UsageError("an earlier JC answer in state/jc_input.txt has not been read yet; is `relay run` running?", 1);
      await sleep(50);
    }
    await writeAtomic(paths.jcInput, `${args.text}\n`);
    this.log(parsed.kind === "direct" ? `sent to ${parsed.session} (no API call)` : "queued as the next chat turn");
  }
}
