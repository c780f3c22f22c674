// Reading a secret from the terminal without echoing it: raw mode, characters taken one by one.

/** Ask on standard error, read one line from the TTY on standard input, echo nothing; Ctrl-C or Ctrl-D gives up (null). */
export function askSecret(prompt: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string | null> {
  return new Promise((resolveAnswer) => {
    let answer = "";
    // Echo off before the prompt shows: a key typed (or pasted) right after it is never echoed.
    input.setRawMode(true);
    output.write(prompt);
    input.setEncoding("utf8");
    const finish = (value: string | null) => {
      input.off("data", onData);
      input.setRawMode(false);
      input.pause();
      output.write("\n");
      resolveAnswer(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return finish(answer);
        if (ch === "\u0003" || ch === "\u0004") return finish(null);
        if (ch === "\u007f" || ch === "\b") answer = answer.slice(0, -1);
        else if (ch >= " ") answer += ch;
      }
    };
    input.on("data", onData);
    input.resume();
  });
}
