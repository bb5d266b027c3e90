import type { ApolloServerPlugin } from '@apollo/server';

/** Where the schema's SDL is served, beside the endpoint (public: the schema ships with the code). */
export const SDL_PATH = '/graphql/schema.graphql';

/**
 * What a browser sees at `GET /graphql`. Apollo's default page loads its explorer from a CDN,
 * which shows nothing offline; this one is self-contained (no script, no external address).
 */
const LANDING_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vit-gateway GraphQL</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1d2330; }
  pre { background: #f2f4f7; padding: .8rem; overflow-x: auto; }
  code { font-family: ui-monospace, monospace; }
</style>
</head>
<body>
<h1>vit-gateway GraphQL</h1>
<p>This is the control plane's GraphQL endpoint. It answers <code>POST</code> requests with a JSON body and a bearer token
(roles: <code>viewer</code> for queries, <code>admin</code> for mutations).</p>
<ul>
  <li><a href="/dashboard">Dashboard</a>: models, variants, traffic and live comparisons.</li>
  <li><a href="${SDL_PATH}">Schema (SDL)</a>: every query, mutation and subscription, with descriptions.</li>
</ul>
<h2>Send a query</h2>
<pre><code>curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
  -d '{"query": "{ models { name task variants { id tag precision status } } }"}' \\
  "$GATEWAY/graphql"</code></pre>
<p><code>$GATEWAY</code> is this server's address (the one in your browser's address bar, without <code>/graphql</code>);
the admin token is printed once on the gateway's first start, or set with <code>GATEWAY_ADMIN_TOKEN</code>.
Subscriptions use graphql-ws on this same path, with the token in <code>connectionParams.authorization</code>.</p>
</body>
</html>
`;

/** Replaces Apollo's CDN-loaded landing page with the self-contained one above. */
export function offlineLandingPage(): ApolloServerPlugin {
  return {
    async serverWillStart() {
      return {
        async renderLandingPage() {
          return { html: LANDING_PAGE_HTML };
        },
      };
    },
  };
}
