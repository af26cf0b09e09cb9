/**
 * What only the `etcd` (JSON gateway) transport promises: it locks, waits
 * and closes on plain `fetch`, without npm or Node's layer, so that the
 * CLI on etcd starts as fast as Deno does.
 */

import { assertEquals } from "../../helpers/assert.ts";
import { lockName, server, uriOf, withServer } from "./fixture.ts";

const ROOT = new URL("../../../", import.meta.url);

Deno.test(
  "etcd: locks, waits for and releases a lock without loading npm or node:",
  withServer,
  async () => {
    const lock = JSON.stringify(lockName("no-npm"));
    const url = (path: string) => JSON.stringify(new URL(path, ROOT).href);
    const script = `
      const { etcd } = await import(${url("backends/etcd/gateway/mod.ts")});
      const { acquire } = await import(${url("src/lease.ts")});
      const probe = () => console.log("nodeBootstrap" in globalThis ? "loaded" : "clean");
      const a = etcd(${JSON.stringify(uriOf("etcd", server?.port))});
      const b = etcd(${JSON.stringify(uriOf("etcd", server?.port))});
      probe();
      const first = await acquire({ backend: a, lock: ${lock}, ttl: 2, guardTime: 0 });
      const waiter = acquire({ backend: b, lock: ${lock}, ttl: 2, guardTime: 0, waitTimeout: 10 });
      setTimeout(() => first.release(), 300);
      await (await waiter).release();
      await a.close();
      await b.close();
      probe();`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-npm", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    assertEquals(
      decoder.decode(out.stdout).trim().split("\n"),
      ["clean", "clean"],
      decoder.decode(out.stderr),
    );
    assertEquals(out.code, 0, decoder.decode(out.stderr));
  },
);
