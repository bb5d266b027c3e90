import { useEffect, useState, type FormEvent } from 'react';
import { forgetToken, graphql, GraphQLRequestError, storedToken, storeToken } from './api';
import { ComparisonPage } from './pages/ComparisonPage';
import { JobsPage } from './pages/JobsPage';
import { ModelsPage } from './pages/ModelsPage';
import { RolloutsPage } from './pages/RolloutsPage';

/** Pages by hash route: #/models, #/models/<name>, #/jobs, #/rollouts. */
function useRoute(): string[] {
  const parse = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const onChange = () => setRoute(parse());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

function Login({ onLogin }: { onLogin: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    try {
      await graphql('{ models { name } }', {}, token.trim());
      storeToken(token.trim());
      onLogin();
    } catch (e) {
      setError(e instanceof GraphQLRequestError && e.code === 'UNAUTHENTICATED' ? 'That token is not valid.' : (e as Error).message);
    }
  };
  return (
    <form className="login" onSubmit={submit}>
      <h1>vit-gateway</h1>
      <label>
        API token (viewer or admin)
        <input name="token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} />
      </label>
      <button type="submit">Sign in</button>
      {error && <p className="error">{error}</p>}
    </form>
  );
}

export function App() {
  const [signedIn, setSignedIn] = useState(() => storedToken() !== null);
  const route = useRoute();
  if (!signedIn) return <Login onLogin={() => setSignedIn(true)} />;
  const [section, name] = route;
  const page =
    section === 'models' && name ? <ComparisonPage model={name} />
    : section === 'jobs' ? <JobsPage />
    : section === 'rollouts' ? <RolloutsPage />
    : <ModelsPage />;
  const active = (s: string) => ((section ?? 'models') === s ? 'active' : undefined);
  return (
    <>
      <nav>
        <strong>vit-gateway</strong>
        <a href="#/models" className={active('models')}>Models</a>
        <a href="#/jobs" className={active('jobs')}>Quantization jobs</a>
        <a href="#/rollouts" className={active('rollouts')}>Rollouts</a>
        <button
          className="sign-out"
          onClick={() => {
            forgetToken();
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </nav>
      <main>{page}</main>
    </>
  );
}
