// The console in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
// sign-in, navigation by keyboard, pages by role, CSRF, and screenshots of the main pages for
// docs/screenshots/. Run by scripts/test: `MUSTER_BIN=target/debug/muster node --test tests/browser/`.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { chromium } from "playwright-core";
import { createRequire } from "node:module";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.MUSTER_BIN ?? join(root, "target", "debug", "muster");
const shots = join(root, "docs", "screenshots");
const PASSWORD = "a long enough passphrase";

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
    env: { PATH: process.env.PATH, MUSTER_DATA_DIR: dir, MUSTER_PUBLIC_URL: base },
    input,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `muster ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "muster-browser-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  muster(["admin", "create", "--username", "admin"], `${PASSWORD}\n`);
  muster(["admin", "create", "--username", "auditor", "--role", "audit-log-viewer"], `${PASSWORD}\n`);
  muster(["provider", "add", "--name", "Okta", "--json"]);
  muster(["org", "create", "--name", "Engineering"]);
  server = spawn(bin, ["serve"], {
    env: { PATH: process.env.PATH, MUSTER_DATA_DIR: dir, MUSTER_PUBLIC_URL: base, MUSTER_LISTEN_ADDR: `127.0.0.1:${port}` },
    stdio: "ignore",
  });
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
  mkdirSync(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function nav(page, name) {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });
}

async function signIn(page, username) {
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/login$/);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/console`);
}

