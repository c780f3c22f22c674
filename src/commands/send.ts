import { randomBytes } from "node:crypto";
import { rename } from "node:fs/promises";
import { join } from "node:path";
import { Args, Flags } from "@oclif/core";
import { loadConfig, SESSION_ID } from "../config.js";
import { MAX_CONTENT_BYTES } from "../queue.js";
import { ensureDirs, syncDir, writeDurable } from "../store.js";
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
    if (!SESSION_ID.test(flags.session)) throw new UsageError(`--session ${JSON.stringify(flags.session)} is not a valid session id (${SESSION_ID.source})`);
    const config = await loadConfig(paths);
    if (!config.sessions.some((s) => s.id === flags.session)) {
      throw new UsageError(`session ${flags.session} is not in config.yaml (sessions: ${config.sessions.map((s) => s.id).join(", ")})`);
    }
    const content = args.text ?? (await readStdin());
    if (content.trim() === "") throw new UsageError("the message is empty: give TEXT or pipe it on standard input");
    if (Buffer.byteLength(content, "utf8") > MAX_CONTENT_BYTES) throw new UsageError("the message is over 1 MiB");
    await ensureDirs(paths.queue);
    const name = `${Date.now()}-${flags.session}-${randomBytes(4).toString("hex")}`;
    const envelope = { session_id: flags.session, timestamp: new Date().toISOString(), content };
    // The contract's atomic way: write .NAME.tmp, then rename it to NAME.json.
    await writeDurable(join(paths.queue, `.${name}.tmp`), JSON.stringify(envelope));
    await rename(join(paths.queue, `.${name}.tmp`), join(paths.queue, `${name}.json`));
    await syncDir(paths.queue);
    this.log(`queued ${name}.json`);
    return { file: `${name}.json` };
  }
}
