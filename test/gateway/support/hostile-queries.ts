import fc from 'fast-check';
import { Lexer, Source, TokenKind } from 'graphql';
import { ADMIN_TOKEN, type TestGateway } from '../../support/gateway-harness';

/** A generated document and what the generator knows about its shape. */
export interface GeneratedQuery {
  text: string;
  /** Nesting of fields, the operation's root fields at depth 1 (fragments count where spread). */
  depth: number;
  aliases: number;
}

type Shape = { text: string; depth: number; aliases: number };

const MODEL_SCALARS = ['id', 'name', 'task', 'description', 'labels', 'createdAt'];
const VARIANT_SCALARS = ['id', 'tag', 'status', 'precision', 'method', 'artifactSize'];

// Unique across everything generated, so aliased siblings never collide.
let aliasCounter = 0;
const alias = () => `a${aliasCounter++}`;

/** A selection set: its fields' depth is 1 for scalars, more below object fields. */
function merge(parts: Shape[], scalars: string[]): Shape {
  return {
    text: [...scalars, ...parts.map((p) => p.text)].join(' '),
    depth: Math.max(scalars.length > 0 ? 1 : 0, ...parts.map((p) => p.depth)),
    aliases: parts.reduce((n, p) => n + p.aliases, 0),
  };
}

function field(name: string, selection: Shape, aliased: boolean): Shape {
  const label = aliased ? `${alias()}: ${name}` : name;
  return { text: `${label} { ${selection.text} }`, depth: selection.depth + 1, aliases: selection.aliases + (aliased ? 1 : 0) };
}

/**
 * Selections over the registry's cycle Model → variants → Variant → model / parent → ...,
 * with aliases (repeating a field), and scalars at every level; `fuel` bounds the nesting.
 */
function selectionOn(type: 'Model' | 'Variant', fuel: number): fc.Arbitrary<Shape> {
  const scalars = fc.subarray(type === 'Model' ? MODEL_SCALARS : VARIANT_SCALARS, { minLength: 1 });
  if (fuel <= 0) return scalars.map((s) => ({ text: s.join(' '), depth: 1, aliases: 0 }));
  const children = type === 'Model' ? [['variants', 'Variant']] : [['model', 'Model'], ['parent', 'Variant']];
  const child = fc
    .tuple(fc.constantFrom(...children), fc.integer({ min: 1, max: 2 }))
    .chain(([[name, childType], copies]) =>
      fc.array(selectionOn(childType as 'Model' | 'Variant', fuel - 1), { minLength: copies, maxLength: copies }).map((selections) =>
        selections.map((selection, i) => field(name, selection, i > 0)),
      ),
    );
  // Mostly one branch, sometimes none or two: deep documents without an exponential text.
  return fc.tuple(scalars, fc.constantFrom(0, 1, 1, 1, 2).chain((n) => fc.array(child, { minLength: n, maxLength: n }))).map(([s, kids]) => merge(kids.flat(), s));
}

/** Whole operations: `models` or `model(name)` roots, aliased copies, optionally through a named fragment. */
export function registryQueries(modelName: string): fc.Arbitrary<GeneratedQuery> {
  const root = fc.tuple(fc.constantFrom('models', `model(name: "${modelName}")`), selectionOn('Model', 6), fc.boolean());
  return fc.tuple(fc.array(root, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([roots, viaFragment]) => {
    const fragments: string[] = [];
    const fields = roots.map(([rootField, selection], i) => {
      let body = selection;
      if (viaFragment) {
        fragments.push(`fragment F${i} on Model { ${selection.text} }`);
        body = { ...selection, text: `...F${i}` };
      }
      const aliased = i > 0;
      return field(rootField, body, aliased);
    });
    const shape = merge(fields, []);
    return { text: `query { ${shape.text} } ${fragments.join(' ')}`, depth: shape.depth, aliases: shape.aliases };
  });
}

/** Tokens as graphql-js's lexer counts them, independent of the gateway's counting. */
export function tokenCount(text: string): number {
  const lexer = new Lexer(new Source(text));
  let n = 0;
  while (lexer.advance().kind !== TokenKind.EOF) n++;
  return n;
}

export interface GraphQLReply {
  status: number;
  /** The gateway's own time for the request (Server-Timing), in ms. */
  gatewayMs: number;
  body: { data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
  text: string;
}

/** POSTs a document with a token (null: none) and keeps the raw answer and its Server-Timing. */
export async function sendGraphQL(gateway: TestGateway, query: string, token: string | null = ADMIN_TOKEN, variables: Record<string, unknown> = {}): Promise<GraphQLReply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${gateway.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const text = await response.text();
  const timing = /dur=([\d.]+)/.exec(response.headers.get('server-timing') ?? '');
  return { status: response.status, gatewayMs: timing ? Number(timing[1]) : Number.NaN, body: JSON.parse(text), text };
}

function modelChain(levels: number): string {
  return levels <= 1 ? MODEL_SCALARS.join(' ') : `${MODEL_SCALARS.join(' ')} variants { ${variantChain(levels - 1)} }`;
}

function variantChain(levels: number): string {
  return levels <= 1 ? VARIANT_SCALARS.join(' ') : `${VARIANT_SCALARS.join(' ')} parent { id tag } model { ${modelChain(levels - 1)} }`;
}

/** Families of expensive documents, each growing with `n`: the worst a caller may send is the largest one accepted. */
export const HOSTILE_FAMILIES: Record<string, (n: number, modelName: string) => string> = {
  /** models → variants → model → variants → ... n levels of objects, every scalar at every level. */
  deepChain: (n) => `{ models { ${modelChain(n)} } }`,
  /** n aliased copies of a four-level fan-out over every model. */
  wideAliases: (n) =>
    `{ ${Array.from({ length: n }, (_, i) => `c${i}: models { id variants { id tag model { id variants { id tag status parent { id tag } } } } }`).join(' ')} }`,
  /** Fragments that each spread the previous one twice: the document is linear, the work exponential. */
  fragmentDoubling: (n) => {
    const fragments = [`fragment F0 on Variant { id tag status }`];
    for (let k = 1; k <= n; k++) fragments.push(`fragment F${k} on Variant { x: model { variants { ...F${k - 1} } } y: model { variants { ...F${k - 1} } } }`);
    return `{ models { variants { ...F${n} } } } ${fragments.join(' ')}`;
  },
  /** n aliased walks of the whole schema through introspection, which graphql-armor's depth and cost leave out. */
  introspection: (n) =>
    `{ ${Array.from({ length: n }, (_, i) => `s${i}: __schema { types { name fields { name args { name type { name } } type { name kind ofType { name fields { name } } } } } }`).join(' ')} }`,
};
