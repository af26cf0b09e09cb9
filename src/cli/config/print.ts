/**
 * `coolock --print-config`: the effective settings as YAML that could be
 * pasted into a config file, each with where it came from. Secrets in the
 * backend URI are redacted.
 *
 * @module
 */

import { KEYS } from "./keys.ts";
import type { Settings } from "./load.ts";
import { redactUri } from "../../uri.ts";

function yamlScalar(value: string | number): string {
  if (typeof value === "number") return String(value);
  return /^[A-Za-z0-9_./:@*+=?&%~-][A-Za-z0-9_./:@*+=?&%~, -]*$/.test(value) &&
      !/[:\s]$/.test(value) &&
      !/: /.test(value)
    ? value
    : JSON.stringify(value);
}

/** Renders the settings; `backendDisplay` describes the backend in use. */
export function printSettings(
  settings: Settings,
  files: readonly string[],
  backendDisplay: string,
): string {
  const lines = [
    `# Effective coolock settings. Config files read: ${
      files.length ? files.join(", ") : "none"
    }`,
  ];
  const rows = KEYS.map((spec) => {
    const { value, origin } = settings[spec.key];
    const where = origin.kind === "default"
      ? "default"
      : `from ${origin.where}`;
    if (value === undefined) {
      return [
        `# ${spec.key}:`,
        `not set: the embedded file backend ${backendDisplay} (this host only)`,
      ];
    }
    const shown = spec.key === "backend" ? redactUri(String(value)) : value;
    return [`${spec.key}: ${yamlScalar(shown)}`, where];
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  for (const [left, right] of rows) {
    lines.push(`${left.padEnd(width)}  # ${right}`);
  }
  return lines.join("\n") + "\n";
}
