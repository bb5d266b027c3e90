import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { MaxTokensParserWLexer } from '@escape.tech/graphql-armor-max-tokens';
import { GraphQLError, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { Principal } from '../../auth/roles';
import type { GraphQLCaller, GraphQLQueryLimits } from '../../config/config';
import { asksForSchema, introspectionBreadthRule } from './introspection-rule';

/** The error code of a document refused for its size or shape, before anything runs. */
export const QUERY_TOO_COMPLEX = 'QUERY_TOO_COMPLEX';

export function callerOf(principal: Principal | undefined): GraphQLCaller {
  return principal?.role ?? 'anonymous';
}

/** graphql-armor prefixes every refusal with "Syntax Error: "; ours name the caller instead. */
function refusal(caller: GraphQLCaller, reasons: readonly string[]): GraphQLError {
  const text = reasons.map((reason) => reason.replace(/^Syntax Error: /, '').replace(/\.$/, '')).join('; ');
  return new GraphQLError(`query refused for ${caller} callers: ${text}`, {
    extensions: { code: QUERY_TOO_COMPLEX, http: { status: 400 } },
  });
}

/**
 * Counts the source's tokens with graphql-armor's lexer, stopping at the limit, so a huge
 * document costs no more than `maxTokens` tokens of work. Syntax errors are not ours to report:
 * Apollo's own parse says them with its usual code.
 */
export function checkTokens(source: string, caller: GraphQLCaller, limits: GraphQLQueryLimits): GraphQLError | undefined {
  const parser = new MaxTokensParserWLexer(source, { n: limits.maxTokens });
  try {
    parser.parseDocument();
  } catch (error) {
    if (parser.tokenCount > limits.maxTokens) return refusal(caller, [(error as Error).message]);
  }
  return undefined;
}

/**
 * The token check for an HTTP request, before Apollo sees it: the document is the body's `query`
 * (POST) or the `query` parameter (GET). A persisted-query hash alone has no text to count; its
 * document was counted when it was registered and is still held to the caller's shape limits.
 */
export function checkRequestTokens(request: { method: string; body?: unknown; query?: unknown }, caller: GraphQLCaller, limits: GraphQLQueryLimits): GraphQLError | undefined {
  const carrier = request.method === 'GET' ? request.query : request.body;
  const source = carrier && typeof carrier === 'object' ? (carrier as { query?: unknown }).query : undefined;
  return typeof source === 'string' ? checkTokens(source, caller, limits) : undefined;
}

/**
 * Depth, aliases, directives and estimated cost of a parsed, valid document, by graphql-armor's
 * rules, and the breadth of its introspection, which those rules leave out.
 */
export function checkShape(schema: GraphQLSchema, document: DocumentNode, caller: GraphQLCaller, limits: GraphQLQueryLimits): GraphQLError | undefined {
  // A full introspection costs tens of milliseconds of the event loop that inference shares; a
  // caller without a token gets nothing else from GraphQL, so it does not get that either.
  if (caller === 'anonymous' && asksForSchema(document)) {
    return new GraphQLError('introspection needs a bearer token (Authorization: Bearer <token>)', { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
  }
  const reasons: string[] = [];
  // Collect every exceeded limit instead of stopping at the first, so one answer names them all.
  const common = { exposeLimits: true, propagateOnRejection: false, onReject: [(_: unknown, error: GraphQLError) => void reasons.push(error.message)] };
  const errors = validate(schema, document, [
    introspectionBreadthRule,
    maxDepthRule({ ...common, n: limits.maxDepth }),
    // graphql-armor lets `__typename` be aliased freely by default; here an alias is an alias.
    maxAliasesRule({ ...common, n: limits.maxAliases, allowList: [] }),
    maxDirectivesRule({ ...common, n: limits.maxDirectives }),
    costLimitRule({ ...common, maxCost: limits.maxCost }),
  ]);
  reasons.push(...errors.map((error) => error.message));
  return reasons.length > 0 ? refusal(caller, reasons) : undefined;
}
