import {
  type Environment,
  InputError,
  loadSettings,
} from "../../src/cli/config/load.ts";
import { printSettings } from "../../src/cli/config/print.ts";
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";

function environment(
  vars: Record<string, string>,
  files: Record<string, string>,
  home = "/home/op",
): Environment {
  return {
    get: (name) => vars[name],
    home,
    readFile: (path) => Promise.resolve(files[path]),
  };
}

const noFlags = { values: new Map() };
function flags(entries: Record<string, string>, config?: string) {
  return {
    values: new Map(
      Object.entries(entries).map((
        [key, raw],
      ) => [key, { raw, flag: `--${key}` }]),
    ),
    config,
  };
}

Deno.test("config: defaults are the original's", async () => {
  const { settings, files } = await loadSettings(noFlags, environment({}, {}));
  assertEquals(files, []);
  assertEquals(settings.lock.value, "coolock");
  assertEquals(settings["guard-time"].value, 30);
  assertEquals(settings["wait-timeout"].value, 0);
  assertEquals(settings["log-file"].value, "/var/log/coolock.log");
  assertEquals(settings["log-level"].value, "info");
  assertEquals(settings["log-max-size"].value, 20971520);
  assertEquals(settings["rotate-log-copies"].value, 5);
  assertEquals(settings.ttl.value, 30);
  assertEquals(settings["kill-after"].value, 5);
  assertEquals(settings["conflict-exit-code"].value, 0);
  assertEquals(settings.backend.value, undefined);
  assertEquals(settings.lock.origin.kind, "default");
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
  const env = environment({}, {
    "/etc/coolock": "coordination-backend: kazoo://zk:2181\n",
  });
  const { settings } = await loadSettings(noFlags, env);
  assertEquals(settings.backend.value, "kazoo://zk:2181");
  const fromEnv = await loadSettings(
    noFlags,
    environment({ COOLOCK_COORDINATION_BACKEND: "redis://r" }, {}),
  );
  assertEquals(fromEnv.settings.backend.value, "redis://r");
});

Deno.test("config: durations take fractions and units", async () => {
  const env = environment({}, {
    "/etc/coolock":
      "guard-time: 1.5\nwait-timeout: 500ms\nttl: 2m\nkill-after: '0'\n",
  });
  const { settings } = await loadSettings(noFlags, env);
  assertEquals(settings["guard-time"].value, 1.5);
  assertEquals(settings["wait-timeout"].value, 0.5);
  assertEquals(settings.ttl.value, 120);
  assertEquals(settings["kill-after"].value, 0);
});

Deno.test("config: empty environment variables are unset, and an empty file is no settings", async () => {
  const env = environment({ COOLOCK_LOCK: "" }, {
    "/etc/coolock": "# only a comment\n",
  });
  const { settings, files } = await loadSettings(noFlags, env);
  assertEquals(settings.lock.value, "coolock");
  assertEquals(files, ["/etc/coolock"]);
});

Deno.test("config: inside a coolock job, COOLOCK_LOCK and COOLOCK_NODE describe the outer lock", async () => {
  const env = environment({
    COOLOCK_LOCK: "outer",
    COOLOCK_NODE: "n1",
    COOLOCK_FENCING_TOKEN: "7",
    COOLOCK_TTL: "9",
  }, {});
  const { settings } = await loadSettings(noFlags, env);
  assertEquals(settings.lock.value, "coolock");
  assertEquals(settings.ttl.value, 9);
});

Deno.test("config: a bad value names its source, with exit 64 for flags and 78 for env and files", async () => {
  const flagError = await assertRejects(
    () => loadSettings(flags({ "guard-time": "soon" }), environment({}, {})),
    InputError,
  );
  assertEquals(flagError.exitCode, 64);
  assert(
    flagError.message.startsWith("Option '--guard-time' must be"),
    flagError.message,
  );
  const envError = await assertRejects(
    () => loadSettings(noFlags, environment({ COOLOCK_TTL: "-3" }, {})),
    InputError,
  );
  assertEquals(envError.exitCode, 78);
  assert(envError.message.includes("'COOLOCK_TTL'"), envError.message);
  const fileError = await assertRejects(
    () =>
      loadSettings(
        noFlags,
        environment({}, { "/home/op/.coolock": "rotate-log-copies: lots\n" }),
      ),
    InputError,
  );
  assertEquals(fileError.exitCode, 78);
  assert(
    fileError.message.includes(
      "Key 'rotate-log-copies' in '/home/op/.coolock'",
    ),
    fileError.message,
  );
});

Deno.test("config: a value overridden by a flag is still checked", async () => {
  const error = await assertRejects(
    () =>
      loadSettings(
        flags({ lock: "x" }),
        environment({}, { "/etc/coolock": "lock: [a, b]\n" }),
      ),
    InputError,
  );
  assert(error.message.includes("plain value"), error.message);
});

Deno.test("print-config: shows every setting and its source, and redacts secrets", async () => {
  const env = environment({ COOLOCK_TTL: "12" }, {
    "/etc/coolock": "lock: nightly\n",
  });
  const { settings, files } = await loadSettings(
    flags({ backend: "redis://app:hunter2@db:6379/0?sentinel_password=pw2" }),
    env,
  );
  const text = printSettings(settings, files, "");
  assert(!text.includes("hunter2") && !text.includes("pw2"), text);
  assert(
    text.includes("backend: redis://app:***@db:6379/0?sentinel_password=***"),
    text,
  );
  assert(/^lock: nightly +# from \/etc\/coolock$/m.test(text), text);
  assert(/^ttl: 12 +# from COOLOCK_TTL$/m.test(text), text);
  assert(/^guard-time: 30 +# default$/m.test(text), text);
  assert(text.includes("Config files read: /etc/coolock"), text);
});

Deno.test("print-config: an unset backend says the embedded file backend is in use", async () => {
  const { settings, files } = await loadSettings(noFlags, environment({}, {}));
  const text = printSettings(settings, files, "file:///state/coolock");
  assert(
    text.includes("# backend:") &&
      text.includes("file:///state/coolock (this host only)"),
    text,
  );
});
