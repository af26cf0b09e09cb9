/**
 * Bad input, through the real CLI: each case gets one clear line on stderr
 * that names what is wrong, the documented exit code, and the command never
 * runs.
 */

import { oneLine, runCli } from "./helpers/cli.ts";
import { assert, assertEquals } from "./helpers/assert.ts";

const home = await Deno.makeTempDir({ prefix: "coolock-home-" });
const dir = await Deno.makeTempDir({ prefix: "coolock-input-" });
const state = `file://${dir}/locks`;
const write = (name: string, text: string) => {
  Deno.writeTextFileSync(`${dir}/${name}`, text);
  return `${dir}/${name}`;
};
Deno.writeTextFileSync(`${dir}/not-executable`, "#!/bin/sh\necho hi\n");

interface Case {
  args: string[];
  code: number;
  message: RegExp;
  env?: Record<string, string>;
  homeFile?: string;
}

const RUN = ["--", "echo", "must-not-run"];
const cases: Record<string, Case> = {
  "unknown flag": {
    args: ["--bogus", ...RUN],
    code: 64,
    message: /unknown option '--bogus'/,
  },
  "unknown short flag": {
    args: ["-x", ...RUN],
    code: 64,
    message: /unknown option '-x'/,
  },
  "flag without its value": {
    args: ["--lock"],
    code: 64,
    message: /argument missing/,
  },
  "no command": {
    args: ["--lock", "x"],
    code: 64,
    message: /No command given/,
  },
  "no command after --": {
    args: ["--"],
    code: 64,
    message: /No command given/,
  },
  "--shell with several arguments": {
    args: ["--shell", "echo", "a"],
    code: 64,
    message: /one quoted string, not 2/,
  },
  "guard-time not a number": {
    args: ["--guard-time", "soon", ...RUN],
    code: 64,
    message: /'--guard-time'.*'soon'/,
  },
  "guard-time negative": {
    args: ["--guard-time=-5", ...RUN],
    code: 64,
    message: /'--guard-time' must not be negative/,
  },
  "wait-timeout NaN": {
    args: ["--wait-timeout", "NaN", ...RUN],
    code: 64,
    message: /'--wait-timeout'.*'NaN'/,
  },
  "wait-timeout Infinity": {
    args: ["--wait-timeout", "Infinity", ...RUN],
    code: 64,
    message: /'Infinity'/,
  },
  "ttl zero": {
    args: ["--ttl", "0", ...RUN],
    code: 64,
    message: /'--ttl' must be more than 0/,
  },
  "kill-after with a bad unit": {
    args: ["--kill-after", "5x", ...RUN],
    code: 64,
    message: /'--kill-after'.*'5x'/,
  },
  "kill-after too long for the ttl": {
    args: ["--ttl", "3", "--kill-after", "5", ...RUN],
    code: 64,
    message: /'--kill-after'.*leaves no time to renew a 3 s TTL/,
  },
  "conflict code out of range": {
    args: ["--conflict-exit-code", "256", ...RUN],
    code: 64,
    message: /0 to 255/,
  },
  "conflict code negative": {
    args: ["--conflict-exit-code=-1", ...RUN],
    code: 64,
    message: /0 to 255/,
  },
  "log level unknown": {
    args: ["--log-level", "loud", ...RUN],
    code: 64,
    message: /one of debug, info/,
  },
  "log size fractional": {
    args: ["--log-max-size", "1.5", ...RUN],
    code: 64,
    message: /whole number/,
  },
  "log copies not a number": {
    args: ["--rotate-log-copies", "many", ...RUN],
    code: 64,
    message: /'many'/,
  },
  "unknown scheme": {
    args: ["--backend", "foo://x", ...RUN],
    code: 64,
    message: /Unknown backend scheme 'foo'/,
  },
  "URI without a scheme": {
    args: ["--backend", "db:6379x", ...RUN],
    code: 64,
    message: /Unknown backend scheme 'db'/,
  },
  "plain text backend": {
    args: ["--backend", "nonsense", ...RUN],
    code: 64,
    message: /has no scheme/,
  },
  "file URI with a host": {
    args: ["--backend", "file://host/x", ...RUN],
    code: 64,
    message: /file:\/\/\/absolute/,
  },
  "empty lock name": {
    args: ["--lock", "", ...RUN],
    code: 64,
    message: /'--lock' must not be empty/,
  },
  "lock name with a newline": {
    args: ["--lock", "a\nb", ...RUN],
    code: 64,
    message: /control characters/,
  },
  "lock name too long": {
    args: ["--lock", "x".repeat(201), ...RUN],
    code: 64,
    message: /longer than 200/,
  },
  "node name with a space": {
    args: ["--node", "a b", ...RUN],
    code: 64,
    message: /'--node'.*spaces/,
  },
  "backend and its alias both": {
    args: ["--backend", state, "--coordination-backend", state, ...RUN],
    code: 64,
    message: /both set 'backend'/,
  },
  "bad env duration": {
    args: RUN,
    env: { COOLOCK_GUARD_TIME: "abc" },
    code: 78,
    message: /Environment variable 'COOLOCK_GUARD_TIME'/,
  },
  "bad env log level": {
    args: RUN,
    env: { COOLOCK_LOG_LEVEL: "chatty" },
    code: 78,
    message: /'COOLOCK_LOG_LEVEL' must be one of/,
  },
  "bad env backend": {
    args: RUN,
    env: { COOLOCK_BACKEND: "gopher://x" },
    code: 78,
    message: /Environment variable 'COOLOCK_BACKEND'.*'gopher'/,
  },
  "missing --config file": {
    args: ["--config", "/nonexistent/coolock.yaml", ...RUN],
    code: 78,
    message: /'\/nonexistent\/coolock.yaml' does not exist/,
  },
  "missing COOLOCK_CONFIG file": {
    args: RUN,
    env: { COOLOCK_CONFIG: "/nonexistent/c.yaml" },
    code: 78,
    message: /does not exist/,
  },
  "config file is a directory": {
    args: ["--config", dir, ...RUN],
    code: 78,
    message: /is a directory/,
  },
  "bad YAML": {
    args: ["--config", write("bad.yaml", "lock: [unclosed\n"), ...RUN],
    code: 78,
    message: /is not valid YAML/,
  },
  "YAML list instead of a mapping": {
    args: ["--config", write("list.yaml", "- lock\n- x\n"), ...RUN],
    code: 78,
    message: /must be a mapping/,
  },
  "unknown key with a suggestion": {
    args: ["--config", write("typo.yaml", "gaurd-time: 3\n"), ...RUN],
    code: 78,
    message: /Unknown key 'gaurd-time'.*did you mean 'guard-time'\?/,
  },
  "negative duration in a file": {
    args: ["--config", write("neg.yaml", "guard-time: -1\n"), ...RUN],
    code: 78,
    message: /Key 'guard-time' in '.*neg.yaml' must not be negative/,
  },
  "mapping as a value": {
    args: ["--config", write("map.yaml", "lock:\n  a: 1\n"), ...RUN],
    code: 78,
    message: /Key 'lock'.*plain value/,
  },
  "a key and its alias in one file": {
    args: [
      "--config",
      write(
        "twice.yaml",
        `backend: ${state}\ncoordination-backend: ${state}\n`,
      ),
      ...RUN,
    ],
    code: 78,
    message: /sets 'backend' twice/,
  },
  "bad backend in a file": {
    args: ["--config", write("backend.yaml", "backend: foo://x\n"), ...RUN],
    code: 78,
    message: /Key 'backend' in '.*backend.yaml'.*'foo'/,
  },
  "bad home file": {
    args: RUN,
    homeFile: "ttl: forever\n",
    code: 78,
    message: /Key 'ttl' in '.*\.coolock'/,
  },
  "command not found": {
    args: [
      "--backend",
      state,
      "--guard-time",
      "0",
      "--",
      "/nonexistent/command",
    ],
    code: 127,
    message: /Command '\/nonexistent\/command' not found/,
  },
  "command not executable": {
    args: [
      "--backend",
      state,
      "--guard-time",
      "0",
      "--",
      `${dir}/not-executable`,
    ],
    code: 126,
    message: /can't be executed: permission denied/,
  },
};

for (
  const [name, { args, code, message, env, homeFile }] of Object.entries(cases)
) {
  Deno.test(`bad input: ${name} → exit ${code}`, async () => {
    if (homeFile) await Deno.writeTextFile(`${home}/.coolock`, homeFile);
    try {
      const result = await runCli(["--log-file", `${dir}/log`, ...args], {
        env: { HOME: home, ...env },
      });
      assertEquals(result.code, code, `exit code (stderr: ${result.stderr})`);
      const line = oneLine(result.stderr);
      assert(message.test(line), `${line} should match ${message}`);
      assert(
        !result.stdout.includes("must-not-run"),
        "the command must not run",
      );
    } finally {
      if (homeFile) await Deno.remove(`${home}/.coolock`);
    }
  });
}

Deno.test("bad input: there are at least 30 cases", () => {
  assert(Object.keys(cases).length >= 30, `${Object.keys(cases).length} cases`);
});
