/**
 * `coolock --print-config`: the effective settings as YAML that could be
 * pasted into a config file and read back as the same settings, each with
 * where it came from. Secrets in the backend URI are redacted.
 *
 * @module
 */

import { KEY_NAMES } from "./keys.ts";
import type { Settings } from "./load.ts";
import { redactUri } from "../../uri.ts";

function yamlScalar(value: string | number | boolean): string {
  if (typeof value !== "string") return String(value);
  return /^[A-Za-z0-9_./~+][A-Za-z0-9_./:@*+=?&%~, -]*$/.test(value) &&
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
  const rows = KEY_NAMES.map((key) => {
    const { value, origin } = settings[key];
    const where = origin.kind === "default"
      ? "default"
      : `from ${origin.where}`;
    if (value === undefined) {
      return [
        `# ${key}:`,
        `not set: the embedded file backend ${backendDisplay} (this host only)`,
      ];
    }
    const shown = key === "backend" ? redactUri(String(value)) : value;
    return [`${key}: ${yamlScalar(shown)}`, where];
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  for (const [left, right] of rows) {
    lines.push(`${left.padEnd(width)}  # ${right}`);
  }
  return lines.join("\n") + "\n";
}
