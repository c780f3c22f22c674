import { Command } from "@oclif/core";

export default class Version extends Command {
  static override description = "Print the relay's package name and version, the platform and Node's version (the same as --version).";
  static override examples = ["<%= config.bin %> version"];

  async run(): Promise<void> {
    await this.parse(Version);
    this.log(this.config.userAgent);
  }
}
