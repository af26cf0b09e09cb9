/**
 * Settings without a process: the key table, the parser of the command
 * line, config files in both syntaxes, precedence and conflicts, and
 * `--print-config`. The CLI as a process is in cli.test.ts and
 * input.test.ts.
 */

import { type FlagValue, helpText, parseArgs } from "../../src/cli/args.ts";
import {
  defaultLogFile,
  KEY_NAMES,
  KEYS,
  ROOT_LOG_FILE,
  SWITCHES,
} from "../../src/cli/config/keys.ts";
import { userStateDir } from "../../src/paths.ts";
import {
  type Environment,
  ExitError,
  loadSettings,
} from "../../src/cli/config/load.ts";
import {
  ConfigFileProblem,
  MAX_CONFIG_BYTES,
  readConfigFile,
} from "../../src/cli/config/files.ts";
import {
  type Entry,
  parseConfig,
  parseYamlPackage,
} from "../../src/cli/config/syntax.ts";
import { printSettings } from "../../src/cli/config/print.ts";
import { checkOptions, MAX_SECONDS, problemOf } from "../../src/options.ts";
import { file } from "../../backends/file/mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../helpers/assert.ts";

function environment(
  vars: Record<string, string>,
  files: Record<string, string>,
  home = "/home/op",
  modes: Record<string, number> = {},
): Environment {
  return {
    get: (name) => vars[name],
    names: () => Object.keys(vars),
    home,
    readConfig: (path) =>
      Promise.resolve(
        files[path] === undefined
          ? undefined
          : { text: files[path], mode: modes[path] ?? 0o600 },
      ),
  };
}

const noFlags = { values: new Map() };
function flags(entries: Record<string, string>, config?: string) {
  return {
    values: new Map(
      Object.entries(entries).map((
        [key, raw],
      ) => [key as keyof typeof KEYS, { raw, flag: `--${key}` }]),
    ),
    config: config === undefined
      ? undefined
      : { raw: config, flag: "--config" } satisfies FlagValue,
  };
}

const load = (files: Record<string, string>, vars = {}) =>
  loadSettings(noFlags, environment(vars, files));

// --- the key table and its defaults ---------------------------------------

Deno.test("config: defaults are the original's, and the new keys' are safe", async () => {
  const { settings, files, warnings } = await load({});
  assertEquals(files, []);
  assertEquals(warnings, []);
  assertEquals(settings.lock.value, "coolock");
  assertEquals(settings["guard-time"].value, 30);
  assertEquals(settings["wait-timeout"].value, 0);
  assertEquals(settings["log-level"].value, "info");
  assertEquals(settings["log-max-size"].value, 20971520);
  assertEquals(settings["rotate-log-copies"].value, 5);
  assertEquals(settings.ttl.value, 30);
  assertEquals(settings["kill-after"].value, 5);
  assertEquals(settings["conflict-exit-code"].value, 0);
  assertEquals(settings.backend.value, undefined);
  assertEquals(settings.limit.value, 1);
  assertEquals(settings["log-format"].value, "text");
  assertEquals(settings.unguarded.value, false);
  assertEquals(settings.lock.origin.kind, "default");
});

Deno.test("config: the default log is the original's for root, and the user's state directory for others", () => {
  if (Deno.uid() === 0) assertEquals(defaultLogFile(), ROOT_LOG_FILE);
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assertEquals(
    userStateDir(env({ XDG_STATE_HOME: "/xdg", HOME: "/home/u" })),
    "/xdg/coolock",
  );
  assertEquals(
    userStateDir(env({ HOME: "/home/u/" })),
    "/home/u/.local/state/coolock",
  );
  // A relative XDG_STATE_HOME is ignored (the XDG spec says so): a cron
  // job's working directory must not decide where the log goes.
  assertEquals(
    userStateDir(env({ XDG_STATE_HOME: "state", HOME: "/home/u" })),
    "/home/u/.local/state/coolock",
  );
  assertEquals(userStateDir(env({ HOME: "relative" })), undefined);
  assertEquals(userStateDir(env({})), undefined);
});

