// Console sign-in through a real OpenID Connect provider (the npm `oidc-provider`, started here
// on loopback with a test client and users carrying group claims), in a real headless Chromium:
// each role's view, a refused user, sign-out at Muster and at the provider, a session ended by
// another administrator, a tampered state and a replayed code refused, break-glass password
// sign-in, and a key rotation at the provider picked up. Run by scripts/test with the other
// browser tests.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import Provider from "oidc-provider";
import { generateKeyPair, exportJWK } from "jose";

const bin = process.env.MUSTER_BIN ?? "target/debug/muster";
const shots = join(new URL("../..", import.meta.url).pathname, "docs", "screenshots");
const PASSWORD = "correct horse battery staple";
const SECRET = "muster-test-client-secret";
// Accounts at the provider and their groups.
const ACCOUNTS = {
  ada: ["muster-admins", "staff"],
  ian: ["muster-identity"],
  aud: ["muster-audit"],
  zed: ["sales"],
};

let idp;
let idpServer;
// While true, ID tokens live one second and the token endpoint answers two seconds late, so the
// token Muster receives has expired.
let expiring = false;
let idpPort;
let server;
let browser;
let base;
let dir;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

function muster(args, input) {
  const r = spawnSync(bin, args, {
    env: { PATH: process.env.PATH, MUSTER_DATA_DIR: dir, MUSTER_PUBLIC_URL: base, MUSTER_CONFIG: join(dir, "muster.toml") },
    input,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `muster ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function signingKey(kid) {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" };
}

// The provider, listening on idpPort, signing with `key`.
async function startIdp(key) {
  const issuer = `http://127.0.0.1:${idpPort}`;
  idp = new Provider(issuer, {
    clients: [
      {
        client_id: "muster",
        client_secret: SECRET,
        redirect_uris: [`${base}/console/oidc/callback`],
        post_logout_redirect_uris: [`${base}/console/login`],
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ],
    async findAccount(ctx, id) {
      if (!ACCOUNTS[id]) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.com`, preferred_username: id, groups: ACCOUNTS[id] };
        },
      };
    },
    claims: { openid: ["sub"], email: ["email"], profile: ["preferred_username"], groups: ["groups"] },
    scopes: ["openid", "email", "profile", "groups"],
    // The claims in the ID token itself, where Muster reads them.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    jwks: { keys: [key] },
    ttl: { IdToken: () => (expiring ? 1 : 3600) },
    // No consent screen: the test client is trusted.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope("openid email profile groups");
      await grant.save();
      return grant;
    },
  });
  idp.use(async (ctx, next) => {
    await next();
    if (expiring && ctx.path === "/token") await new Promise((r) => setTimeout(r, 2100));
  });
  await new Promise((resolve) => {
    idpServer = idp.listen(idpPort, "127.0.0.1", resolve);
  });
}

async function stopIdp() {
  await new Promise((resolve) => idpServer.close(resolve));
  idpServer.closeAllConnections?.();
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "muster-sso-"));
  const port = await freePort();
  idpPort = await freePort();
  base = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, "client-secret"), SECRET);
  writeFileSync(
    join(dir, "muster.toml"),
    [
      `oidc_issuer = "http://127.0.0.1:${idpPort}"`,
      `oidc_client_id = "muster"`,
      `oidc_client_secret_file = "${join(dir, "client-secret")}"`,
      `oidc_label = "Test IdP"`,
      `password_sign_in = "break-glass"`,
      `break_glass_accounts = ["root"]`,
      `[oidc_roles]`,
      `"muster-admins" = "customer-cloud-admin"`,
      `"muster-identity" = "identity-management-admin"`,
      `"muster-audit" = "audit-log-viewer"`,
      "",
    ].join("\n"),
  );
  muster(["admin", "create", "--username", "root"], `${PASSWORD}\n`);
  muster(["admin", "create", "--username", "local"], `${PASSWORD}\n`);
  await startIdp(await signingKey("first"));
  server = spawn(bin, ["serve"], {
    env: {
      PATH: process.env.PATH,
      MUSTER_DATA_DIR: dir,
      MUSTER_PUBLIC_URL: base,
      MUSTER_LISTEN_ADDR: `127.0.0.1:${port}`,
      MUSTER_CONFIG: join(dir, "muster.toml"),
    },
    stdio: "ignore",
  });
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (idpServer) await stopIdp();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Signs in at the provider as `login` from Muster's sign-in page; returns the page.
async function ssoSignIn(context, login) {
  const page = await context.newPage();
  await page.goto(`${base}/console/login`);
  await page.getByRole("link", { name: "Sign in with Test IdP" }).click();
  await page.waitForURL(new RegExp(`^http://127.0.0.1:${idpPort}/`));
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.waitForURL(new RegExp(`^${base}/console`));
  return page;
}

function navLinks(page) {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link").allTextContents();
}

const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
async function axeSerious(page, name) {
  await page.addScriptTag({ path: axePath });
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  console.log(`axe-core ${name}: ${bad.length} serious or critical, ${results.violations.length - bad.length} moderate or minor`);
  return bad.length;
}

test("each role's groups give its view; a user with no mapped group is refused with the reason", async () => {
  const context = await browser.newContext({ bypassCSP: true });
  const ada = await ssoSignIn(context, "ada");
  assert.equal(ada.url(), `${base}/console`);
  assert.ok((await navLinks(ada)).includes("Administrators"), "a Customer Cloud Admin");
  assert.match(await ada.locator("header").textContent(), /ada · Customer Cloud Admin/);
  await context.close();

  const c2 = await browser.newContext({ bypassCSP: true });
  const ian = await ssoSignIn(c2, "ian");
  const links = await navLinks(ian);
  assert.ok(links.includes("Identity Management") && !links.includes("Users"), links.join(", "));
  await c2.close();

  const c3 = await browser.newContext({ bypassCSP: true });
  const aud = await ssoSignIn(c3, "aud");
  assert.deepEqual(await navLinks(aud), ["Overview", "Sync Log", "Notifications"]);
  await c3.close();

  const c4 = await browser.newContext({ bypassCSP: true });
  const page = await c4.newPage();
  await page.goto(`${base}/console/login`);
  await page.screenshot({ path: join(shots, "console-sign-in-sso.png") });
  assert.equal(await axeSerious(page, "sign-in with the identity provider's button"), 0);
  await page.getByRole("link", { name: "Sign in with Test IdP" }).click();
  await page.locator('input[name="login"]').fill("zed");
  await page.locator('input[name="password"]').fill("any");
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(`${base}/console/oidc/callback`)),
    page.getByRole("button", { name: "Sign-in" }).click(),
  ]);
  assert.equal(resp.status(), 403);
  assert.match(await page.locator("main").textContent(), /None of your groups \(sales\) gives a Muster role/);
  assert.equal((await c4.cookies()).filter((c) => c.name === "muster_session").length, 0, "no session");
  await c4.close();

  // All of it is in the sync log, with the names.
  const log = JSON.parse(muster(["sync-log", "list", "--action", "admin.", "--limit", "100", "--json"]));
  const actions = log.map((e) => `${e.action} ${e.subject?.name ?? e.subjectName ?? ""}`);
  for (const want of ["admin.created ada", "admin.signed_in ada", "admin.signed_in ian", "admin.sign_in_refused zed"]) {
    assert.ok(actions.some((a) => a.startsWith(want)), `${want} in ${actions.join("; ")}`);
  }
});

test("a tampered state and a replayed code are refused", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/console/login`);
  await page.getByRole("link", { name: "Sign in with Test IdP" }).click();
  await page.locator('input[name="login"]').fill("ada");
  await page.locator('input[name="password"]').fill("any");
  // Note where the provider sends the browser back.
  let callback;
  page.on("request", (req) => {
    if (!callback && req.url().startsWith(`${base}/console/oidc/callback`)) callback = req.url();
  });
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.waitForURL(`${base}/console`);
  assert.ok(callback, "the provider sent the browser back");
  const url = new URL(callback);
  const state = url.searchParams.get("state");
  // Bind a state to this browser again, as if the sign-in had just started, and send it back:
  // tampered, it names no sign-in under way; untouched, it was taken already (a replay).
  const bind = (value) =>
    context.addCookies([{ name: "muster_oidc", value, url: `${base}/console/oidc/callback` }]);
  const tampered = new URL(callback);
  tampered.searchParams.set("state", state + "x");
  await bind(state + "x");
  let r = await page.goto(tampered.toString());
  assert.equal(r.status(), 400);
  assert.match(await page.locator("main").textContent(), /This sign-in is not valid/);
  await bind(state);
  r = await page.goto(callback);
  assert.equal(r.status(), 400, "a replayed callback finds no sign-in under way");
  // A fresh sign-in under way (its own state, bound to this browser), with the old code: the
  // state is good, and the provider refuses the code it already gave out.
  await context.clearCookies();
  const started = await context.request.get(`${base}/console/oidc/start`, { maxRedirects: 0 });
  assert.equal(started.status(), 303, "Muster sends the browser to the provider");
  const authorize = started.headers()["location"];
  const fresh = new URL(authorize).searchParams;
  assert.equal(fresh.get("code_challenge_method"), "S256", "PKCE");
  assert.ok(fresh.get("nonce"), "a nonce");
  const replay = new URL(`${base}/console/oidc/callback`);
  replay.searchParams.set("code", url.searchParams.get("code"));
  replay.searchParams.set("state", fresh.get("state"));
  r = await page.goto(replay.toString());
  assert.equal(r.status(), 401);
  assert.match(await page.locator("main").textContent(), /did not accept this sign-in/);
  await context.close();
});

test("sign-out ends the session at Muster and at the provider; another administrator can end a session", async () => {
  const c1 = await browser.newContext();
  const ada = await ssoSignIn(c1, "ada");
  const c2 = await browser.newContext();
  const ian = await ssoSignIn(c2, "ian");
  // Ada ends Ian's session.
  await ada.goto(`${base}/console/admins`);
  await ada.getByRole("button", { name: /^End session of ian/ }).first().click();
  await ian.goto(`${base}/console/providers`);
  assert.match(ian.url(), /\/console\/login/, "Ian's session is over");
  // Ada signs out: Muster's session ends, and the browser goes to the provider's end-session page.
  await ada.getByRole("button", { name: "Sign out" }).click();
  await ada.waitForURL(new RegExp(`^http://127.0.0.1:${idpPort}/`));
  await ada.getByRole("button", { name: "Yes, sign me out" }).click();
  await ada.waitForURL(`${base}/console/login`);
  await ada.goto(`${base}/console`);
  assert.match(ada.url(), /\/console\/login/);
  const log = JSON.parse(muster(["sync-log", "list", "--action", "admin.signed_out", "--json"]));
  assert.ok(log.some((e) => JSON.stringify(e).includes("ada")), "signed out, in the sync log");
  await c1.close();
  await c2.close();
});

test("password sign-in is for break-glass accounts only", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/console/login`);
  await page.getByLabel("Username").fill("local");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  assert.match(await page.locator("main").textContent(), /only for break-glass accounts/);
  await page.getByLabel("Username").fill("root");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL(`${base}/console`);
  await context.close();
});

test("a key rotation at the provider is picked up", async () => {
  await stopIdp();
  await startIdp(await signingKey("second"));
  const context = await browser.newContext();
  const page = await ssoSignIn(context, "aud");
  assert.equal(page.url(), `${base}/console`, "the token signed with the new key verified");
  await context.close();
});

test("an expired ID token is refused", async () => {
  expiring = true;
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/console/login`);
    await page.getByRole("link", { name: "Sign in with Test IdP" }).click();
    await page.locator('input[name="login"]').fill("ada");
    await page.locator('input[name="password"]').fill("any");
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${base}/console/oidc/callback`)),
      page.getByRole("button", { name: "Sign-in" }).click(),
    ]);
    assert.equal(resp.status(), 401);
    assert.match(await page.locator("main").textContent(), /The ID token was refused: .*expired/);
    assert.equal((await context.cookies()).filter((c) => c.name === "muster_session").length, 0);
    await context.close();
  } finally {
    expiring = false;
  }
});