test("an administrator signs in, walks the console and signs out with the keyboard", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${base}/console/login`);
  await page.screenshot({ path: join(shots, "console-sign-in.png") });
  // A wrong password: the error is on the form, the username kept.
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "The username or password is not right." }).waitFor();
  assert.equal(await page.getByLabel("Username").inputValue(), "admin");

  await signIn(page, "admin");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "muster_session");
  assert.ok(session?.httpOnly, "the session cookie is HttpOnly");
  assert.equal(session.sameSite, "Strict");
  await page.screenshot({ path: join(shots, "console-overview.png") });

  await nav(page, "Organizations").click();
  await page.getByRole("cell", { name: "Engineering", exact: true }).waitFor();
  // Step 1 of the guide: add an organization, then a child from the organization's row.
  await page.getByLabel("Name", { exact: true }).fill("Sales");
  await page.getByRole("button", { name: "Add organization" }).click();
  await page.getByRole("cell", { name: "Sales", exact: true }).waitFor();
  const sales = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "Sales", exact: true }) });
  await sales.getByLabel("Add child organization").fill("Sales EMEA");
  await sales.getByRole("button", { name: "Add child" }).click();
  await page.getByRole("cell", { name: "Sales EMEA", exact: true }).waitFor();
  // A duplicate is refused, with the reason on the page.
  await page.getByLabel("Name", { exact: true }).fill("sales");
  await page.getByRole("button", { name: "Add organization" }).click();
  await page.getByRole("alert").filter({ hasText: "already has an organization named" }).waitFor();
  await page.screenshot({ path: join(shots, "console-organizations.png"), fullPage: true });
  await nav(page, "Identity Management").click();
  await page.getByRole("cell", { name: "Okta" }).waitFor();
  await page.screenshot({ path: join(shots, "console-providers.png") });
  // Steps 2-3: add a provider; the dialog shows the base URL and the token, once.
  await page.getByLabel("Display name").fill("Entra ID");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("dialog", { name: "Add SCIM Provisioning" }).waitFor();
  await page.getByText("shows it only once").waitFor();
  const baseUrl = await page.getByLabel("SCIM base URL").inputValue();
  const token = await page.getByLabel("Token").inputValue();
  assert.match(token, /^mst_[0-9a-f]{64}$/);
  assert.ok(baseUrl.startsWith(`${base}/scim/v2/`), baseUrl);
  assert.equal(await page.getByRole("button", { name: "Copy token" }).count(), 1);
  await page.screenshot({ path: join(shots, "console-add-provider.png") });
  // The provider pushes a group and a user with that token, as Okta or Entra ID would.
  const scim = (method, path, body) =>
    fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/scim+json" },
      body: body && JSON.stringify(body),
    });
  const user = await (await scim("POST", "/Users", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: "ana@example.com" })).json();
  const group = await scim("POST", "/Groups", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], displayName: "Engineering", members: [{ value: user.id }] });
  assert.equal(group.status, 201);
  await page.getByRole("link", { name: "Done" }).click();
  await page.getByRole("heading", { name: "Entra ID" }).waitFor();
  assert.equal(await page.getByText(token).count(), 0, "the token is not shown again");
  await page.getByRole("cell", { name: "Engineering", exact: true }).waitFor();
  await page.getByText("1 SCIM group is not mapped: Engineering").first().waitFor();
  // Steps 6-7: organization mapping by SCIM groups with priorities, then role mapping.
  const platform = await (await scim("POST", "/Groups", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], displayName: "Platform", members: [] })).json();
  await page.reload();
  await page.getByLabel("SCIM groups (custom SCIM mapping)").check();
  await page.getByRole("button", { name: "Save", exact: true }).click();
  const addMapping = () => page.locator("form", { has: page.getByText("Add Mapping: select one or more SCIM groups") });
  await addMapping().getByRole("checkbox", { name: "Engineering" }).check();
  await addMapping().getByLabel("Select an organization").selectOption({ label: "Default Organization › Engineering" });
  await addMapping().getByRole("button", { name: "Save mapping" }).click();
  await addMapping().getByRole("checkbox", { name: "Platform" }).check();
  await addMapping().getByLabel("Select an organization").selectOption({ label: "Default Organization › Sales › Sales EMEA" });
  await addMapping().getByRole("button", { name: "Save mapping" }).click();
  await page.getByText("All SCIM groups are mapped").first().waitFor();
  await page.getByRole("button", { name: "Move up Platform" }).click();
  const priorities = page.locator("table", { has: page.getByRole("columnheader", { name: "Priority" }) });
  assert.match(await priorities.locator("tbody tr").first().innerText(), /Platform/);
  const addRole = () => page.locator("form", { has: page.getByRole("heading", { name: "Add Role Mapping" }) });
  await addRole().getByLabel("SCIM group").selectOption({ label: "Engineering" });
  await addRole().getByRole("checkbox", { name: "Desktop User" }).check();
  await addRole().getByRole("checkbox", { name: "PROe User" }).check();
  await addRole().getByRole("button", { name: "Add" }).click();
  await addRole().getByLabel("SCIM group").selectOption({ label: "Platform" });
  await addRole().getByRole("checkbox", { name: "Org Admin", exact: true }).check();
  await addRole().getByRole("button", { name: "Add" }).click();
  await page.getByText("All SCIM groups are mapped").nth(1).waitFor();
  // A user the provider adds to both groups lands by priority, with the union of the roles.
  const ben = await (await scim("POST", "/Users", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: "ben@example.com" })).json();
  for (const g of [(await group.json()).id, platform.id]) {
    const r = await scim("PATCH", `/Groups/${g}`, { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "add", path: "members", value: [{ value: ben.id }] }] });
    assert.ok(r.ok, `${r.status}`);
  }
  // Ana arrived before the mappings: the preview lists her, the re-apply moves her.
  await page.reload();
  await page.getByRole("link", { name: "Preview a re-apply" }).click();
  await page.getByRole("cell", { name: "ana@example.com" }).waitFor();
  await page.screenshot({ path: join(shots, "console-provider-details.png"), fullPage: true });
  await page.getByRole("button", { name: "Re-apply mappings" }).click();
  await page.getByText("0 of 2 users would change").waitFor();
  await page.goto(`${base}/console/users/${ben.id}`);
  await page.getByRole("row", { name: /Organization Sales EMEA/ }).waitFor();
  const roles = await page.getByRole("row", { name: /^Roles/ }).innerText();
  for (const r of ["Desktop User (role mapping)", "PROe User (role mapping)", "Org Admin (role mapping)"]) {
    assert.ok(roles.includes(r), roles);
  }
  // Why: the mapping's own account, the SCIM groups the provider put him in, and what it sent,
  // folded until asked for.
  const why = await page.getByRole("row", { name: /^Mapping/ }).innerText();
  assert.match(why, /Organization: Sales EMEA: SCIM group 'Platform' \(priority 1\)/);
  assert.match(why, /Roles: Desktop User, Org Admin, PROe User/);
  const groupsRow = await page.getByRole("row", { name: /SCIM groups/ }).innerText();
  assert.ok(groupsRow.includes("Engineering, Platform"), groupsRow);
  const sent = page.getByText('"userName": "ben@example.com"');
  assert.equal(await sent.isVisible(), false, "folded");
  await page.getByText("SCIM attributes, as the provider sent them").click();
  await sent.waitFor();
  // His group's page, from that row: its members, and what the two mappings do with them.
  await page.getByRole("row", { name: /SCIM groups/ }).getByRole("link", { name: "Engineering" }).click();
  await page.getByRole("heading", { name: "Engineering", level: 1 }).waitFor();
  const placement = await page.getByRole("row", { name: /Placement/ }).innerText();
  assert.match(placement, /Organization mapping: Engineering, priority 2 of 2: its members go there unless a group of a higher priority also has them/);
  const groupRoles = await page.getByRole("row", { name: /^Roles/ }).innerText();
  assert.match(groupRoles, /Role mapping: Desktop User, PROe User/);
  for (const who of ["ana@example.com", "ben@example.com"]) {
    await page.getByRole("link", { name: who }).waitFor();
  }
  await page.screenshot({ path: join(shots, "console-group.png"), fullPage: true });
  await page.goto(`${base}/console/users/${user.id}`);
  await page.getByRole("row", { name: /Organization Engineering/ }).waitFor();
  await page.goBack();
  // The provider turns Ana off: the console shows her blocked, with her deactivation due.
  const off = await scim("PATCH", `/Users/${user.id}`, {
    schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    Operations: [{ op: "replace", path: "active", value: false }],
  });
  assert.equal(off.status, 200);
  await nav(page, "Users").click();
  await page.getByLabel("Search").fill("ana");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("link", { name: "ana@example.com" }).click();
  await page.getByRole("row", { name: /Status blocked/ }).waitFor();
  await page.getByRole("row", { name: /Pending deactivation due/ }).waitFor();
  await page.screenshot({ path: join(shots, "console-user.png"), fullPage: true });
  await nav(page, "Sync Log").click();
  await page.getByRole("cell", { name: "provider.created" }).first().waitFor();
  await page.getByLabel("Action").fill("user.");
  await page.getByRole("button", { name: "Filter" }).click();
  // The results are replaced in place, and the address follows.
  await page.waitForFunction(() => new URLSearchParams(location.search).get("action") === "user.");
  await page.getByRole("cell", { name: "user.blocked" }).waitFor();
  assert.equal(await page.getByRole("cell", { name: "provider.created" }).count(), 0);
  await page.screenshot({ path: join(shots, "console-sync-log.png") });
  // Export what the filters select.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Export these entries as CSV" }).click(),
  ]);
  const csv = await (await import("node:fs/promises")).readFile(await download.path(), "utf8");
  assert.match(csv.split("\r\n")[0], /^id,time,provider_id/);
  assert.ok(csv.includes("user.blocked") && !csv.includes("provider.created"), csv);

  // An application credential: its token shown once, then read the directory with it.
  await nav(page, "Applications").click();
  await page.getByLabel("Name").fill("HR portal");
  await page.getByRole("button", { name: "Add application" }).click();
  await page.getByRole("dialog", { name: "New application credential" }).waitFor();
  const appToken = await page.getByLabel("Token", { exact: true }).inputValue();
  assert.match(appToken, /^mapp_[0-9a-f]{64}$/);
  const read = await fetch(`${base}/api/v1/users`, { headers: { authorization: `Bearer ${appToken}` } });
  assert.equal(read.status, 200);
  const write = await fetch(`${base}/api/v1/orgs`, {
    method: "POST", headers: { authorization: `Bearer ${appToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "Nope" }),
  });
  assert.equal(write.status, 403);
  await page.getByRole("link", { name: "Done" }).click();
  await page.getByRole("cell", { name: "HR portal", exact: true }).waitFor();
  await page.screenshot({ path: join(shots, "console-apps.png") });

  // Narrow screens keep everything reachable.
  await page.setViewportSize({ width: 420, height: 800 });
  await nav(page, "Overview").waitFor();

  // Sign out with the keyboard alone.
  await page.getByRole("button", { name: "Sign out" }).focus();
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/console/login`);
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/login$/, "the session is over");
  await context.close();
});

test("an Audit Log Viewer sees the sync log and nothing else", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, "auditor");
  assert.equal(await nav(page, "Identity Management").count(), 0);
  assert.equal(await nav(page, "Sync Log").count(), 1);
  const resp = await page.goto(`${base}/console/providers`);
  assert.equal(resp.status(), 403);
  await page.getByText("does not give access").waitFor();
  await context.close();
});

test("a form post without the session's CSRF token changes nothing", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, "admin");
  // The browser's cookie, a forged form without the token.
  const forged = await context.request.post(`${base}/console/logout`, { form: { csrf: "forged" } });
  assert.equal(forged.status(), 403);
  const still = await page.goto(`${base}/console`);
  assert.equal(still.status(), 200, "still signed in");
  const headers = still.headers();
  assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
  assert.equal(headers["x-frame-options"], "DENY");
  await context.close();
});

test("the sync log filters in place, and shows times in the reader's time zone with UTC on hover", async () => {
  const context = await browser.newContext({ timezoneId: "Asia/Tokyo" });
  const page = await context.newPage();
  await signIn(page, "admin");
  await nav(page, "Sync Log").click();
  const first = page.locator("#results time").first();
  const utc = await first.getAttribute("datetime");
  assert.equal(await first.getAttribute("title"), `${utc} (UTC)`);
  const shown = await first.textContent();
  assert.notEqual(shown, utc, "shown in the browser's time zone");
  // The same instant written by the browser in Tokyo time (the context's zone), explicitly.
  const tokyo = await page.evaluate(
    (u) => new Date(u).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium", timeZone: "Asia/Tokyo" }),
    utc,
  );
  assert.equal(shown, tokyo, "shown in Tokyo time");
  await page.evaluate(() => { window.stayed = true; });
  await page.getByLabel("Action").fill("provider.created");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForFunction(() => new URLSearchParams(location.search).get("action") === "provider.created");
  await page.locator("#results").getByText("provider.created").first().waitFor();
  assert.equal(await page.locator("#results tbody tr").filter({ hasNotText: "provider.created" }).count(), 0);
  assert.equal(await page.evaluate(() => window.stayed), true, "the page was not reloaded");
  await context.close();
});

test("a held mass deactivation: the banner on every page, the held users, restore", async () => {
  const created = JSON.parse(muster(["provider", "add", "--name", "Contractors", "--json"]));
  const pid = created.provider.id;
  muster(["provider", "guard", pid, "--min-users", "2"]);
  const scim = created.provider.scimBaseUrl;
  const headers = { authorization: `Bearer ${created.token.secret}`, "content-type": "application/scim+json" };
  const ids = [];
  for (let i = 0; i < 10; i++) {
    const r = await fetch(`${scim}/Users`, { method: "POST", headers, body: JSON.stringify({ userName: `contractor${i}@example.com` }) });
    assert.equal(r.status, 201);
    ids.push((await r.json()).id);
  }
  for (const id of ids.slice(0, 3)) {
    const r = await fetch(`${scim}/Users/${id}`, {
      method: "PATCH",
      headers,
      body: JSON.stringify({ schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "replace", path: "active", value: false }] }),
    });
    assert.equal(r.status, 200);
  }
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await signIn(page, "admin");
  const banner = page.getByRole("alert").filter({ hasText: "Deactivations from Contractors are held" });
  await banner.waitFor();
  await page.screenshot({ path: join(shots, "console-guard-banner.png") });
  let serious = await axeCheck(page, "overview with the guard's banner");
  await banner.getByRole("link", { name: "Review the held users" }).click();
  await page.getByRole("heading", { name: "Deactivations pending (3)" }).waitFor();
  await page.screenshot({ path: join(shots, "console-guard.png"), fullPage: true });
  serious += await axeCheck(page, "mass-deactivation guard, holding");
  await page.getByRole("button", { name: "Restore the users" }).click();
  await page.getByText("Restored 3 users").waitFor();
  assert.equal(await page.getByText("Deactivations from Contractors are held").count(), 0, "the banner is gone");
  await nav(page, "Notifications").click();
  await page.getByLabel("Email address").fill("admin@example.com");
  await page.getByLabel("Only on errors", { exact: false }).check();
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Saved.").waitFor();
  serious += await axeCheck(page, "notifications");
  assert.equal(serious, 0, "serious or critical accessibility violations (listed above)");
  await context.close();
});

// axe-core, the accessibility engine, checks every console page: no serious or critical
// violation. The script is injected from node_modules (the console's CSP would refuse it, so
// this context bypasses CSP; nothing else in it depends on that).
const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

async function axeCheck(page, name) {
  await page.addScriptTag({ path: axePath });
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const minor = results.violations.length - bad.length;
  console.log(`axe-core ${name}: ${bad.length} serious or critical, ${minor} moderate or minor`);
  for (const v of results.violations) {
    console.log(`  ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  }
  return bad.length;
}

