// Rewrites the mermaid block of README.md from `relay chart` (run after changing the machine).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const chart = execFileSync(process.execPath, ["bin/relay.js", "chart"], { encoding: "utf8" });
const readme = readFileSync("README.md", "utf8");
writeFileSync("README.md", readme.replace(/```mermaid\n[\s\S]*?```/, `\`\`\`mermaid\n${chart}\`\`\``));