Deno.test("config: precedence is flags, env, --config, ~/.coolock, $HOME/coolock, /etc/coolock, defaults", async () => {
  const files = {
    "/etc/coolock":
      "lock: from-etc\nguard-time: 1\nnode: etc-node\nttl: 11\nkill-after: 1\nwait-timeout: 1\n",
    "/home/op/coolock":
      "lock: from-home\nguard-time: 2\nnode: home-node\nttl: 12\nkill-after: 2\n",
    "/home/op/.coolock":
      "lock: from-dot\nguard-time: 3\nnode: dot-node\nttl: 13\n",
    "/srv/job.yaml": "lock: from-config\nguard-time: 4\nnode: config-node\n",
  };
  const env = environment(
    { COOLOCK_LOCK: "from-env", COOLOCK_GUARD_TIME: "5" },
    files,
  );
  const { settings, files: read } = await loadSettings(
    flags({ lock: "from-flag" }, "/srv/job.yaml"),
    env,
  );
  assertEquals(read, [
    "/etc/coolock",
    "/home/op/coolock",
    "/home/op/.coolock",
    "/srv/job.yaml",
  ]);
  assertEquals(settings.lock.value, "from-flag");
  assertEquals(settings.lock.origin, { kind: "flag", where: "--lock" });
  assertEquals(settings["guard-time"].value, 5);
  assertEquals(settings["guard-time"].origin, {
    kind: "env",
    where: "COOLOCK_GUARD_TIME",
  });
  assertEquals(settings.node.value, "config-node");
  assertEquals(settings.ttl.value, 13);
  assertEquals(settings["kill-after"].value, 2);
  assertEquals(settings["wait-timeout"].value, 1);
  assertEquals(settings["wait-timeout"].origin, {
    kind: "file",
    where: "/etc/coolock",
  });
});

Deno.test("config: COOLOCK_CONFIG names the config file, and --config beats it", async () => {
  const files = { "/a.yaml": "lock: a\n", "/b.yaml": "lock: b\n" };
  const env = environment({ COOLOCK_CONFIG: "/a.yaml" }, files);
  assertEquals((await loadSettings(noFlags, env)).settings.lock.value, "a");
  assertEquals(
    (await loadSettings(flags({}, "/b.yaml"), env)).settings.lock.value,
    "b",
  );
});

Deno.test("config: the original's key coordination-backend, and its env variable", async () => {
  const { settings } = await load({
    "/etc/coolock": "coordination-backend: kazoo://zk:2181\n",
  });
  assertEquals(settings.backend.value, "kazoo://zk:2181");
  const fromEnv = await load({}, {
    COOLOCK_COORDINATION_BACKEND: "redis://r",
  });
  assertEquals(fromEnv.settings.backend.value, "redis://r");
});

Deno.test("config: durations take fractions and units, up to 366 days", async () => {
  const { settings } = await load({
    "/etc/coolock":
      "guard-time: 1.5\nwait-timeout: 500ms\nttl: 2m\nkill-after: '0'\n",
  });
  assertEquals(settings["guard-time"].value, 1.5);
  assertEquals(settings["wait-timeout"].value, 0.5);
  assertEquals(settings.ttl.value, 120);
  assertEquals(settings["kill-after"].value, 0);
  assertEquals(KEYS["guard-time"].parse("600h"), 2_160_000);
  assertEquals(KEYS["guard-time"].parse("366d"), MAX_SECONDS);
  for (
    const [raw, words] of [
      ["367d", /at most 366 days \(31622400 seconds\), not '367d'/],
      ["1e12", /at most 366 days/],
      ["1e400", /at most 366 days/],
      ["-1", /must not be negative/],
    ] as const
  ) {
    const error = await assertRejects(
      () => loadSettings(flags({ "guard-time": raw }), environment({}, {})),
      ExitError,
    );
    assertMatch(error.message, words);
    assertEquals(error.exitCode, 64);
  }
});

Deno.test("config: empty environment variables are unset, and an empty file is no settings", async () => {
  const { settings, files } = await load(
    { "/etc/coolock": "# only a comment\n" },
    { COOLOCK_LOCK: "" },
  );
  assertEquals(settings.lock.value, "coolock");
  assertEquals(files, ["/etc/coolock"]);
});

