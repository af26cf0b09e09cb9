/**
 * Bad input, through the real CLI: each case gets one clear line on stderr
 * that names what is wrong, the documented exit code, and the command never
 * runs. Nothing here may connect anywhere: the network backends point at
 * port 1, so a case that got as far as connecting would give 69, not 64.
 */

import { cleanEnv, CLI_COMMAND, oneLine, runCli } from "../helpers/cli.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import { textOutput } from "../helpers/output.ts";

const home = await Deno.makeTempDir({ prefix: "coolock-home-" });
const dir = await Deno.makeTempDir({ prefix: "coolock-input-" });
const state = `file://${dir}/locks`;
const write = (name: string, text: string) => {
  Deno.writeTextFileSync(`${dir}/${name}`, text);
  return `${dir}/${name}`;
};
Deno.writeTextFileSync(`${dir}/not-executable`, "#!/bin/sh\necho hi\n");
Deno.writeFileSync(`${dir}/big.yaml`, new Uint8Array(1024 * 1024 + 1));
Deno.writeFileSync(
  `${dir}/binary`,
  new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0]),
);
const fifo = `${dir}/fifo`;
new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
const secretFile = write(
  "shadow",
  "root:$y$j9T$s3cretHash:20228:0:99999:7:::\nalice:*:20228:0:99999:7:::\n",
);
/** A print-config check: it must refuse exactly what a run refuses. */
const printing = (args: string[], message: RegExp): Case => ({
  args: [...args, "--print-config"],
  code: 64,
  message,
});

