/** A finished command's exit code and its output as text. */

/** What a command printed, and how it exited. */
export interface TextOutput {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `command` to completion (stdout and stderr piped) and decodes its output. */
export async function textOutput(command: Deno.Command): Promise<TextOutput> {
  const { code, stdout, stderr } = await command.output();
  const decoder = new TextDecoder();
  return {
    code,
    stdout: decoder.decode(stdout),
    stderr: decoder.decode(stderr),
  };
}
