/** A small Dockerfile reader for the checks in deploy.test.ts: instructions with their arguments, stage by stage. */

export interface Instruction {
  /** Upper-case keyword (FROM, COPY, ...). */
  keyword: string;
  /** `--name=value` flags before the arguments. */
  flags: Record<string, string>;
  /** The arguments: the JSON array's items in exec form, else whitespace-separated words. */
  args: string[];
  /** Whether the arguments were written in exec (JSON array) form. */
  execForm: boolean;
  line: number;
}

export interface Stage {
  name: string | undefined;
  base: string;
  instructions: Instruction[];
}

const KEYWORDS = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);

/** Logical lines: comments dropped, backslash continuations joined; throws on an unknown instruction. */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const start = index;
    let logical = lines[index];
    if (/^\s*(#|$)/.test(logical)) continue;
    while (logical.trimEnd().endsWith('\\') && index + 1 < lines.length) {
      index++;
      const next = lines[index];
      logical = logical.trimEnd().slice(0, -1) + ' ' + (/^\s*#/.test(next) ? '' : next.trim());
    }
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(logical);
    if (!match) throw new Error(`line ${start + 1}: not an instruction: ${logical}`);
    const keyword = match[1].toUpperCase();
    if (!KEYWORDS.has(keyword)) throw new Error(`line ${start + 1}: unknown instruction ${keyword}`);
    let rest = match[2].trim();
    const flags: Record<string, string> = {};
    for (let flag = /^--([a-z-]+)=(\S+)\s*/.exec(rest); flag; flag = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
      flags[flag[1]] = flag[2];
      rest = rest.slice(flag[0].length);
    }
    // HEALTHCHECK's options come before its CMD.
    const execPart = keyword === 'HEALTHCHECK' ? rest.replace(/^CMD\s+/, '') : rest;
    let args: string[];
    let execForm = false;
    if (execPart.startsWith('[')) {
      const parsed = JSON.parse(execPart) as unknown;
      if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`line ${start + 1}: exec form must be a JSON array of strings`);
      args = parsed;
      execForm = true;
    } else {
      args = execPart.split(/\s+/).filter(Boolean);
    }
    instructions.push({ keyword, flags, args, execForm, line: start + 1 });
  }
  return instructions;
}

/** The instructions grouped by build stage (FROM ... [AS name]). */
export function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [base, as, name] = instruction.args;
      if (as !== undefined && as.toUpperCase() !== 'AS') throw new Error(`line ${instruction.line}: FROM <image> [AS <name>]`);
      stages.push({ name, base, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') throw new Error(`line ${instruction.line}: ${instruction.keyword} before the first FROM`);
    } else {
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return stages;
}
