import { RelayCommand } from "./base.js";

export default class Topic extends RelayCommand {
  static override examples = ["<%= config.bin %> topic --root ~/relay", "<%= config.bin %> topic --json"];
  static override description = "Print the ntfy URLs: the topic to subscribe to, and JC's private reply topic (both generated and saved in .env if missing).";
  static override enableJsonFlag = true;

  async run(): Promise<{ url: string; topic: string; server: string; replyUrl: string }> {
    const { flags } = await this.parse(Topic);
    const paths = this.resolvePaths(flags.root);
    const [{ ensureTopic, loadConfig }, { ensureDirs }] = await Promise.all([import("../config/config.js"), import("../store/files.js")]);
    await ensureDirs(paths.root);
    const config = await loadConfig(paths);
    const topic = await ensureTopic(paths);
    const replyTopic = await ensureTopic(paths, process.env, "NTFY_REPLY_TOPIC");
    const url = `${config.ntfy.server}/${topic}`;
    const replyUrl = `${config.ntfy.server}/${replyTopic}`;
    this.log(url);
    // stdout stays the one URL scripts expect (CONTRACT §9); the reply topic goes to stderr and --json
    process.stderr.write(`reply topic (publish JC's answers here; keep it private): ${replyUrl}\n`);
    return { url, topic, server: config.ntfy.server, replyUrl };
  }
}
