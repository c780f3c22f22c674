import { RelayCommand } from "./base.js";

export default class Resume extends RelayCommand {
  static override examples = ["<%= config.bin %> resume --root ~/relay"];
  static override description = "Ask a relay paused by a permanent API failure (or backing off) to try again now.";

  async run(): Promise<void> {
    const { flags } = await this.parse(Resume);
    const paths = this.resolvePaths(flags.root);
    const [{ ensureDirs, writeAtomic }, { requireRoot }] = await Promise.all([import("../store/files.js"), import("../config/root.js")]);
    await requireRoot(paths);
    await ensureDirs(paths.state);
    await writeAtomic(paths.resumeRequest, `${new Date().toISOString()}\n`);
    this.log("resume requested; the relay retries within its poll interval");
  }
}
