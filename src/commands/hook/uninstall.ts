import { join } from "node:path";
import { Flags } from "@oclif/core";
import { RelayCommand, UsageError } from "../base.js";
import { checkSession, projectDir, readSettingsText } from "./install.js";

export default class HookUninstall extends RelayCommand {
  static override description = "Remove the relay's Claude Code hooks for a session from DIR/.claude/settings.json, keeping everything else.";
  static override enableJsonFlag = true;
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id", required: true }),
    project: Flags.string({ char: "p", description: "the Claude Code project directory (default: the current directory)" }),
  };

  async run(): Promise<{ settings: string; removed: number }> {
    const { flags } = await this.parse(HookUninstall);
    checkSession(flags.session);
    const file = join(await projectDir(flags.project), ".claude", "settings.json");
    const text = await readSettingsText(file);
    if (text === null) {
      this.log(`${file} does not exist; nothing to remove`);
      return { settings: file, removed: 0 };
    }
    const [{ formatSettings, parseSettings, removeRelayHooks }, { writeAtomic }] = await Promise.all([import("../../claude-code/hook.js"), import("../../store/files.js")]);
    const parsed = parseSettings(text, file);
    if (!parsed.ok) throw new UsageError(parsed.error);
    const result = removeRelayHooks(parsed.value.value, flags.session);
    if (result.removed > 0) {
      await writeAtomic(file, formatSettings({ ...parsed.value, value: result.value }));
      this.log(`removed ${result.removed} relay hook${result.removed === 1 ? "" : "s"} for session ${flags.session} from ${file}`);
    } else {
      this.log(`no relay hooks for session ${flags.session} in ${file}; nothing changed`);
    }
    return { settings: file, removed: result.removed };
  }
}
