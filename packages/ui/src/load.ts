/** Loading state for a view: runs `fn` when `deps` change; a LoginRequired goes to the login form. */
import { useEffect, useState } from "preact/hooks";
import { LoginRequired } from "./api.js";
import { loginPrompt } from "./routes.js";

export interface Loaded<T> {
  data?: T;
  error?: unknown;
  loading: boolean;
  reload(): void;
}

export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => {
        if (!live) return;
        if (error instanceof LoginRequired) loginPrompt.show(error);
        setState({ error, loading: false });
      },
    );
    return () => {
      live = false;
    };
    // callers list in deps what fn depends on
  }, [...deps, n]);
  return { ...state, reload: () => setN((x) => x + 1) };
}

/** Reports a failure of an action (not a load): LoginRequired opens the login form. */
export function handleActionError(error: unknown): string {
  if (error instanceof LoginRequired) {
    loginPrompt.show(error);
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}
