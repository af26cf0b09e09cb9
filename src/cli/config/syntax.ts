/**
 * The text of a config file, as entries of key and text. Two syntaxes:
 *
 * - **YAML**, a mapping of keys to values, read with every scalar as the
 *   text written (YAML's failsafe schema): `lock: 0777` is `0777`, never the
 *   number 777, and `node: 0x1F` is never 31.
 * - **The Python coolock's** (ConfigArgParse's `DefaultConfigFileParser`):
 *   `key = value`, `key: value`, `key value`, `--key value` and a bare `key`
 *   (true) per line; `#` and `;` comments, `[section]` and `---` lines
 *   ignored. A file with a line that can't be YAML's (`key = value`, a
 *   `[section]`, a `;` comment, a bare key) is read this way, so a seed
 *   user's `/etc/coolock` works unchanged. A file of `key: value` lines is
 *   always YAML, and a YAML error in it is reported as one.
 *
 * Most config files are a few `key: value` lines, and loading the `yaml`
 * package costs more than the rest of a run's start-up. So a small reader
 * takes the lines whose YAML meaning is certain (a plain or quoted scalar
 * after a simple key); at the first line it is not sure of, the whole file
 * goes to the `yaml` package, loaded then. A test checks that both readers
 * agree.
 *
 * Errors never quote the file: it may be any file (`-c /etc/shadow`), so
 * they give a line number and what is wrong in general words.
 *
 * @module
 */

import { importNpm } from "../../npm.ts";

/** The YAML parser, loaded only for a file the small reader can't read. */
const YAML = "npm:yaml@2.9.1";

/** A value that is not a scalar: coolock's settings take none. */
export interface Composite {
  readonly composite: "list" | "mapping";
}

/** One `key: value` of a config file. */
export interface Entry {
  readonly key: string;
  readonly value: string | Composite;
  /** 1-based, where known. */
  readonly line?: number;
}

/** A config file's entries, and which syntax it was read with. */
export interface ConfigText {
  readonly entries: readonly Entry[];
  readonly syntax: "yaml" | "seed";
}

/** Why a file can't be read as config: general words and a line, never its text. */
export class SyntaxProblem extends Error {
  constructor(readonly problem: string, readonly line?: number) {
    super(line === undefined ? problem : `line ${line}: ${problem}`);
    this.name = "SyntaxProblem";
  }
}

type LineResult =
  | { readonly kind: "skip" }
  | { readonly kind: "entry"; readonly entry: Entry }
  /** Not YAML's for sure (`key = value`): the seed's syntax, maybe. */
  | { readonly kind: "not-yaml" }
  /** Maybe YAML, but more than the small reader knows. */
  | { readonly kind: "unsure" };

const SIMPLE_KEY = /^([A-Za-z0-9][A-Za-z0-9_.-]*):(?:[ ]+(.*))?$/;
/** Characters a YAML plain scalar can't start with. */
const INDICATORS = new Set([..."[]{}&*!|>%@`,\"'#"]);

/** The rest of a line after a closing quote: nothing, or a comment. */
function onlyComment(rest: string): boolean {
  return /^(?:[ ]+#.*)?[ ]*$/.test(rest);
}

/** A YAML scalar on one line, or `undefined` when the small reader is unsure. */
function yamlScalar(text: string): string | undefined {
  if (text === "" || text.startsWith("#")) return "";
  if (text.startsWith("'")) {
    let value = "";
    for (let i = 1; i < text.length; i++) {
      if (text[i] !== "'") {
        value += text[i];
        continue;
      }
      if (text[i + 1] === "'") {
        value += "'";
        i++;
        continue;
      }
      return onlyComment(text.slice(i + 1)) ? value : undefined;
    }
    return undefined; // continues on the next line
  }
  if (text.startsWith('"')) {
    const end = text.indexOf('"', 1);
    if (end < 0 || text.slice(1, end).includes("\\")) return undefined;
    return onlyComment(text.slice(end + 1)) ? text.slice(1, end) : undefined;
  }
  if (INDICATORS.has(text[0]) || /^[-?:](?:[ ]|$)/.test(text)) {
    return undefined;
  }
  const comment = /[ ]#/.exec(text);
  const value = (comment ? text.slice(0, comment.index) : text).trimEnd();
  if (/:(?:[ ]|$)/.test(value) || value.includes("\t")) return undefined;
  return value;
}

function yamlLine(line: string, index: number): LineResult {
  const trimmed = line.trim();
  if (trimmed === "" || trimmed.startsWith("#")) return { kind: "skip" };
  if (line !== line.trimStart() || line.includes("\t")) {
    return { kind: "unsure" };
  }
  const match = SIMPLE_KEY.exec(line.trimEnd());
  if (match) {
    const value = yamlScalar(match[2] ?? "");
    return value === undefined
      ? { kind: "unsure" }
      : { kind: "entry", entry: { key: match[1], value, line: index + 1 } };
  }
  // A line at the left margin with no mapping indicator can't be part of a
  // YAML mapping, nor can an ini-style `[section]`: either the file is a
  // YAML scalar, or it is the seed's.
  if (
    /^\[[^\]]*\][ ]*$/.test(line) ||
    (!INDICATORS.has(line[0]) && !/^[-?:]/.test(line) &&
      !/:(?:[ ]|$)/.test(line))
  ) {
    return { kind: "not-yaml" };
  }
  return { kind: "unsure" };
}

