/** Small assertions: @std/assert lives on JSR, which is unreachable here. */

export function assert(
  condition: unknown,
  message = "Assertion failed",
): asserts condition {
  if (!condition) throw new Error(message);
}

export function assertEquals<T>(
  actual: T,
  expected: T,
  message?: string,
): void {
  const a = Deno.inspect(actual, { depth: 10, sorted: true });
  const e = Deno.inspect(expected, { depth: 10, sorted: true });
  if (a !== e) {
    throw new Error(
      `${message ?? "Values differ"}:\n  actual:   ${a}\n  expected: ${e}`,
    );
  }
}

export function assertMatch(
  actual: string,
  pattern: RegExp,
  message?: string,
): void {
  if (!pattern.test(actual)) {
    throw new Error(
      `${message ?? "No match"}: ${
        JSON.stringify(actual)
      } does not match ${pattern}`,
    );
  }
}

export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type?: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (type && !(error instanceof type)) {
      throw new Error(`Expected ${type.name}, got ${error}`);
    }
    return error as E;
  }
  throw new Error("Expected a rejection");
}

export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  type?: new (...args: any[]) => E,
): E {
  try {
    fn();
  } catch (error) {
    if (type && !(error instanceof type)) {
      throw new Error(`Expected ${type.name}, got ${error}`);
    }
    return error as E;
  }
  throw new Error("Expected an exception");
}