Deno.test("config: inside a coolock job, COOLOCK_LOCK and COOLOCK_NODE describe the outer lock", async () => {
  const { settings, warnings } = await load({}, {
    COOLOCK_LOCK: "outer",
    COOLOCK_NODE: "n1",
    COOLOCK_FENCING_TOKEN: "7",
    COOLOCK_SLOT: "0",
    COOLOCK_TTL: "9",
  });
  assertEquals(settings.lock.value, "coolock");
  assertEquals(settings.ttl.value, 9);
  assertEquals(warnings, [], "the job's variables are not warned about");
});

Deno.test("config: a bad value names its source, with exit 64 for flags and 78 for env and files", async () => {
  const flagError = await assertRejects(
    () => loadSettings(flags({ "guard-time": "soon" }), environment({}, {})),
    ExitError,
  );
  assertEquals(flagError.exitCode, 64);
  assertMatch(flagError.message, /^Option '--guard-time' must be/);
  const envError = await assertRejects(
    () => load({}, { COOLOCK_TTL: "-3" }),
    ExitError,
  );
  assertEquals(envError.exitCode, 78);
  assertMatch(envError.message, /'COOLOCK_TTL'/);
  const fileError = await assertRejects(
    () => load({ "/home/op/.coolock": "rotate-log-copies: lots\n" }),
    ExitError,
  );
  assertEquals(fileError.exitCode, 78);
  assertMatch(
    fileError.message,
    /Key 'rotate-log-copies' in '\/home\/op\/\.coolock'/,
  );
});

Deno.test("config: a value overridden by a flag is still checked", async () => {
  const error = await assertRejects(
    () =>
      loadSettings(
        flags({ lock: "x" }),
        environment({}, { "/etc/coolock": "lock: [a, b]\n" }),
      ),
    ExitError,
  );
  assertMatch(error.message, /plain value, not a list/);
});

// --- text stays the text written -----------------------------------------

Deno.test("config: YAML never turns a text setting into a number or anything else", async () => {
  const cases: Record<string, string> = {
    "lock: 0777": "0777",
    "lock: 1e3": "1e3",
    "lock: 12345678901234567890": "12345678901234567890",
    "lock: 0x1F": "0x1F",
    "lock: true": "true",
    "lock: 1_000": "1_000",
    "lock: .inf": ".inf",
    "lock: 2001-12-14": "2001-12-14",
    "lock: '0777'": "0777",
    'lock: "0777"': "0777",
    "lock: it''s": "it''s",
    "lock: 'it''s'": "it's",
    "lock: a#b": "a#b",
    "lock: a # comment": "a",
    'lock: "caf\\u00e9"': "café",
    "lock: &anchor x": "x",
  };
  for (const [line, expected] of Object.entries(cases)) {
    const { settings } = await load({ "/etc/coolock": `${line}\n` });
    assertEquals(settings.lock.value, expected, line);
  }
  const { settings } = await load({ "/etc/coolock": "node: 0x1F\n" });
  assertEquals(settings.node.value, "0x1F");
});

Deno.test("config: the small YAML reader and the yaml package agree on every line it reads", async () => {
  const values = [
    "plain",
    "0777",
    "-x",
    "a-b_c.d/e:f",
    "redis://:p%23w@db:6379/0?x=1&y=2",
    "'single'",
    "'it''s'",
    "'a # b'",
    '"double"',
    '"a # b"',
    "x # comment",
    "x#y",
    "",
    "# only a comment",
    "~",
    "null",
    "'unterminated",
    '"esc\\"aped"',
    "a: b",
    "[a, b]",
    "{a: 1}",
    "*alias",
    "&a x",
    "!tag x",
    "| block",
    "> folded",
    "- item",
    "? key",
    "@reserved",
    "`reserved",
    "%percent",
    "a\tb",
    "trailing   ",
    "ünïcode 夜",
  ];
  for (const value of values) {
    const text = `lock: ${value}\nttl: 5\n`;
    let fast: Entry[] | string;
    try {
      const read = await parseConfig(text);
      fast = read.syntax === "yaml"
        ? read.entries.map(({ key, value }) => ({ key, value }))
        : "seed";
    } catch {
      fast = "error";
    }
    let full: Entry[] | string | undefined;
    try {
      full = (await parseYamlPackage(text))?.map(({ key, value }) => ({
        key,
        value,
      }));
    } catch {
      full = "error";
    }
    // Where the yaml package reads a mapping, the result is the same.
    if (Array.isArray(full)) assertEquals(fast, full, JSON.stringify(value));
  }
});

