/** The UI's entry: hash routes, the page frame, and the login form shown when the registry asks for credentials. */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { info, LoginRequired, loggedInAs, login, logout, onAuthChange } from "./api.js";
import { Announcer } from "./components.js";
import "./style.css";
import { ImagePage } from "./views/Image.js";
import { RepositoryPage } from "./views/Repository.js";
import { RepositoryList } from "./views/RepositoryList.js";
import { loginPrompt, parseRoute, type Route } from "./routes.js";

function Login(props: { failed: boolean; onDone: () => void }) {
  const [user, setUser] = useState("");
  const [pass, setPass] = useState("");
  const submit = (ev: Event) => {
    ev.preventDefault();
    login(user, pass);
    props.onDone();
  };
  return (
    <form class="login card" onSubmit={submit} aria-labelledby="login-title">
      <h1 id="login-title">Log in</h1>
      <p class="muted">This registry asks for credentials. They stay in this tab's memory and are forgotten when the page reloads.</p>
      {props.failed && (
        <p class="error" role="alert">
          Those credentials were refused.
        </p>
      )}
      <label for="login-user">User name</label>
      <input id="login-user" name="username" autocomplete="username" value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} required autofocus />
      <label for="login-pass">Password or token</label>
      <input id="login-pass" name="password" type="password" autocomplete="current-password" value={pass} onInput={(e) => setPass((e.target as HTMLInputElement).value)} required />
      <button type="submit" class="primary">
        Log in
      </button>
    </form>
  );
}

function App() {
  const [route, setRoute] = useState<Route>(() => parseRoute(location.hash));
  const [needLogin, setNeedLogin] = useState<LoginRequired | undefined>();
  const [, setAuthVersion] = useState(0);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    let shown = parseRoute(location.hash);
    const onHash = () => {
      const next = parseRoute(location.hash);
      setRoute(next);
      // a new page takes the focus to its start; a new search or sort leaves it where the user is typing
      const samePage = next.page === shown.page && (next.page === "list" || (shown.page !== "list" && next.name === shown.name && (next.page !== "image" || (shown.page === "image" && next.reference === shown.reference))));
      shown = next;
      if (!samePage) {
        window.scrollTo(0, 0);
        document.getElementById("main")?.focus();
      }
    };
    window.addEventListener("hashchange", onHash);
    const off = onAuthChange(() => setAuthVersion((v) => v + 1));
    return () => {
      window.removeEventListener("hashchange", onHash);
      off();
    };
  }, []);
  loginPrompt.show = (e) => setNeedLogin(e);
  const [authMode, setAuthMode] = useState<string | null>(null);
  useEffect(() => {
    info().then(
      (i) => setAuthMode(i.auth),
      () => setAuthMode(null),
    );
  }, []);

  const user = loggedInAs();
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/">
          Strata registry
        </a>
        <nav aria-label="Account">
          {user ? (
            <>
              <span class="muted">{user}</span>{" "}
              <button
                type="button"
                onClick={() => {
                  logout();
                  setGeneration((g) => g + 1);
                }}
              >
                Log out
              </button>
            </>
          ) : authMode && !needLogin ? (
            <button type="button" onClick={() => setNeedLogin(new LoginRequired(false))}>
              Log in
            </button>
          ) : null}
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {needLogin ? (
          <Login
            failed={needLogin.failed}
            onDone={() => {
              setNeedLogin(undefined);
              setGeneration((g) => g + 1);
            }}
          />
        ) : route.page === "list" ? (
          <RepositoryList key={`l${generation}`} q={route.q} sort={route.sort} />
        ) : route.page === "repo" ? (
          <RepositoryPage key={`r${generation}${route.name}`} name={route.name} />
        ) : (
          <ImagePage key={`i${generation}${route.name}${route.reference}`} name={route.name} reference={route.reference} />
        )}
      </main>
      <Announcer />
    </>
  );
}

render(<App />, document.getElementById("app")!);
