import { Args, Command, loadHelpClass } from "@oclif/core";

export default class Help extends Command {
  static override description = "Show the commands, or the help of one command (the same as COMMAND --help).";
  static override examples = ["<%= config.bin %> help", "<%= config.bin %> help hook install"];
  static override strict = false;
  static override args = {
    command: Args.string({ ignoreStdin: true, description: "the command (and its topic) to explain", required: false }),
  };

  async run(): Promise<void> {
    const { argv } = await this.parse(Help);
    const HelpClass = await loadHelpClass(this.config);
    await new HelpClass(this.config).showHelp(argv.map(String));
  }
}