// --- the Python coolock's syntax -------------------------------------------

Deno.test("config: a config file in the Python coolock's syntax (ConfigArgParse) works unchanged", async () => {
  const seed = [
    "# /etc/coolock of the Python coolock",
    "[coolock]",
    "; an ini-style comment",
    "---",
    "coordination-backend = redis://db.internal:6379/0   # the main Redis",
    "lock=nightly",
    "guard-time: 60",
    "node myhost",
    "--wait-timeout 5",
    "log-level = 'debug'",
    "log-max-size = 20971520 ; 20 MB",
    "",
  ].join("\n");
  const { settings } = await load({ "/etc/coolock": seed });
  assertEquals(settings.backend.value, "redis://db.internal:6379/0");
  assertEquals(settings.lock.value, "nightly");
  assertEquals(settings["guard-time"].value, 60);
  assertEquals(settings.node.value, "myhost");
  assertEquals(settings["wait-timeout"].value, 5);
  assertEquals(settings["log-level"].value, "debug");
  assertEquals(settings["log-max-size"].value, 20971520);
  // A bare key is true, as ConfigArgParse reads it.
  const flag = await load({ "/etc/coolock": "lock = x\nunguarded\n" });
  assertEquals(flag.settings.unguarded.value, true);
  // The seed's shipped example: YAML-style, every line commented out.
  const example = [
    "# Coordination backend URI",
    "# coordination-backend: kazoo://localhost:2181",
    "# Log file maximum size",
    "# log-max-size: 20971520 # 20 MB",
  ].join("\n");
  assertEquals((await load({ "/etc/coolock": example })).files, [
    "/etc/coolock",
  ]);
});

Deno.test("config: a repeated key is an error in either syntax, never a silent choice", async () => {
  for (
    const text of [
      "lock: a\nlock: b\n",
      "lock = a\nlock = b\n",
      "backend = file:///x\ncoordination-backend = file:///y\n",
    ]
  ) {
    const error = await assertRejects(
      () => load({ "/etc/coolock": text }),
      ExitError,
    );
    assertEquals(error.exitCode, 78);
    assertMatch(error.message, /^Config file '\/etc\/coolock' /);
  }
});

Deno.test("config: errors about a file that is not a config file never quote it", async () => {
  const shadow =
    "root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\nsecretuser:$y$j9T$abc:20228:0:99999:7:::\n";
  const passwd = "root:x:0:0:root:/root:/bin/bash\n";
  for (
    const text of [shadow, passwd, "secret-token-value\n", "p4ss = w0rd\n"]
  ) {
    const error = await assertRejects(
      () => load({ "/etc/coolock": text }),
      ExitError,
    );
    assertEquals(error.exitCode, 78);
    for (
      const word of [
        "root",
        "daemon",
        "secretuser",
        "$y$",
        "p4ss",
        "w0rd",
        "secret-token",
      ]
    ) {
      assert(!error.message.includes(word), `${error.message} quotes ${word}`);
    }
    assertMatch(error.message, /^Config file '\/etc\/coolock'/);
  }
  const broken = await assertRejects(
    () => load({ "/etc/coolock": "lock: [unclosed secret\n" }),
    ExitError,
  );
  assert(!broken.message.includes("secret"), broken.message);
  assertMatch(broken.message, /line \d+ is not valid YAML/);
  // A typo of a real key is named, with a suggestion.
  const typo = await assertRejects(
    () => load({ "/etc/coolock": "gaurd-time: 3\n" }),
    ExitError,
  );
  assertMatch(
    typo.message,
    /^Unknown key 'gaurd-time' in config file '\/etc\/coolock' \(line 1\): did you mean 'guard-time'\?$/,
  );
});

// --- conflicts and unknown variables ---------------------------------------

