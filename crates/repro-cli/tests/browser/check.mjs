// Opens the repro web UI of a real store in Debian's headless Chromium (driven by
// playwright-core; no browser download), checks each page's content and saves a full-page
// screenshot of each.
//
//   node check.mjs <base-url> <out-dir> <run-id> <run-id-2>
//   node check.mjs <base-url> <out-dir> <run-id> <run-id-2> <token>   (the store has tokens:
//       sign in through the login page, browse, sign out)
//
// The browser: $CHROMIUM, else /usr/bin/chromium. Exits non-zero on the first failed check.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, outDir, runA, runB, token] = process.argv.slice(2);
if (!base || !outDir || !runA || !runB) {
  console.error("usage: node check.mjs <base-url> <out-dir> <run-id> <run-id-2>");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const dialogs = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  const visit = async (path, shot) => {
    const resp = await page.goto(base + path, { waitUntil: "load" });
    const status = resp ? resp.status() : 0;
    await page.screenshot({ path: join(outDir, shot), fullPage: true });
    return { status, html: await page.content(), text: await page.innerText("body") };
  };

  await (token ? signIn(page, visit) : browse(page, visit, dialogs));
} catch (e) {
  failed = true;
  console.error(e && e.stack ? e.stack : String(e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

// Every page of a store without tokens.
async function browse(page, visit, dialogs) {
  // The runs table.
  let p = await visit("/ui", "runs.png");
  check(p.status === 200, "/ui answers 200");
  check(p.html.includes(runA) && p.html.includes(runB), "the runs table lists both runs");
  check((await page.locator(`a[href="/ui/runs/${runA}"]`).count()) > 0, "the run id links to its page");
  check(p.text.includes("param model.max_depth"), "a param column is shown");
  check(/metric \w+/.test(p.text), "a metric column is shown");
  check(p.text.includes("<script>alert(1)</script>"), "the hostile run name is shown as text");
  check(!p.html.includes("<script>alert(1)</script>"), "the hostile run name is escaped in the HTML");

  // Sorting and filtering.
  p = await visit("/ui?order=" + encodeURIComponent("params.`model.max_depth` DESC"), "runs-sorted.png");
  check(p.status === 200, "sorting by a param answers 200");
  const ids = await page.locator("#runs tbody tr td:first-child a").allInnerTexts();
  check(ids.length === 2, "both runs are listed when sorted");
  p = await visit("/ui?filter=" + encodeURIComponent(`attributes.run_id = '${runB}'`), "runs-filtered.png");
  check(p.status === 200 && p.html.includes(runB) && !p.html.includes(`/ui/runs/${runA}"`), "a filter narrows the table");
  p = await visit("/ui?filter=" + encodeURIComponent("metrics.rmse <<< 1"), "runs-bad-filter.png");
  check(p.status === 400, "a bad filter answers 400");
  check((await page.locator("#filter-error").count()) === 1, "a bad filter shows the error");

  // One run.
  p = await visit(`/ui/runs/${runA}`, "run.png");
  check(p.status === 200, "the run page answers 200");
  check((await page.locator("#run-id").innerText()) === runA, "the run page shows the run id");
  check(p.text.includes("model.pkl"), "the run page lists model.pkl");
  const modelRow = page.locator("#outputs-table tr", { hasText: "model.pkl" }).first();
  check(/blake3:[0-9a-f]{16,}/.test(await modelRow.innerText()), "model.pkl's digest is shown");
  check((await page.locator('tr[data-item="git_commit"]').count()) === 1, "the audit lists git_commit");
  check((await page.locator("svg.metric-chart").count()) > 0, "a metric chart is drawn as SVG");
  check(p.html.includes("<svg"), "the page holds an <svg");
  check(p.text.includes("train.py"), "the script is shown");
  check(p.text.includes("pricing@1"), "the model version pinning the run is shown");

  const missing = await visit("/ui/runs/00000000000000000000000000000000", "run-missing.png");
  check(missing.status === 404, "an unknown run is a 404 page");

  // The diff.
  p = await visit(`/ui/diff?a=${runA}&b=${runB}`, "diff.png");
  check(p.status === 200, "the diff page answers 200");
  check(p.text.includes("Likely causes"), "the diff page ranks likely causes");
  check(p.text.includes("model.max_depth"), "the diff names the changed param");

  // The registry.
  p = await visit("/ui/models", "models.png");
  check(p.status === 200, "the models page answers 200");
  check((await page.locator("#model-pricing").count()) === 1, "the model pricing is listed");
  check(p.text.includes("staging"), "its stage is shown");
  check(p.text.includes("lineage matches") && p.text.includes("chain ok"), "its verify status is shown");

  check(dialogs.length === 0, "no script ran (no dialogs)");
}

// The login page of a store with tokens: a wrong token is refused, the right one gives an
// HttpOnly, SameSite=Strict session cookie that is not the token, and signing out ends it.
async function signIn(page, visit) {
  await visit("/ui/models", "login.png");
  check(new URL(page.url()).pathname === "/ui/login", "an unsigned browser lands on the login page");
  check((await page.locator("input[name=token][type=password]").count()) === 1, "the login page asks for a token");
  await page.fill("input[name=token]", "repro_not_a_token");
  let [resp] = await Promise.all([page.waitForNavigation(), page.click("#login button")]);
  check(resp && resp.status() === 401, "a wrong token answers 401");
  check((await page.locator("#login-error").count()) === 1, "a wrong token is said so");
  check(!(await page.content()).includes("repro_not_a_token"), "what was typed is not echoed");
  await page.screenshot({ path: join(outDir, "login-refused.png"), fullPage: true });
  await page.fill("input[name=token]", token);
  [resp] = await Promise.all([page.waitForNavigation(), page.click("#login button")]);
  check(new URL(page.url()).pathname === "/ui/models", "signing in returns to the page asked for");
  check(resp && resp.status() === 200, "the page answers 200 once signed in");
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "repro_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly, SameSite=Strict");
  check(session && !cookies.some((c) => c.value.includes(token)), "no cookie holds the token");
  check(!(await page.content()).includes(token), "the page does not show the token");
  const p = await visit(`/ui/runs/${runA}`, "signed-in-run.png");
  check(p.status === 200 && p.text.includes("git_commit"), "a run page opens when signed in");
  await Promise.all([page.waitForNavigation(), page.click("#logout")]);
  check(new URL(page.url()).pathname === "/ui/login", "signing out returns to the login page");
  await visit("/ui", "signed-out.png");
  check(new URL(page.url()).pathname === "/ui/login", "after signing out the UI asks again");
}
