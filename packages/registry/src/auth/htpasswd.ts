/**
 * Users from an htpasswd file with bcrypt entries (`htpasswd -B`: `name:$2y$05$...`). The file is
 * re-read when its size, mtime or inode changes (checked at most once a second, when a login
 * needs it); a file that cannot be read keeps the last good content. Other hash schemes (MD5,
 * SHA1, crypt, plain) are refused: they are too weak to guard a registry.
 *
 * Successful checks are remembered for a few minutes (keyed by a hash of the credentials and
 * tied to the user's current entry), so clients that send Basic credentials with every request
 * do not pay a bcrypt comparison each time.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import bcrypt from "bcryptjs";
import type { Logger } from "pino";

const BCRYPT = /^\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}$/;
const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Compared against when the user does not exist, so unknown names cost as much time as wrong passwords. */
const DUMMY_HASH = "$2y$05$GXRyzhOR7GK3BdN9sNo4a.LbdtVSqeWYHUZYS/exwNLhQ2h1rT0Yu";

export interface HtpasswdEntries {
  readonly users: ReadonlyMap<string, string>;
}

/** Parses htpasswd text; lines that are not bcrypt entries are reported in `skipped`. */
export function parseHtpasswd(text: string): { users: Map<string, string>; skipped: number[] } {
  const users = new Map<string, string>();
  const skipped: number[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const l = line.trim();
    if (l === "" || l.startsWith("#")) return;
    const c = l.indexOf(":");
    const name = l.slice(0, c);
    const hash = l.slice(c + 1);
    if (c <= 0 || !BCRYPT.test(hash)) {
      skipped.push(i + 1);
      return;
    }
    users.set(name, hash);
  });
  return { users, skipped };
}

export class Htpasswd {
  private users = new Map<string, string>();
  private version = "";
  private lastCheck = 0;
  private checking: Promise<void> | undefined;
  private readonly verified = new Map<string, { hash: string; until: number }>();

  private constructor(
    readonly path: string,
    private readonly logger?: Logger,
  ) {}

  /** Loads the file; throws when it cannot be read at start-up. */
  static async open(path: string, logger?: Logger): Promise<Htpasswd> {
    const h = new Htpasswd(path, logger);
    await h.reload(true);
    return h;
  }

  /** Whether `user` exists (after a reload check). */
  async has(user: string): Promise<boolean> {
    await this.refresh();
    return this.users.has(user);
  }

  /** The user's current hash (to tie refresh tokens to a password), or undefined. */
  async entry(user: string): Promise<string | undefined> {
    await this.refresh();
    return this.users.get(user);
  }

  /** Checks a user name and password. */
  async verify(user: string, password: string): Promise<boolean> {
    await this.refresh();
    const hash = this.users.get(user);
    const key = createHash("sha256").update(user).update("\0").update(password).digest("base64");
    const hit = this.verified.get(key);
    const now = Date.now();
    if (hash !== undefined && hit && hit.hash === hash && hit.until > now) return true;
    // bcrypt looks at the first 72 bytes only, as htpasswd -B does when it writes the entry.
    const ok = (await bcrypt.compare(password, hash ?? DUMMY_HASH)) && hash !== undefined;
    if (ok) {
      if (this.verified.size >= 10_000) this.verified.clear();
      this.verified.set(key, { hash, until: now + 5 * 60_000 });
    }
    return ok;
  }

  private async refresh(): Promise<void> {
    if (Date.now() - this.lastCheck < 1000) return;
    this.checking ??= this.reload(false).finally(() => {
      this.checking = undefined;
    });
    await this.checking;
  }

  private async reload(initial: boolean): Promise<void> {
    this.lastCheck = Date.now();
    try {
      const st = await stat(this.path);
      const version = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (version === this.version) return;
      if (st.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
      const { users, skipped } = parseHtpasswd(await readFile(this.path, "utf8"));
      if (skipped.length) this.logger?.warn({ path: this.path, lines: skipped.slice(0, 20) }, "htpasswd: lines that are not bcrypt entries (htpasswd -B) are ignored");
      this.users = users;
      this.version = version;
      this.verified.clear();
      if (!initial) this.logger?.info({ path: this.path, users: users.size }, "htpasswd reloaded");
    } catch (e) {
      if (initial) throw new Error(`cannot read htpasswd file ${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
      this.logger?.warn({ path: this.path, err: (e as Error).message }, "htpasswd reload failed; keeping the previous users");
    }
  }
}