interface Case {
  args: string[];
  code: number;
  message: RegExp;
  env?: Record<string, string>;
  homeFile?: string;
  /**
   * A /bin/sh snippet run with the CLI's argv as "$@" that must `exec` it:
   * for arguments Deno can't pass, such as invalid UTF-8.
   */
  sh?: string;
  /** Text that must not appear on stderr (a file's contents, a secret). */
  hidden?: string[];
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
  "unknown flag with a suggestion, on one line": usage(
    ["--gaurd-time", "5"],
    /^coolock: unknown option '--gaurd-time' \(did you mean --guard-time\?\)$/,
  ),
  "unknown short flag": usage(["-x"], /unknown option '-x'/),
  "flag without its value": {
    args: ["--lock"],
    code: 64,
    message: /option '--lock' needs a value/,
  },
  "flag whose value is another option": usage(
    ["--lock", "--ttl", "5"],
    /option '--lock' needs a value/,
  ),
  "a flag given twice": usage(["-l", "a", "-l", "b"], /'-l' is given twice/),
  "a flag and its alias": usage(
    ["-l", "a", "--lock", "b"],
    /'-l' and '--lock' both set 'lock'/,
  ),
  "--config and --config-file": usage(
    ["--config", write("c1", ""), "--config-file", write("c2", "")],
    /'--config' and '--config-file' both set 'config'/,
  ),
  "a switch with a value": usage(
    ["--unguarded=yes"],
    /'--unguarded' takes no value/,
  ),
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
  "ttl too large to be a number": usage(
    ["--ttl", "1e400"],
    /'--ttl' must be at most 366 days \(31622400 seconds\), not '1e400'/,
  ),
  "guard time beyond 366 days": usage(
    ["-g", "1e12"],
    /'-g' must be at most 366 days/,
  ),
  "guard time beyond 366 days, with a unit": usage(
    ["-g", "367d"],
    /'-g' must be at most 366 days/,
  ),
  "ttl beyond 366 days from the environment": config(
    [],
    /'COOLOCK_TTL' must be at most 366 days/,
    { env: { COOLOCK_TTL: "9000h" } },
  ),
  "ttl longer than the backend keeps a lock, before connecting": usage(
    ["-b", "consul://127.0.0.1:1", "--ttl", "2d"],
    /'--ttl' of 172800 s is longer than the consul backend can keep a lock \(86400 s\)/,
  ),
  "guard time longer than the backend keeps a lock, before connecting": usage(
    ["-b", "consul://127.0.0.1:1", "-g", "25h"],
    /'-g' of 90000 s is longer than the consul backend can keep a lock/,
  ),
  "kill-after with a bad unit": usage(
    ["--kill-after", "5x"],
    /'--kill-after'.*'5x'/,
  ),
  "kill-after too long for the ttl": usage(
    ["--ttl", "3", "--kill-after", "5"],
    /'--kill-after'.*leaves no time to renew a 3 s TTL/,
  ),
  "a short ttl with the default kill-after blames the ttl": usage(
    ["--ttl", "3"],
    /Option '--ttl': a kill-after of 5 s leaves no time to renew a 3 s TTL/,
  ),
  "the ttl rule judges the backend's shortest TTL": usage(
    ["-b", "memcached://127.0.0.1:1", "--ttl", "0.5", "--kill-after", "0.5"],
    /a kill-after of 0.5 s leaves no time to renew a 1 s TTL/,
  ),
  "kill-after too long for the ttl, from a file": config([
    "--config",
    write("killafter.yaml", "ttl: 3\nkill-after: 5\n"),
  ], /Key 'kill-after' in '.*killafter.yaml': a kill-after of 5 s/),
  "conflict code out of range": usage(
    ["--conflict-exit-code", "256"],
    /0 to 255/,
  ),
  "conflict code negative": usage(["--conflict-exit-code=-1"], /0 to 255/),
  "log level unknown": usage(["--log-level", "loud"], /one of debug, info/),
  "log format unknown": usage(
    ["--log-format", "xml"],
    /'--log-format' must be one of text, json/,
  ),
  "limit zero": usage(
    ["--limit", "0"],
    /'--limit' must be a whole number from 1 to 1000/,
  ),
  "limit too large": usage(["--limit", "1001"], /from 1 to 1000/),
  "limit fractional": usage(["--limit", "1.5"], /from 1 to 1000/),
  "limit from the environment": config([], /'COOLOCK_LIMIT'/, {
    env: { COOLOCK_LIMIT: "many" },
  }),
  "unguarded neither true nor false": config(
    [],
    /'COOLOCK_UNGUARDED' must be true or false/,
    { env: { COOLOCK_UNGUARDED: "maybe" } },
  ),
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
  "lock name with padding": usage(
    ["-l", "  padded  "],
    /'-l' must not start or end with white space/,
  ),
  "lock name of invalid UTF-8": {
    args: ["-l", "INVALID", ...RUN],
    code: 64,
    message: /'-l' must be valid UTF-8/,
    sh:
      `for a; do shift; [ "$a" = INVALID ] && a="$(printf 'x\\377y')"; set -- "$@" "$a"; done; exec "$@"`,
  },
  "node name of invalid UTF-8 in the environment": {
    args: RUN,
    code: 78,
    message: /'COOLOCK_NODE' must be valid UTF-8/,
    sh: `COOLOCK_NODE="$(printf 'n\\377')" exec "$@"`,
  },
  "node name with a space": usage(["--node", "a b"], /'--node'.*spaces/),
  "backend and its alias both": usage([
    "--backend",
    state,
    "--coordination-backend",
    state,
  ], /both set 'backend'/),
  "backend and its alias both, in the environment": config(
    [],
    /'COOLOCK_BACKEND' and 'COOLOCK_COORDINATION_BACKEND' both set 'backend'/,
    {
      env: { COOLOCK_BACKEND: state, COOLOCK_COORDINATION_BACKEND: state },
    },
  ),
  "print-config refuses an unknown scheme, as a run does": printing(
    ["-b", "foo://x"],
    /Unknown backend scheme 'foo'/,
  ),
  "print-config refuses a node name with a space": printing(
    ["-n", "a b"],
    /'-n' must not contain spaces/,
  ),
  "print-config refuses a ttl that leaves no time to renew": printing(
    ["--ttl", "1"],
    /'--ttl': a kill-after of 5 s leaves no time to renew a 1 s TTL/,
  ),
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
  "config file is a device, and is not read": config(
    ["--config", "/dev/zero"],
    /Config file '\/dev\/zero' is a device, not a config file/,
  ),
  "config file is a FIFO, and does not block": config(
    ["--config", fifo],
    /is a FIFO, not a config file/,
  ),
  "config file over 1 MiB": config(
    ["--config", `${dir}/big.yaml`],
    /is larger than 1048576 bytes/,
  ),
  "config file that is not text": config(
    ["--config", `${dir}/binary`],
    /holds NUL bytes/,
  ),
  "config file that is not a config file is never quoted": config(
    ["--config", secretFile],
    /Config file '.*shadow' .*is not a coolock setting/,
    { hidden: ["root", "s3cret", "alice", "$y$"] },
  ),
  "seed-style file with a line of neither syntax": config(
    ["--config", write("seed-bad", "lock = x\n= value\n")],
    /line 2 is neither YAML 'key: value' nor the Python coolock's 'key = value'/,
  ),
  "bad YAML": config(
    ["--config", write("bad.yaml", "lock: [unclosed s3cret\n")],
    /is not valid YAML/,
    { hidden: ["s3cret"] },
  ),
  "YAML list instead of a mapping": config([
    "--config",
    write("list.yaml", "- lock\n- x\n"),
  ], /must be a mapping/),
  "unknown key without a suggestion": config(
    [
      "--config",
      write("unknown.yaml", "colour: blue\n"),
    ],
    /line 1\) has a key that is not a coolock setting/,
    {
      hidden: ["colour", "blue"],
    },
  ),
  "a key twice in a seed-style file": config([
    "--config",
    write("twice.conf", "lock = a\nlock = b\n"),
  ], /sets 'lock' twice/),
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
  "release without --force": {
    args: ["release", "--lock", "x", "-b", "redis://127.0.0.1:1"],
    code: 64,
    message: /would free lock 'x' .*add --force to do it/,
  },
  "status with --lock and --all": {
    args: ["status", "--lock", "x", "--all", "-b", "redis://127.0.0.1:1"],
    code: 64,
    message: /'--lock' and '--all' can't be used together/,
  },
  "a subcommand with arguments": {
    args: ["status", "extra"],
    code: 64,
    message: /'coolock status' takes no command or arguments/,
  },
  "a subcommand's switch on a run": usage(
    ["--json"],
    /option '--json' is only for 'coolock status', 'coolock release', 'coolock check'/,
  ),
  "a run's switch on a subcommand": {
    args: ["check", "--shell"],
    code: 64,
    message: /option '--shell' is only for a run/,
  },
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

