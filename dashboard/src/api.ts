import { createClient, type Client } from 'graphql-ws';

const TOKEN_KEY = 'vit-gateway-token';

export const storedToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const storeToken = (token: string): void => sessionStorage.setItem(TOKEN_KEY, token);
export const forgetToken = (): void => sessionStorage.removeItem(TOKEN_KEY);

/** A GraphQL error as the gateway answers it: message and extensions.code. */
export class GraphQLRequestError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

interface GraphQLAnswer<T> {
  data?: T;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

/** POSTs an operation to /graphql with the stored token; throws the first error. */
export async function graphql<T>(query: string, variables: Record<string, unknown> = {}, token = storedToken()): Promise<T> {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const answer = (await response.json()) as GraphQLAnswer<T>;
  if (answer.errors?.length) throw new GraphQLRequestError(answer.errors[0].message, answer.errors[0].extensions?.code);
  if (!answer.data) throw new GraphQLRequestError(`no data (HTTP ${response.status})`, undefined);
  return answer.data;
}

let socket: { token: string; client: Client } | undefined;

/** One graphql-ws connection per token, at ws(s)://<host>/graphql. */
function subscriptions(): Client {
  const token = storedToken() ?? '';
  if (socket?.token !== token) {
    void socket?.client.dispose();
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
    socket = { token, client: createClient({ url, connectionParams: { authorization: `Bearer ${token}` }, lazy: true }) };
  }
  return socket.client;
}

/** Subscribes to an operation; returns the function that ends the subscription. */
export function subscribe<T>(query: string, variables: Record<string, unknown>, onData: (data: T) => void, onError: (error: Error) => void): () => void {
  return subscriptions().subscribe<T>(
    { query, variables },
    {
      next: (message) => {
        if (message.errors?.length) onError(new Error(message.errors[0].message));
        else if (message.data) onData(message.data as T);
      },
      error: (error) => onError(error instanceof Error ? error : new Error('subscription closed')),
      complete: () => undefined,
    },
  );
}

/** The root fields the schema has, to tell which plugins are loaded (one __type per document: the gateway's introspection limit). */
export async function rootFields(): Promise<{ query: Set<string>; subscription: Set<string> }> {
  const fieldsOf = async (type: string) => {
    const data = await graphql<{ __type: { fields: Array<{ name: string }> } | null }>('query($type: String!) { __type(name: $type) { fields { name } } }', { type });
    return new Set(data.__type?.fields.map((f) => f.name));
  };
  const [query, subscription] = await Promise.all([fieldsOf('Query'), fieldsOf('Subscription')]);
  return { query, subscription };
}
