/**
 * Auth peers for tests: an htpasswd file (bcrypt, made with the system's crypt(3) through
 * python3) for distribution's basic auth, and a token server implementing the Docker token
 * flow whose RS256 JWTs (x5c = a self-signed certificate made with openssl) distribution's
 * `auth: token` verifies.
 */
import { execFileSync } from "node:child_process";
import { createSign, randomBytes, X509Certificate } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { join } from "node:path";

export async function writeHtpasswd(path: string, user: string, password: string): Promise<void> {
  const hash = execFileSync(
    "python3",
    ["-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1<<5)))", password],
    {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    },
  ).trim();
  if (!hash.startsWith("$2")) throw new Error("system crypt(3) has no bcrypt");
  await writeFile(path, `${user}:${hash}\n`);
}

export interface TokenRequest {
  scope: string | null;
  service: string | null;
  userAgent: string;
  authorization: string | undefined;
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certPath: string;
  requests: TokenRequest[];
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/**
 * Starts a token server. When `credentials` is set, a request must carry them as Basic auth or
 * it gets a 401; otherwise anyone gets a token for the actions asked for.
 */
export async function startTokenServer(dir: string, credentials?: { username: string; password: string }): Promise<TokenServer> {
  const keyPath = join(dir, "token.key");
  const certPath = join(dir, "token.crt");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-subj", "/CN=strata-test-token", "-days", "2"],
    {
      stdio: "ignore",
    },
  );
  const key = await readFile(keyPath, "utf8");
  const certDer = new X509Certificate(await readFile(certPath)).raw.toString("base64");
  const service = "strata-test-registry";
  const issuer = "strata-test-issuer";
  const requests: TokenRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const scope = url.searchParams.get("scope");
    requests.push({ scope, service: url.searchParams.get("service"), userAgent: req.headers["user-agent"] ?? "", authorization: req.headers.authorization });
    if (credentials) {
      const want = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
      if (req.headers.authorization !== want) {
        res.writeHead(401, { "Content-Type": "application/json" });
        res.end('{"details":"bad credentials"}');
        return;
      }
    }
    const access = [];
    for (const s of url.searchParams.getAll("scope")) {
      const [type, ...rest] = s.split(":");
      const actions = rest.pop() ?? "";
      access.push({ type, name: rest.join(":"), actions: actions.split(",") });
    }
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [certDer] };
    const claims = {
      iss: issuer,
      sub: credentials?.username ?? "",
      aud: service,
      exp: now + 600,
      nbf: now - 60,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign("RSA-SHA256").update(signingInput).sign(key);
    const token = `${signingInput}.${b64url(sig)}`;
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 600, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    stop: () => new Promise((r) => server.close(() => r())),
  };
}
