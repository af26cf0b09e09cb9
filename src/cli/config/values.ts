/**
 * How the text of a setting becomes its value: durations, whole numbers,
 * names, choices and booleans. Every source gives text (YAML is read with
 * every scalar a string), and no parser here changes a text setting: a name
 * is checked and kept exactly as written. The rules themselves (the longest
 * duration, what a name may be, the limit) are the library's, in
 * `src/options.ts` and `src/names.ts`; a parser only adds the text the user
 * wrote to the problem.
 *
 * @module
 */

import { durationProblem, limitProblem } from "../../options.ts";

/** What a parser throws: the words after the subject, such as "must not be negative". */
export class ValueError extends Error {}

/** The part of a value shown in a message: one line, at most 60 characters. */
export function quoted(raw: string): string {
  const chars = [...raw];
  const head = chars.length > 60 ? `${chars.slice(0, 60).join("")}…` : raw;
  // deno-lint-ignore no-control-regex
  return /[\u0000-\u001f\u007f']/.test(head)
    ? JSON.stringify(head)
    : `'${head}'`;
}

const UNITS: Readonly<Record<string, number>> = {
  ms: 0.001,
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
};

/** Seconds, as a number or text with an optional unit: `30`, `1.5`, `500ms`, `5m`, `2d`. */
export function seconds(min = 0, above = false) {
  return (raw: string): number => {
    const value = raw.trim();
    if (value.startsWith("-")) {
      throw new ValueError(`must not be negative, not ${quoted(raw)}`);
    }
    const match = /^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(ms|s|m|h|d)?$/i.exec(
      value,
    );
    if (!match) {
      throw new ValueError(
        `must be a number of seconds (such as 30, 1.5, 500ms or 5m), not ${
          quoted(raw)
        }`,
      );
    }
    const result = Number(match[1]) * UNITS[(match[2] ?? "s").toLowerCase()];
    const problem = durationProblem(result, min, above);
    if (problem) throw new ValueError(`${problem}, not ${quoted(raw)}`);
    return result;
  };
}

export function integer(min: number, max: number) {
  return (raw: string): number => {
    const value = raw.trim();
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new ValueError(
        `must be a whole number from ${min} to ${max}, not ${quoted(raw)}`,
      );
    }
    return Number(value);
  };
}

export function limit(raw: string): number {
  const value = raw.trim();
  const number = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  const problem = limitProblem(number);
  if (problem) throw new ValueError(`${problem}, not ${quoted(raw)}`);
  return number;
}

/** A name, checked by the library's own rule; the text is kept exactly. */
export function named(problemOf: (name: string) => string | undefined) {
  return (raw: string): string => {
    const problem = problemOf(raw);
    if (problem) throw new ValueError(problem);
    return raw;
  };
}

export function text(raw: string): string {
  if (raw === "") throw new ValueError("must not be empty");
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) {
    throw new ValueError("must not contain control characters");
  }
  return raw;
}

export function oneOf<const T extends string>(choices: readonly T[]) {
  return (raw: string): T => {
    const value = raw.trim().toLowerCase();
    const found = choices.find((choice) => choice === value);
    if (found === undefined) {
      throw new ValueError(
        `must be one of ${choices.join(", ")}, not ${quoted(raw)}`,
      );
    }
    return found;
  };
}

const TRUE = ["true", "yes", "on", "1"];
const FALSE = ["false", "no", "off", "0"];

export function boolean(raw: string): boolean {
  const value = raw.trim().toLowerCase();
  if (TRUE.includes(value)) return true;
  if (FALSE.includes(value)) return false;
  throw new ValueError(`must be true or false, not ${quoted(raw)}`);
}

/** The log levels, with the original's aliases. */
export const LOG_LEVELS: Readonly<Record<string, number>> = {
  debug: 10,
  info: 20,
  information: 20,
  warning: 30,
  warn: 30,
  error: 40,
  critical: 50,
  crit: 50,
};

export function level(raw: string): string {
  const value = raw.trim().toLowerCase();
  if (!(value in LOG_LEVELS)) {
    throw new ValueError(
      `must be one of debug, info, warning, error, critical, not ${
        quoted(raw)
      }`,
    );
  }
  return value;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        previous + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      previous = current;
    }
  }
  return row[b.length];
}

/** The candidate closest to `word` (a typo's likely meaning), if any is close. */
export function closest(
  word: string,
  candidates: readonly string[],
): string | undefined {
  const within = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= within ? best : undefined;
}