Deno.test("config: two aliases set at one level are an error", async () => {
  const both = await assertRejects(
    () =>
      load({}, {
        COOLOCK_BACKEND: "file:///a",
        COOLOCK_COORDINATION_BACKEND: "file:///b",
      }),
    ExitError,
  );
  assertEquals(both.exitCode, 78);
  assertMatch(
    both.message,
    /'COOLOCK_BACKEND' and 'COOLOCK_COORDINATION_BACKEND' both set 'backend'/,
  );
  const configs = await assertRejects(
    () =>
      load({ "/a": "", "/b": "" }, {
        COOLOCK_CONFIG: "/a",
        COOLOCK_CONFIG_FILE: "/b",
      }),
    ExitError,
  );
  assertMatch(configs.message, /both set 'config'/);
});

Deno.test("config: unknown COOLOCK_* variables are warned about, with a suggestion", async () => {
  const { settings, warnings } = await load({}, {
    COOLOCK_GAURD_TIME: "5",
    COOLOCK_FENCING_TOKEN: "3",
    COOLOCK_SLOT: "1",
    COOLOCK_VERSION: "0.1.0",
    COOLOCK_ZZZ: "x",
    OTHER: "y",
  });
  assertEquals(settings["guard-time"].value, 30);
  assertEquals(warnings, [
    "Environment variable 'COOLOCK_GAURD_TIME' is not a coolock setting and is ignored: did you mean 'COOLOCK_GUARD_TIME'?",
    "Environment variable 'COOLOCK_ZZZ' is not a coolock setting and is ignored",
  ]);
});

Deno.test("config: a readable config file that holds a secret is warned about, once", async () => {
  const text = "backend: redis://app:s3cr%23t@db:6379/0\n";
  const open = await loadSettings(
    noFlags,
    environment({}, { "/etc/coolock": text }, "/h", { "/etc/coolock": 0o644 }),
  );
  assertEquals(open.warnings.length, 1);
  assertMatch(
    open.warnings[0],
    /^Config file '\/etc\/coolock' holds a password or token and can be read by other users \(mode 0644\)/,
  );
  assert(!open.warnings[0].includes("s3cr"), "the secret is not repeated");
  const closed = await loadSettings(
    noFlags,
    environment({}, { "/etc/coolock": text }, "/h", { "/etc/coolock": 0o600 }),
  );
  assertEquals(closed.warnings, []);
  const plain = await loadSettings(
    noFlags,
    environment({}, { "/etc/coolock": "backend: redis://db:6379\n" }, "/h", {
      "/etc/coolock": 0o644,
    }),
  );
  assertEquals(plain.warnings, []);
});

// --- reading files ----------------------------------------------------------

