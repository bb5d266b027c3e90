import { BREAK, GraphQLError, getNamedType, visit, type ASTVisitor, type DocumentNode, type ValidationContext } from 'graphql';

const INTROSPECTION_ROOTS = new Set(['__schema', '__type']);

/**
 * The work of an introspection query is out of reach of graphql-armor's depth and cost (they
 * skip `__schema`) and of the operation budget (Apollo does not instrument introspection
 * fields). graphql-js's MaxIntrospectionDepthRule bounds one walk of the schema; this rule
 * stops the walks from being multiplied: one `__schema` or `__type` field per document and no
 * aliases inside introspection. The standard introspection query of every GraphQL tool fits.
 */
export function introspectionBreadthRule(context: ValidationContext): ASTVisitor {
  let roots = 0;
  return {
    Field(node) {
      if (INTROSPECTION_ROOTS.has(node.name.value) && ++roots === 2) {
        context.reportError(new GraphQLError('Introspection limit of one __schema or __type field per document exceeded.', { nodes: node }));
      }
      const parent = context.getParentType();
      if (node.alias && parent && getNamedType(parent).name.startsWith('__')) {
        context.reportError(new GraphQLError(`Introspection fields cannot be aliased (found "${node.alias.value}").`, { nodes: node }));
      }
    },
  };
}

/** Whether the document asks for the schema (`__schema` or `__type`; `__typename` is not introspection here). */
export function asksForSchema(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    Field(node) {
      if (INTROSPECTION_ROOTS.has(node.name.value)) {
        found = true;
        return BREAK;
      }
      return undefined;
    },
  });
  return found;
}
