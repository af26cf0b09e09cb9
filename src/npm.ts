/**
 * Loading an npm package only when it is used.
 *
 * Deno resolves every `import()` of a literal `npm:` specifier in a module
 * graph at start-up, even one that never runs: with literal specifiers,
 * importing `mod.ts` for the file backend resolved all nine backends' clients
 * (+40 ms, +20 MB, and protobufjs's "Ignored build scripts" warning). A specifier held in a
 * variable is resolved only when it is imported, so each client (and the
 * YAML parser) is loaded by `importNpm(SPECIFIER)` from the one file that
 * names it, with its type from a type-only import there.
 *
 * `deno compile` still embeds them: it embeds the whole npm snapshot of
 * `deno.lock` unless told `--exclude-unused-npm`, which `scripts/build.ts`
 * never is; a test checks that every package loaded here is in `deno.lock`.
 *
 * @module
 */

/** Imports the npm package `specifier` (`npm:name@version`) now. */
export function importNpm<T>(specifier: string): Promise<T> {
  return import(specifier) as Promise<T>;
}