/**
 * The seed's line syntax, as ConfigArgParse's `DefaultConfigFileParser`
 * reads it (key, then `=`, `:` or white space, then the value in optional
 * matching quotes, then an optional ` #` or ` ;` comment).
 */
const SEED_LINE =
  /^([^:=;#\s]+)\s*(?:([:=\s])\s*(['"]?)(.+?)?\3)?\s*(?:\s[;#]\s*.*?\s*)?$/;

/** Reads `text` in the seed's syntax; throws `SyntaxProblem`. */
export function parseSeed(text: string): Entry[] {
  const entries: Entry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (
      line === "" || "#;[".includes(line[0]) || line.startsWith("---")
    ) return;
    const match = SEED_LINE.exec(line);
    if (!match) {
      throw new SyntaxProblem(
        "is neither YAML 'key: value' nor the Python coolock's 'key = value'",
        index + 1,
      );
    }
    const [, key, equal, , found] = match;
    const value = found ??
      (equal !== undefined && equal.trim() !== "" ? "" : "true");
    entries.push({
      key: key.replace(/^--/, ""),
      value: /^\[.*\]$/.test(value) ? { composite: "list" } : value,
      line: index + 1,
    });
  });
  return entries;
}

/**
 * Reads `text` with the `yaml` package, loaded now: the entries, or
 * `undefined` when the document is not a mapping. Throws `SyntaxProblem`.
 */
export async function parseYamlPackage(
  text: string,
): Promise<Entry[] | undefined> {
  const { parseDocument, LineCounter, isMap, isScalar, isSeq } =
    await importNpm<typeof import("npm:yaml@2.9.1")>(YAML);
  const counter = new LineCounter();
  const document = parseDocument(text, {
    schema: "failsafe",
    uniqueKeys: true,
    prettyErrors: false,
    lineCounter: counter,
  });
  const [error] = document.errors;
  if (error) {
    const { line } = counter.linePos(error.pos[0]);
    throw new SyntaxProblem(
      `is not valid YAML (${error.code.toLowerCase().replaceAll("_", " ")})`,
      line,
    );
  }
  const contents = document.contents;
  if (contents === null) return [];
  if (!isMap(contents)) return undefined;
  return contents.items.map((pair) => {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    const node = pair.value;
    const value: string | Composite = isScalar(node)
      ? String(node.value ?? "")
      : node === null
      ? ""
      : { composite: isSeq(node) ? "list" : "mapping" };
    const offset = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    return {
      key,
      value,
      line: offset === undefined ? undefined : counter.linePos(offset).line,
    };
  });
}

/**
 * Reads a config file's text as YAML, or in the seed's syntax when it is
 * not a YAML mapping. Throws `SyntaxProblem` with a line and general words.
 */
export async function parseConfig(text: string): Promise<ConfigText> {
  const lines = text.split(/\r?\n/);
  const entries: Entry[] = [];
  let sure = true;
  let seedOnly = false;
  let content = false;
  for (const [index, line] of lines.entries()) {
    // One document start, before any content, is the only marker read here.
    const marker = /^---(?:[ ]+#.*)?[ ]*$/.test(line);
    if (marker && !content) {
      content = true;
      continue;
    }
    const result = yamlLine(line, index);
    if (result.kind === "skip") continue;
    content = true;
    if (result.kind === "entry") entries.push(result.entry);
    else if (result.kind === "not-yaml") seedOnly = true;
    else sure = false;
  }
  if (seedOnly) return { entries: parseSeed(text), syntax: "seed" };
  if (sure) return { entries, syntax: "yaml" };
  // Every line looks like YAML's `key: value`, so the file is YAML, and a
  // YAML error is reported as one: the seed's reading of a broken YAML line
  // (`lock: [unclosed`) would be a silent change of meaning.
  const parsed = await parseYamlPackage(text);
  if (parsed) return { entries: parsed, syntax: "yaml" };
  throw new SyntaxProblem(
    "must be a mapping of keys to values, such as 'lock: nightly-backup' (or the Python coolock's 'lock = nightly-backup')",
  );
}
