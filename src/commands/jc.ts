import { Args } from "@oclif/core";
import { RelayCommand, UsageError } from "./base.js";

export default class Jc extends RelayCommand {
  static override description = 'Answer as JC: "@session-1: text" goes straight to that session; any other text is the next chat turn.';
  static override args = { text: Args.string({ description: "the answer", required: true }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Jc);
    const paths = this.resolvePaths(flags.root);
    const [{ loadConfig }, { submitJcInput }] = await Promise.all([import("../config/config.js"), import("../transport/file/client.js")]);
    const result = await submitJcInput(paths, await loadConfig(paths), args.text);
    if (!result.ok) throw new UsageError(result.error);
    this.log(result.value.kind === "direct" ? `sent to ${result.value.session} (no API call)` : "queued as the next chat turn");
  }
}
