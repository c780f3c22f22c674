import { Flags } from "@oclif/core";
import { RelayCommand, UsageError } from "../base.js";
import { checkSession, projectDir, readSettingsText, settingsFiles } from "./install.js";

export default class HookUninstall extends RelayCommand {
  static override examples = ["<%= config.bin %> hook uninstall --session session-1 --project ~/code/app"];
  static override description =
    "Remove the relay's Claude Code hooks for a session from DIR/.claude/settings.local.json and settings.json, keeping everything else.";
  static override enableJsonFlag = true;
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id", required: true }),
    project: Flags.string({ char: "p", description: "the Claude Code project directory (default: the current directory)" }),
  };

  async run(): Promise<{ settings: string[]; removed: number }> {
    const { flags } = await this.parse(HookUninstall);
    checkSession(flags.session);
    const { file, other } = settingsFiles(await projectDir(flags.project), false);
    const [{ formatSettings, parseSettings, removeRelayHooks }, { writeAtomic }] = await Promise.all([import("../../claude-code/settings.js"), import("../../store/files.js")]);
    // Both files are checked before either is written: a bad one changes nothing.
    const files = [];
    for (const path of [file, other]) {
      const text = await readSettingsText(path);
      if (text === null) continue;
      const parsed = parseSettings(text, path);
      if (!parsed.ok) throw new UsageError(parsed.error);
      files.push({ path, parsed });
    }
    let removed = 0;
    const changed: string[] = [];
    for (const { path, parsed } of files) {
      const result = removeRelayHooks(parsed.value.value, flags.session);
      if (result.removed === 0) continue;
      await writeAtomic(path, formatSettings({ ...parsed.value, value: result.value }));
      this.log(`removed ${result.removed} relay hook${result.removed === 1 ? "" : "s"} for session ${flags.session} from ${path}`);
      removed += result.removed;
      changed.push(path);
    }
    if (removed === 0) this.log(`no relay hooks for session ${flags.session} in ${file} or ${other}; nothing changed`);
    return { settings: changed, removed };
  }
}
