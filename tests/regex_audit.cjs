// Reads [{source, flags}] as JSON on stdin, prints recheck's verdict on each as JSON.
// Usage: node regex_audit.cjs PATH/TO/node_modules/recheck  (see tests/regex_audit.py)
"use strict";
const { checkSync } = require(process.argv[2]);

// recheck picks automata (exact) where a pattern allows, fuzzing otherwise (lookaround,
// large bounded repeats); the fuzzer's seed is fixed so that a verdict is reproducible, and
// the time per pattern is generous (a busy 2-core box), past recheck's 10 s default.
const PARAMS = {
  timeout: 120000,
  randomSeed: 13,
};

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const verdicts = JSON.parse(input).map(({ source, flags }) => {
    const result = checkSync(source, flags, PARAMS);
    return {
      status: result.status,
      checker: result.checker || "",
      complexity: (result.complexity && result.complexity.summary) || "",
      attack: (result.attack && result.attack.pattern) || "",
      error: result.error ? JSON.stringify(result.error) : "",
    };
  });
  process.stdout.write(JSON.stringify(verdicts));
});
