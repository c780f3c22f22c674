// Rewrites the two mermaid blocks of README.md (the root machine, then a conversation's) from
// `relay chart --machine ...` (run after changing a machine).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const chart = (machine) => execFileSync(process.execPath, ["bin/relay.js", "chart", "--machine", machine], { encoding: "utf8" });
let readme = readFileSync("README.md", "utf8");
for (const machine of ["root", "conversation"]) {
  const block = new RegExp("(<!-- chart:" + machine + " -->\\n```mermaid\\n)[\\s\\S]*?```");
  if (!block.test(readme)) throw new Error(`README.md has no <!-- chart:${machine} --> block`);
  readme = readme.replace(block, `$1${chart(machine)}\`\`\``);
}
writeFileSync("README.md", readme);