test("every console page passes axe-core with no serious or critical violation", async () => {
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  let serious = 0;
  await page.goto(`${base}/console/login`);
  serious += await axeCheck(page, "sign-in");
  await signIn(page, "admin");
  serious += await axeCheck(page, "overview");
  for (const [name, path] of [
    ["organizations", "/console/orgs"],
    ["users", "/console/users"],
    ["roles", "/console/roles"],
    ["identity management", "/console/providers"],
    ["sync log", "/console/sync-log"],
    ["webhooks", "/console/webhooks"],
    ["applications", "/console/apps"],
    ["administrators", "/console/admins"],
    ["no such page", "/console/nowhere"],
  ]) {
    await page.goto(`${base}${path}`);
    serious += await axeCheck(page, name);
  }
  await page.goto(`${base}/console/users`);
  await page.locator("main table a").first().click();
  serious += await axeCheck(page, "a user");
  await page.goto(`${base}/console/webhooks`);
  await page.getByLabel("URL", { exact: true }).fill("https://hooks.example.com/axe");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByRole("link", { name: "Done" }).click();
  await page.locator("main table a").first().click();
  await page.getByRole("button", { name: "Send test event" }).click();
  await page.getByText("A test event is queued").waitFor();
  serious += await axeCheck(page, "a webhook endpoint, test event queued");
  await page.goto(`${base}/console/providers`);
  await page.locator("main table a").first().click();
  await page.getByRole("link", { name: "Preview a re-apply" }).click();
  serious += await axeCheck(page, "provider details with preview");
  assert.equal(serious, 0, "serious or critical accessibility violations (listed above)");
  await context.close();
});