Deno.test("config files: only regular files up to 1 MiB of UTF-8 text, read without blocking", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coolock-files-" });
  try {
    const refused = async (path: string, words: RegExp) => {
      const error = await assertRejects(
        () => readConfigFile(path, true),
        ConfigFileProblem,
      );
      assertMatch(error.message, words);
    };
    await refused("/dev/zero", /is a device/);
    const fifo = `${dir}/fifo`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert(made.success, "mkfifo");
    await refused(fifo, /is a FIFO/); // returns: it never opened the FIFO
    await refused(dir, /is a directory/);
    assertEquals(await readConfigFile(dir, false), undefined);
    assertEquals(await readConfigFile(`${dir}/missing`, false), undefined);
    await Deno.writeFile(`${dir}/big`, new Uint8Array(MAX_CONFIG_BYTES + 1));
    await refused(`${dir}/big`, /larger than 1048576 bytes/);
    await Deno.writeFile(`${dir}/latin1`, new Uint8Array([0x6c, 0xe9, 0x0a]));
    await refused(`${dir}/latin1`, /not UTF-8/);
    await Deno.writeFile(`${dir}/nul`, new Uint8Array([0x61, 0, 0x62]));
    await refused(`${dir}/nul`, /NUL/);
    await Deno.writeTextFile(`${dir}/ok`, "lock: x\n", { mode: 0o640 });
    await Deno.chmod(`${dir}/ok`, 0o640);
    const ok = await readConfigFile(`${dir}/ok`, true);
    assertEquals(ok?.text, "lock: x\n");
    assertEquals((ok?.mode ?? 0) & 0o777, 0o640);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- print-config -----------------------------------------------------------

Deno.test("print-config: shows every setting and its source, and redacts secrets", async () => {
  const { settings, files } = await loadSettings(
    flags({ backend: "redis://app:hunter2@db:6379/0?sentinel_password=pw2" }),
    environment({ COOLOCK_TTL: "12" }, { "/etc/coolock": "lock: nightly\n" }),
  );
  const text = printSettings(settings, files, "");
  assert(!text.includes("hunter2") && !text.includes("pw2"), text);
  assert(
    text.includes("backend: redis://app:***@db:6379/0?sentinel_password=***"),
    text,
  );
  assertMatch(text, /^lock: nightly +# from \/etc\/coolock$/m);
  assertMatch(text, /^ttl: 12 +# from COOLOCK_TTL$/m);
  assertMatch(text, /^guard-time: 30 +# default$/m);
  assertMatch(text, /^limit: 1 +# default$/m);
  assert(text.includes("Config files read: /etc/coolock"), text);
});

Deno.test("print-config: an unset backend says the embedded file backend is in use", async () => {
  const { settings, files } = await load({});
  const text = printSettings(settings, files, "file:///state/coolock");
  assert(
    text.includes("# backend:") &&
      text.includes("file:///state/coolock (this host only)"),
    text,
  );
});

Deno.test("print-config: what it prints reads back as the same settings", async () => {
  for (
    const lock of [
      "0777",
      "- x",
      "*x",
      "a: b",
      "#x",
      "x #y",
      "true",
      "it's",
      '"quoted"',
      "夜 night",
      "@home",
      "%x",
      "[x]",
      "~",
    ]
  ) {
    const { settings, files } = await loadSettings(
      flags({ lock }),
      environment({}, {}),
    );
    const printed = printSettings(settings, files, "");
    const again = await load({ "/etc/coolock": printed });
    assertEquals(again.settings.lock.value, lock, printed);
    assertEquals(again.settings["guard-time"].value, 30);
  }
});

// --- the command line -------------------------------------------------------

Deno.test("args: every option form of the original, and the command untouched", () => {
  for (
    const argv of [
      ["--lock", "x", "--", "echo", "-n", "hi"],
      ["--lock=x", "echo", "-n", "hi"],
      ["-l", "x", "echo", "-n", "hi"],
      ["-lx", "echo", "-n", "hi"],
      ["-l=x", "echo", "-n", "hi"],
    ]
  ) {
    const parsed = parseArgs(argv);
    assertEquals(parsed.kind, "run");
    assertEquals(parsed.flags.get("lock")?.raw, "x", argv.join(" "));
    assertEquals(parsed.command, ["echo", "-n", "hi"], argv.join(" "));
  }
  const long = parseArgs([
    "--coordination-backend",
    "redis://r",
    "-g",
    "5",
    "-c",
    "/etc/job",
    "--shell",
    "--unguarded",
    "echo $x",
  ]);
  assertEquals(long.flags.get("backend"), {
    raw: "redis://r",
    flag: "--coordination-backend",
  });
  assertEquals(long.flags.get("unguarded")?.raw, "true");
  assertEquals(long.config, { raw: "/etc/job", flag: "-c" });
  assert(long.switches.has("shell"));
  assertEquals(long.command, ["echo $x"]);
  // A value that starts with '-' is given with '='.
  assertEquals(parseArgs(["--lock=-x", "true"]).flags.get("lock")?.raw, "-x");
  assertEquals(
    parseArgs(["-g", "-5", "true"]).flags.get("guard-time")?.raw,
    "-5",
  );
  // After `--`, everything is the command, even `--` and options.
  assertEquals(parseArgs(["--", "--lock", "--"]).command, ["--lock", "--"]);
});

Deno.test("args: subcommands only as the first argument", () => {
  const status = parseArgs(["status", "--lock", "x", "--json"]);
  assertEquals(status.kind, "status");
  assert(status.switches.has("json"));
  assertEquals(parseArgs(["release", "-l", "x", "--force"]).kind, "release");
  assertEquals(parseArgs(["check"]).kind, "check");
  const named = parseArgs(["--", "status"]);
  assertEquals([named.kind, named.command], ["run", ["status"]]);
  const late = parseArgs(["-l", "x", "status", "--all"]);
  assertEquals([late.kind, late.command], ["run", ["status", "--all"]]);
});

Deno.test("args: bad usage is one line, exit 64, and never repeats a value", () => {
  const cases: Array<[string[], string | RegExp]> = [
    [
      ["--gaurd-time", "5", "true"],
      "unknown option '--gaurd-time' (did you mean --guard-time?)",
    ],
    [
      ["--backnd=redis://:pw@h", "true"],
      "unknown option '--backnd' (did you mean --backend?)",
    ],
    [["-x", "true"], "unknown option '-x' (see 'coolock --help')"],
    [["-l", "a", "-l", "b", "true"], "option '-l' is given twice"],
    [
      ["-l", "a", "--lock", "b", "true"],
      "options '-l' and '--lock' both set 'lock'",
    ],
    [
      ["--config", "/a", "--config-file", "/b", "true"],
      "options '--config' and '--config-file' both set 'config'",
    ],
    [["--lock"], "option '--lock' needs a value"],
    [["--lock", "--", "true"], /^option '--lock' needs a value/],
    [["--lock", "--ttl", "5", "true"], /^option '--lock' needs a value/],
    [["--shell=yes", "x"], "option '--shell' takes no value"],
    [["--all"], "option '--all' is only for 'coolock status'"],
    [["status", "--force"], "option '--force' is only for 'coolock release'"],
    [["status", "--shell"], "option '--shell' is only for a run"],
    [["status", "x"], /^'coolock status' takes no command or arguments/],
  ];
  for (const [argv, message] of cases) {
    const error = assertThrows(() => parseArgs(argv), ExitError);
    assertEquals(error.exitCode, 64, argv.join(" "));
    if (typeof message === "string") assertEquals(error.message, message);
    else assertMatch(error.message, message);
    assert(!error.message.includes("pw@"), "no value in the message");
    assert(!error.message.includes("\n"), "one line");
  }
});

Deno.test("args: --help is generated from the key table, with every flag, the subcommands and 'coolock -- status'", () => {
  const help = helpText();
  for (const key of KEY_NAMES) {
    const spec = KEYS[key];
    assert(help.includes(`--${key}`), `--help shows --${key}`);
    for (const alias of spec.aliases) assert(help.includes(`--${alias}`));
    if (spec.short) assert(help.includes(`-${spec.short}, `), spec.short);
  }
  for (const name of Object.keys(SWITCHES)) {
    assert(help.includes(`--${name}`), `--help shows --${name}`);
  }
  for (const text of ["coolock status", "coolock release", "coolock check"]) {
    assert(help.includes(text), text);
  }
  assert(help.includes("coolock -- status"), "how to run a command 'status'");
  for (const line of help.split("\n")) {
    assert(line.length <= 100, `short lines: ${line}`);
  }
});

// --- the library's rules, which the CLI maps back to its sources ------------

Deno.test("options: each problem names the options it is about", () => {
  const backend = file("file:///tmp/coolock-options-test");
  const problem = (options: Parameters<typeof checkOptions>[0]) => {
    try {
      checkOptions(options);
    } catch (error) {
      assert(error instanceof TypeError || error instanceof RangeError);
      return problemOf(error);
    }
    throw new Error("expected a problem");
  };
  assertEquals(problem({ backend, ttl: 3, killAfter: 5 })?.options, [
    "killAfter",
    "ttl",
  ]);
  assertEquals(problem({ backend, guardTime: 1e12 }), {
    options: ["guardTime"],
    problem: "must be at most 366 days (31622400 seconds)",
  });
  assertEquals(problem({ backend, lock: " x" })?.options, ["lock"]);
  assertEquals(problem({ backend, node: "a b" })?.options, ["node"]);
  assertEquals(problem({ backend, limit: 0 })?.options, ["limit"]);
  assertEquals(
    problem({ backend, ttl: 0 })?.problem,
    "must be more than 0 seconds",
  );
  // killAfter adds to the margin, judged on the TTL the lease really has.
  assertEquals(checkOptions({ backend, ttl: 30, killAfter: 5 }).marginMs, 8000);
});
