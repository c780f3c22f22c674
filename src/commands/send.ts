import { Args, Flags } from "@oclif/core";
import { RelayCommand, UsageError } from "./base.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export default class Send extends RelayCommand {
  static override description = "Drop an envelope into queue/ atomically (TEXT, or standard input).";
  static override enableJsonFlag = true;
  static override args = { text: Args.string({ description: "the message (default: standard input)" }) };
  static override flags = {
    session: Flags.string({ char: "s", description: "the sending session's id", required: true }),
  };

  async run(): Promise<{ file: string }> {
    const { args, flags } = await this.parse(Send);
    const paths = this.resolvePaths(flags.root);
    const [{ loadConfig }, { dropEnvelope }] = await Promise.all([import("../config/config.js"), import("../transport/file/client.js")]);
    const config = await loadConfig(paths);
    const result = await dropEnvelope(paths, config, flags.session, args.text ?? (await readStdin()));
    if (!result.ok) throw new UsageError(result.error);
    this.log(`queued ${result.value.file}`);
    return result.value;
  }
}