async function run(
  args: string[],
  env: Record<string, string>,
  sh: string | undefined,
) {
  if (sh === undefined) return await runCli(args, { env });
  return await textOutput(
    new Deno.Command("/bin/sh", {
      args: ["-c", sh, "sh", ...CLI_COMMAND, ...args],
      env: cleanEnv(env),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }),
  );
}

for (const [name, test] of Object.entries(cases)) {
  const { args, code, message, env, homeFile, sh, hidden } = test;
  Deno.test(`bad input: ${name} → exit ${code}`, async () => {
    if (homeFile) await Deno.writeTextFile(`${home}/.coolock`, homeFile);
    try {
      const result = await run(args, {
        HOME: home,
        COOLOCK_LOG_FILE: `${dir}/log`,
        ...env,
      }, sh);
      assertEquals(result.code, code, `exit code (stderr: ${result.stderr})`);
      const line = oneLine(result.stderr);
      assert(message.test(line), `${line} should match ${message}`);
      for (const text of hidden ?? []) {
        assert(!result.stderr.includes(text), `stderr must not show ${text}`);
      }
      assert(
        !result.stdout.includes("must-not-run"),
        "the command must not run",
      );
    } finally {
      if (homeFile) await Deno.remove(`${home}/.coolock`);
    }
  });
}

Deno.test("bad input: there are at least 80 cases", () => {
  assert(Object.keys(cases).length >= 80, `${Object.keys(cases).length} cases`);
});
