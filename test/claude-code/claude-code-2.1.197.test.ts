// The real Claude Code 2.1.197 against the relay's hooks: see real-suite.ts.
import { realClaudeCodeSuite } from "./real-suite.js";

realClaudeCodeSuite("2.1.197");
