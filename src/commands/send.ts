import { Args, Flags } from "@oclif/core";
import { RelayCommand, UsageError } from "./base.js";

export const DEFAULT_WAIT_SECONDS = 600;
const SECONDS = /^\d+(\.\d+)?$/;

/**
 * oclif option flags always take a value (oclif/oclif#148), so `--wait [SECONDS]` is made here:
 * `--wait` not followed by a number of seconds becomes `--wait=600`. Nothing after `--` is touched.
 */
export function withWaitDefault(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (const [i, arg] of argv.entries()) {
    if (arg === "--") return [...out, ...argv.slice(i)];
    out.push(arg === "--wait" && !SECONDS.test(argv[i + 1] ?? "") ? `--wait=${DEFAULT_WAIT_SECONDS}` : arg);
  }
  return out;
}

/**
 * TEXT from standard input, read to its end. Every command's args set `ignoreStdin`: oclif would otherwise
 * read standard input itself for a missing arg, giving up after 10 ms, which on a busy machine cut a
 * message written in two pieces.
 */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export interface SendResult {
  /** the envelope's id (echoed as in_reply_to in its reply's input.json) */
  id: string;
  /** its file name in queue/ */
  file: string;
  /** with --wait: the reply's text, already acknowledged */
  reply?: string;
}

export default class Send extends RelayCommand {
  static override examples = ["<%= config.bin %> send --session session-1 \"Sub-PR A is open at #438.\"", { description: "Wait for the reply to this envelope and print only it", command: "<%= config.bin %> send --session session-1 --wait 120 \"Ready for review?\"" }, "git diff --stat | <%= config.bin %> send --session session-1"];
  static override description = [
    "Drop an envelope into queue/ atomically (TEXT, or standard input) and print its id.",
    `With --wait [SECONDS] (default ${DEFAULT_WAIT_SECONDS}), standard output is only the reply to that envelope (the id goes to standard error), which is then acknowledged; a number right after --wait is always SECONDS.`,
  ].join("\n");
  static override enableJsonFlag = true;
  static override args = { text: Args.string({ ignoreStdin: true, description: "the message (default: standard input)" }) };
  static override flags = {
    session: Flags.string({ char: "s", description: "the sending session's id", required: true }),
    id: Flags.string({ description: "the envelope's id (default: a fresh send-… id)" }),
    wait: Flags.custom<number>({
      description: `wait up to SECONDS (default ${DEFAULT_WAIT_SECONDS}) for the reply, print it and acknowledge it`,
      helpValue: "SECONDS",
      parse: async (input) => {
        if (!SECONDS.test(input) || Number(input) <= 0) throw new Error(`--wait expects a positive number of seconds, not ${JSON.stringify(input)}`);
        return Number(input);
      },
    })(),
  };

  async run(): Promise<SendResult> {
    const { args, flags } = await this.parse(Send, withWaitDefault(this.argv));
    const paths = this.resolvePaths(flags.root);
    const [{ loadClientConfig }, { requireRoot }, { awaitReply, dropEnvelope }, { noRelayNote }] = await Promise.all([
      import("../config/config.js"),
      import("../config/root.js"),
      import("../transport/file/client.js"),
      import("./no-relay-note.js"),
    ]);
    await requireRoot(paths);
    const config = await loadClientConfig(paths, process.env, { seed: false });
    const dropped = await dropEnvelope(paths, config, flags.session, args.text ?? (await readStdin()), { id: flags.id });
    if (!dropped.ok) throw new UsageError(dropped.error);
    const { id, file } = dropped.value;
    // The id first (stdout, or stderr's first line with --wait), then the warning, if any.
    if (flags.wait === undefined) this.log(id);
    else this.logToStderr(id);
    const note = await noRelayNote(paths, `the envelope ${id}`);
    if (note !== null) this.logToStderr(note);
    if (flags.wait === undefined) return { id, file };
    const reply = await awaitReply(paths, config, flags.session, id, {
      timeoutMs: flags.wait * 1000,
      onQuestion: (q) => this.logToStderr(`relay: the relay asked JC (question ${q.id}); still waiting for the reply to ${id}`),
    });
    if (reply.kind === "timeout") {
      throw new UsageError(`no reply to ${id} within ${flags.wait} s; the envelope stays with the relay and its reply will still arrive in dispatch/${flags.session}/input.txt`, 1);
    }
    this.log(reply.text.replace(/\n$/, ""));
    return { id, file, reply: reply.text };
  }
}
