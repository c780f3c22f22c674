import { RelayCommand } from "./base.js";

export default class Topic extends RelayCommand {
  static override description = "Print the ntfy subscription URL (generates and saves the topic in .env if missing).";
  static override enableJsonFlag = true;

  async run(): Promise<{ url: string; topic: string; server: string }> {
    const { flags } = await this.parse(Topic);
    const paths = this.resolvePaths(flags.root);
    const [{ ensureTopic, loadConfig }, { ensureDirs }] = await Promise.all([import("../config.js"), import("../store.js")]);
    await ensureDirs(paths.root);
    const config = await loadConfig(paths);
    const topic = await ensureTopic(paths);
    const url = `${config.ntfy.server}/${topic}`;
    this.log(url);
    return { url, topic, server: config.ntfy.server };
  }
}
