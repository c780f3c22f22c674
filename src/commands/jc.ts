import { Args, Flags } from "@oclif/core";
import { RelayCommand, UsageError } from "./base.js";

export default class Jc extends RelayCommand {
  static override examples = ["<%= config.bin %> jc \"@session-1: stop and rebase first\"", "<%= config.bin %> jc --question q-3 \"Yes, spend it.\"", "<%= config.bin %> jc --session session-2 \"What is blocking you?\""];
  static override description = [
    'Answer as JC: "@session-1: text" goes straight to that session; any other text is the next chat turn.',
    "--question QID answers that open question; --session ID is a turn in that session's conversation.",
    "Plain text while several questions are open is refused: pick one with --question.",
  ].join("\n");
  static override args = { text: Args.string({ ignoreStdin: true, description: "the answer", required: true }) };
  static override flags = {
    question: Flags.string({ char: "q", description: "the id of the open question this answers", exclusive: ["session"] }),
    session: Flags.string({ char: "s", description: "a turn in this session's conversation; its reply goes to this session", exclusive: ["question"] }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Jc);
    const paths = this.resolvePaths(flags.root);
    const [{ loadClientConfig }, { requireRoot }, { submitJcInput }, { noRelayNote }] = await Promise.all([
      import("../config/config.js"),
      import("../config/root.js"),
      import("../transport/file/client.js"),
      import("./no-relay-note.js"),
    ]);
    await requireRoot(paths);
    const config = await loadClientConfig(paths, process.env, { seed: false });
    const result = await submitJcInput(paths, config, args.text, { question: flags.question, session: flags.session, refuseAmbiguous: true });
    if (!result.ok) throw new UsageError(result.error);
    const note = await noRelayNote(paths, "state/jc_input.txt");
    if (note !== null) this.logToStderr(note);
    const taken = result.value;
    if (taken.kind === "direct") this.log(`sent to ${taken.session} (no API call)`);
    else if (taken.question !== undefined) this.log(`queued as the answer to question ${taken.question}`);
    else if (taken.session !== undefined) this.log(`queued as the next chat turn in ${taken.session}'s conversation`);
    else this.log("queued as the next chat turn");
  }
}
