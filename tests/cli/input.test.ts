/**
 * Bad input, through the real CLI: each case gets one clear line on stderr
 * that names what is wrong, the documented exit code, and the command never
 * runs.
 */

import { oneLine, runCli } from "../helpers/cli.ts";
import { assert, assertEquals } from "../helpers/assert.ts";

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
/** A usage error, exit 64: `args`, then a command that must not run. */
const usage = (args: string[], message: RegExp): Case => ({
  args: [...args, ...RUN],
  code: 64,
  message,
});
/** A configuration error, exit 78, from `args`, the environment or a file. */
const config = (
  args: string[],
  message: RegExp,
  more: Partial<Case> = {},
): Case => ({ args: [...args, ...RUN], code: 78, message, ...more });
/** A command that can't run, on a good configuration. */
const command = (path: string, code: number, message: RegExp): Case => ({
  args: ["--backend", state, "--guard-time", "0", "--", path],
  code,
  message,
});
const cases: Record<string, Case> = {
  "unknown flag": usage(["--bogus"], /unknown option '--bogus'/),
  "unknown short flag": usage(["-x"], /unknown option '-x'/),
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
  "guard-time not a number": usage(
    ["--guard-time", "soon"],
    /'--guard-time'.*'soon'/,
  ),
  "guard-time negative": usage(
    ["--guard-time=-5"],
    /'--guard-time' must not be negative/,
  ),
  "wait-timeout NaN": usage(
    ["--wait-timeout", "NaN"],
    /'--wait-timeout'.*'NaN'/,
  ),
  "wait-timeout Infinity": usage(["--wait-timeout", "Infinity"], /'Infinity'/),
  "ttl zero": usage(["--ttl", "0"], /'--ttl' must be more than 0/),
  "kill-after with a bad unit": usage(
    ["--kill-after", "5x"],
    /'--kill-after'.*'5x'/,
  ),
  "kill-after too long for the ttl": usage(
    ["--ttl", "3", "--kill-after", "5"],
    /'--kill-after'.*leaves no time to renew a 3 s TTL/,
  ),
  "conflict code out of range": usage(
    ["--conflict-exit-code", "256"],
    /0 to 255/,
  ),
  "conflict code negative": usage(["--conflict-exit-code=-1"], /0 to 255/),
  "log level unknown": usage(["--log-level", "loud"], /one of debug, info/),
  "log size fractional": usage(["--log-max-size", "1.5"], /whole number/),
  "log copies not a number": usage(["--rotate-log-copies", "many"], /'many'/),
  "unknown scheme": usage(
    ["--backend", "foo://x"],
    /Unknown backend scheme 'foo'/,
  ),
  "URI without a scheme": usage(
    ["--backend", "db:6379x"],
    /Unknown backend scheme 'db'/,
  ),
  "plain text backend": usage(["--backend", "nonsense"], /has no scheme/),
  "file URI with a host": usage(
    ["--backend", "file://host/x"],
    /file:\/\/\/absolute/,
  ),
  "empty lock name": usage(["--lock", ""], /'--lock' must not be empty/),
  "lock name with a newline": usage(["--lock", "a\nb"], /control characters/),
  "lock name too long": usage(["--lock", "x".repeat(201)], /longer than 200/),
  "node name with a space": usage(["--node", "a b"], /'--node'.*spaces/),
  "backend and its alias both": usage([
    "--backend",
    state,
    "--coordination-backend",
    state,
  ], /both set 'backend'/),
  "bad env duration": config([], /Environment variable 'COOLOCK_GUARD_TIME'/, {
    env: { COOLOCK_GUARD_TIME: "abc" },
  }),
  "bad env log level": config([], /'COOLOCK_LOG_LEVEL' must be one of/, {
    env: { COOLOCK_LOG_LEVEL: "chatty" },
  }),
  "bad env backend": config(
    [],
    /Environment variable 'COOLOCK_BACKEND'.*'gopher'/,
    { env: { COOLOCK_BACKEND: "gopher://x" } },
  ),
  "missing --config file": config(
    ["--config", "/nonexistent/coolock.yaml"],
    /'\/nonexistent\/coolock.yaml' does not exist/,
  ),
  "missing COOLOCK_CONFIG file": config([], /does not exist/, {
    env: { COOLOCK_CONFIG: "/nonexistent/c.yaml" },
  }),
  "config file is a directory": config(["--config", dir], /is a directory/),
  "bad YAML": config(
    ["--config", write("bad.yaml", "lock: [unclosed\n")],
    /is not valid YAML/,
  ),
  "YAML list instead of a mapping": config([
    "--config",
    write("list.yaml", "- lock\n- x\n"),
  ], /must be a mapping/),
  "unknown key with a suggestion": config([
    "--config",
    write("typo.yaml", "gaurd-time: 3\n"),
  ], /Unknown key 'gaurd-time'.*did you mean 'guard-time'\?/),
  "negative duration in a file": config([
    "--config",
    write("neg.yaml", "guard-time: -1\n"),
  ], /Key 'guard-time' in '.*neg.yaml' must not be negative/),
  "mapping as a value": config([
    "--config",
    write("map.yaml", "lock:\n  a: 1\n"),
  ], /Key 'lock'.*plain value/),
  "a key and its alias in one file": config([
    "--config",
    write("twice.yaml", `backend: ${state}\ncoordination-backend: ${state}\n`),
  ], /sets 'backend' twice/),
  "bad backend in a file": config([
    "--config",
    write("backend.yaml", "backend: foo://x\n"),
  ], /Key 'backend' in '.*backend.yaml'.*'foo'/),
  "bad home file": config([], /Key 'ttl' in '.*\.coolock'/, {
    homeFile: "ttl: forever\n",
  }),
  "command not found": command(
    "/nonexistent/command",
    127,
    /Command '\/nonexistent\/command' not found/,
  ),
  "command not executable": command(
    `${dir}/not-executable`,
    126,
    /can't be executed: permission denied/,
  ),
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
