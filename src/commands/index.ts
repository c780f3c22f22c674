import Agent from "./agent.js";
import Autocomplete from "./autocomplete.js";
import Chart from "./chart.js";
import Costs from "./costs.js";
import Doctor from "./doctor.js";
import Help from "./help.js";
import History from "./history.js";
import HookClaudeEnd from "./hook/claude-end.js";
import HookClaudeFailure from "./hook/claude-failure.js";
import HookClaudePermission from "./hook/claude-permission.js";
import HookClaudeStart from "./hook/claude-start.js";
import HookClaudeStop from "./hook/claude-stop.js";
import HookInstall from "./hook/install.js";
import HookUninstall from "./hook/uninstall.js";
import Init from "./init.js";
import Jc from "./jc.js";
import Logs from "./logs.js";
import NatsCheck from "./nats/check.js";
import NatsInit from "./nats/init.js";
import Resume from "./resume.js";
import Run from "./run.js";
import Send from "./send.js";
import ServiceInstall from "./service/install.js";
import ServicePrint from "./service/print.js";
import ServiceUninstall from "./service/uninstall.js";
import Status from "./status.js";
import Topic from "./topic.js";
import Version from "./version.js";

export const commands = {
  agent: Agent,
  autocomplete: Autocomplete,
  chart: Chart,
  costs: Costs,
  doctor: Doctor,
  help: Help,
  history: History,
  "hook:claude-end": HookClaudeEnd,
  "hook:claude-failure": HookClaudeFailure,
  "hook:claude-permission": HookClaudePermission,
  "hook:claude-start": HookClaudeStart,
  "hook:claude-stop": HookClaudeStop,
  "hook:install": HookInstall,
  "hook:uninstall": HookUninstall,
  init: Init,
  jc: Jc,
  logs: Logs,
  "nats:check": NatsCheck,
  "nats:init": NatsInit,
  resume: Resume,
  run: Run,
  send: Send,
  "service:install": ServiceInstall,
  "service:print": ServicePrint,
  "service:uninstall": ServiceUninstall,
  status: Status,
  topic: Topic,
  version: Version,
};
