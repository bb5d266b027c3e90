import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { MaxTokensParserWLexer } from '@escape.tech/graphql-armor-max-tokens';
import { GraphQLError, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { Principal } from '../../auth/roles';
import type { GraphQLCaller, GraphQLQueryLimits } from '../../config/config';

/** The error code of a document refused for its size or shape, before anything runs. */
export const QUERY_TOO_COMPLEX = 'QUERY_TOO_COMPLEX';

export function callerOf(principal: Principal | undefined): GraphQLCaller {
  return principal?.role ?? 'anonymous';
}

/** graphql-armor prefixes every refusal with "Syntax Error: "; ours name the caller instead. */
function refusal(caller: GraphQLCaller, reasons: readonly string[]): GraphQLError {
  const text = reasons.map((reason) => reason.replace(/^Syntax Error: /, '')).join('; ');
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

/** Depth, aliases, directives and estimated cost of a parsed, valid document, by graphql-armor's rules. */
export function checkShape(schema: GraphQLSchema, document: DocumentNode, caller: GraphQLCaller, limits: GraphQLQueryLimits): GraphQLError | undefined {
  const reasons: string[] = [];
  // Collect every exceeded limit instead of stopping at the first, so one answer names them all.
  const common = { exposeLimits: true, propagateOnRejection: false, onReject: [(_: unknown, error: GraphQLError) => void reasons.push(error.message)] };
  validate(schema, document, [
    maxDepthRule({ ...common, n: limits.maxDepth }),
    maxAliasesRule({ ...common, n: limits.maxAliases }),
    maxDirectivesRule({ ...common, n: limits.maxDirectives }),
    costLimitRule({ ...common, maxCost: limits.maxCost }),
  ]);
  return reasons.length > 0 ? refusal(caller, reasons) : undefined;
}
