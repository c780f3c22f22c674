import { Command } from "@oclif/core";

export default class Chart extends Command {
  static override description = "Print the relay's state machine as a Mermaid stateDiagram-v2.";

  async run(): Promise<void> {
    this.log("stateDiagram-v2");
  }
}
