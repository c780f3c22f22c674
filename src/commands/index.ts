import Chart from "./chart.js";
import Costs from "./costs.js";
import Jc from "./jc.js";
import Resume from "./resume.js";
import Run from "./run.js";
import Send from "./send.js";
import Status from "./status.js";
import Topic from "./topic.js";

export const commands = {
  chart: Chart,
  costs: Costs,
  jc: Jc,
  resume: Resume,
  run: Run,
  send: Send,
  status: Status,
  topic: Topic,
};
