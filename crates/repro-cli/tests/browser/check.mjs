import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, outDir, idsFile, token] = process.argv.slice(2);
if (!base || !outDir || !idsFile) {
  console.error("usage: node check.mjs <base-url> <out-dir> <ids.json> [token]");
  process.exit(2);
}
const ids = JSON.parse(readFileSync(idsFile, "utf8"));
const runA = ids.a;
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

// Nothing on a page is wider than the window: tables scroll inside their own box.
async function fitsTheWindow(page, what) {
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(over <= 1, `${what} fits the window (${over}px over)`);
}

// Printed on A4 (718 CSS pixels between Chromium's default margins), nothing reaches past
// the page's right edge and no box cuts its text (an ellipsis or a hidden overflow).
async function fitsAPrintedPage(page, what) {
  await page.emulateMedia({ media: "print" });
  await page.setViewportSize({ width: 718, height: 1000 });
  const cut = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const bad = [];
    for (const el of document.querySelectorAll("body *")) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.split(" ")[0] : "");
      if (r.right > width + 1) bad.push(`${name} ends at ${Math.round(r.right)}px`);
      const style = getComputedStyle(el);
      if (style.overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1) bad.push(`${name} hides ${el.scrollWidth - el.clientWidth}px`);
    }
    return bad;
  });
  await page.emulateMedia({ media: "screen" });
  await page.setViewportSize({ width: 1400, height: 900 });
  check(cut.length === 0, `${what} prints on A4 without cut-off content (${cut.slice(0, 6).join("; ")})`);
}

// Every page of a store without tokens.
async function browse(page, visit, dialogs) {
  await runsTable(page, visit);
  await runPages(page, visit);
  await comparePages(page, visit);
  await registry(page, visit);
  check(dialogs.length === 0, "no script ran (no dialogs)");
}

// The runs table: compact rows, the chooser, sorting, filtering, paging, tick boxes.
async function runsTable(page, visit) {
  let p = await visit("/ui", "runs.png");
  check(p.status === 200, "/ui answers 200");
  check(p.text.includes("21 of 21 runs"), "the table counts every run");
  check((await page.locator(`#runs a[href="/ui/runs/${runA}"]`).count()) === 1, "the run name links to its page");
  check(p.text.includes("<script>alert(1)</script>"), "the hostile run name is shown as text");
  check(!p.html.includes("<script>alert(1)</script>"), "the hostile run name is escaped in the HTML");
  const rows = page.locator("#runs tbody tr");
  check((await rows.count()) === 21, "21 rows on the first page");
  // Compact: ids never wrap, so a row is one line.
  const h = await rows.nth(0).evaluate((r) => r.getBoundingClientRect().height);
  check(h < 34, `a row is one line high (${h}px)`);
  const nine = await rows.nth(8).evaluate((r) => r.getBoundingClientRect().bottom - r.parentElement.getBoundingClientRect().top);
  check(nine < 300, `nine rows fit in ${Math.round(nine)}px`);
  await fitsTheWindow(page, "the runs table page");
  const text = await page.locator("#runs").innerText();
  check(/audit \d+\/\d+/.test(text), "rows carry an audit badge");
  check(text.includes("dirty") && text.includes("replay: identical") && text.includes("replayed: identical"), "dirty and replay badges");
  check(text.includes("pricing@1 staging"), "the model version and its stage show on its run");
  check(text.includes("api"), "the API-created run is marked");
  // innerText reads clipped text too: each badge must lie inside its cell, not under an ellipsis.
  const clipped = await page.locator("#runs .badge").evaluateAll((badges) =>
    badges.filter((b) => b.getBoundingClientRect().right > b.closest("td").getBoundingClientRect().right + 1).map((b) => b.textContent));
  check(clipped.length === 0, `every badge is visible (clipped: ${clipped.join(", ")})`);
  const header = await page.locator("#runs thead").innerText();
  check(header.includes("param lr") && header.includes("metric rmse") && header.includes("tag team"), "default columns: params, metrics, tags");

  p = await visit("/ui?order=" + encodeURIComponent("metrics.rmse DESC"), "runs-sorted.png");
  check(p.status === 200 && (await page.locator("#runs thead").innerText()).includes("metric rmse ▼"), "sorting by a metric keeps its column");
  p = await visit("/ui?filter=" + encodeURIComponent("params.depth = '3'"), "runs-filtered.png");
  check(p.status === 200 && p.text.includes("4 of 21 runs"), "a filter narrows the table");
  check((await page.locator("#runs thead").innerText()) === header, "columns stay put under a filter");
  p = await visit("/ui?filter=" + encodeURIComponent("metrics.rmse <<< 1"), "runs-bad-filter.png");
  check(p.status === 400 && (await page.locator("#filter-error").count()) === 1, "a bad filter answers 400 with the error");
  p = await visit("/ui?per=10&page=3", "runs-page3.png");
  check(p.text.includes("21–21 shown") && (await page.locator('a[rel="prev"]').count()) === 1, "paging");

  // Tick three runs and compare them: a plain form.
  await visit("/ui", "runs.png");
  const sweep = ids.sweep;
  for (const id of [sweep[0], sweep[5], sweep[9]]) await page.check(`input[name=runs][value="${id}"]`);
  await Promise.all([page.waitForNavigation(), page.click("#compare-selected")]);
  check(new URL(page.url()).pathname === "/ui/compare", "Compare selected opens the compare page");
  check((await page.locator("h1").innerText()) === "Compare 3 runs", "the three ticked runs are compared");
}

// Compare and diff.
async function comparePages(page, visit) {
  const s = ids.sweep;
  let p = await visit(`/ui/compare?runs=${s[0].slice(0, 8)},sweep-05,${s[9]},${s[13]}`, "compare.png");
  check(p.status === 200, "compare takes prefixes, names and ids");
  check((await page.locator('figure[data-metric="rmse"] path').count()) === 4, "rmse overlaid: one line per run");
  check((await page.locator("#params-grid tr.differs").count()) >= 1, "differing params are highlighted");
  check((await page.locator("#parallel-coordinates polyline").count()) === 4, "parallel coordinates: one line per run");
  const labels = await page.locator('figure[data-metric="rmse"] text.ytick').evaluateAll((els) => els.map((e) => e.textContent));
  check(labels.some((l) => /^\d{2},\d{3}$/.test(l)), `y labels keep every digit (${labels.join(" ")})`);
  await fitsTheWindow(page, "the compare page");
  p = await visit(`/ui/compare?runs=${s[0]},${s[1]}&smooth=0.6&x=time&logy=1`, "compare-options.png");
  check(p.status === 200 && p.text.includes("log scale"), "chart options apply");

  await page.goto(base + `/ui/compare?runs=${s[0]},${s[5]},${s[9]}`);
  await Promise.all([page.waitForNavigation(), page.locator("a.pair-diff").first().click()]);
  p = { text: await page.innerText("body") };
  await page.screenshot({ path: join(outDir, "diff.png"), fullPage: true });
  check(p.text.includes("Likely causes"), "the diff page ranks likely causes");
  check(p.text.includes("lr"), "the diff names the changed param");
  p = await visit(`/ui/diff?a=${runA.slice(0, 8)}&b=deeper`, "diff-ab.png");
  check(p.status === 200 && p.text.includes("model.max_depth"), "the diff takes prefixes and names");
}

// The registry: the list, the model, the version with its checks and history, the report.
async function registry(page, visit) {
  let p = await visit("/ui/models", "models.png");
  check(p.status === 200 && (await page.locator("#model-pricing").count()) === 1, "the model pricing is listed");
  check(p.text.includes("staging v1"), "its stage is shown");
  check((await page.locator("#chain.ok").count()) === 1, "the event chain is checked");
  p = await visit("/ui/models/pricing", "model.png");
  check(p.status === 200 && (await page.locator("#versions").count()) === 1, "the model page lists its versions");
  p = await visit("/ui/models/pricing@1", "version.png");
  check(p.status === 200, "the version page answers 200");
  check((await page.locator('#verify-checks tr[data-check="signature"] .ok').count()) === 1, "the signature verifies, checked by the server");
  check((await page.locator('tr[data-stage="prod"]').innerText()).includes("approvals 1/2 ✗"), "prod readiness: approvals 1/2");
  check((await page.locator("#approvals-table").innerText()).includes("verifies"), "the approval's signature verifies");
  check((await page.locator('#timeline li[data-kind="refuse"]').count()) === 1, "the refused promotion is in the timeline");
  check((await page.locator('#timeline li[data-kind="refuse"]').innerText()).includes("approvals"), "with its reasons");
  check((await page.locator("#version-files").innerText()).includes("model.pkl"), "the version's files with both digests");
  await fitsTheWindow(page, "the version page");
  const v = await visit("/ui/models/pricing@staging", "version-staging.png");
  check(v.status === 200 && v.text.includes("pricing v1"), "NAME@STAGE opens the version");

  await Promise.all([page.waitForNavigation(), page.click("#report-link")]);
  await page.screenshot({ path: join(outDir, "report.png"), fullPage: true });
  const text = await page.innerText("body");
  check(text.includes("Audit report: pricing@1") && text.includes("What this report cannot vouch for"), "the report opens from the version");
  check((await page.locator("svg#lineage g.node").count()) >= 6, "the report draws the lineage");
  check((await page.locator("#single-metrics td.num").count()) >= 1, "the report shows the metrics (single values as a table)");
  await fitsTheWindow(page, "the report");
  await fitsAPrintedPage(page, "the report");
  const missing = await visit("/ui/models/pricing@9", "version-missing.png");
  check(missing.status === 404 && missing.text.includes("no version 9"), "an unknown version is a 404 page");
  const unknown = await visit("/ui/no/such/page", "unknown.png");
  check(unknown.status === 404 && unknown.text.includes("No page at"), "an unknown /ui path is an HTML 404");
  // MLflow's printed links reach the same pages.
  await page.goto(base + `/#/experiments/0/runs/${runA}`);
  await page.waitForURL(`**/ui/runs/${runA}`);
  check(true, "an MLflow run link lands on the run page");
}

// The run pages: a trained run with its verdict card and lineage, a failed, a dirty, a
// replay, an API-created and a 50,000-step run.
async function runPages(page, visit) {
  let p = await visit(`/ui/runs/${runA}`, "run.png");
  check(p.status === 200, "the run page answers 200");
  check((await page.locator("#run-id").innerText()) === runA, "the run page shows the run id");
  const verdict = page.locator("#verdict");
  check((await verdict.count()) === 1, "the run page leads with a verdict card");
  check(/\d+\/\d+/.test(await page.locator("#verdict-audit").innerText()), "the card gives the audit score n/N");
  check((await page.locator("#verdict-code").innerText()).includes("clean"), "the card says the tree was clean");
  check(/replayed 1×; latest [0-9a-f]{8}: identical/.test(await page.locator("#verdict-replay").innerText()), "the card gives the replay verdict");
  check((await page.locator("#verdict-models").innerText()).includes("pricing@1"), "the card names the model version");
  check((await page.locator("svg#lineage g.node").count()) >= 6, "the lineage picture draws inputs, run, outputs, versions, replays");
  check((await page.locator("svg#lineage").innerHTML()).includes("pricing@1"), "the lineage reaches the model version");
  const modelRow = page.locator("#outputs-table tr", { hasText: "model.pkl" }).first();
  check(/blake3:[0-9a-f]{16,}/.test(await modelRow.innerText()), "model.pkl's digest is shown");
  check((await page.locator('tr[data-item="git_commit"]').count()) === 1, "the audit lists git_commit");
  check((await page.locator("#packages tr").count()) > 3, "declared requirements are listed against installed packages");
  check(/\d+ not declared/.test(await page.locator("#env-summary").innerText()), "packages installed but not declared are flagged");
  check((await page.locator("pre.params-file").innerText()).includes("max_depth"), "the params file's text is shown");
  check(p.text.includes("train.py"), "the script is shown");
  await fitsTheWindow(page, "the run page");
  await page.locator("#files-table a", { hasText: "model.pkl" }).first().click();
  check((await page.locator("#download").count()) === 1, "an output file opens with a download link");

  p = await visit(`/ui/runs/${ids.failed}`, "run-failed.png");
  check((await page.locator("#verdict.bad").count()) === 1, "a failed run's card is red");
  check((await page.locator("#stderr-lead").innerText()).includes("boom: column price is missing"), "a failed run leads with its stderr tail");

  p = await visit(`/ui/runs/${ids.dirty}`, "run-dirty.png");
  check((await page.locator("#verdict-code").innerText()).includes("dirty"), "a dirty run says so on its card");
  check((await page.locator("#git-diff span.add").count()) >= 1, "the stored diff is shown as a coloured patch");
  check((await page.locator("#git-diff").innerText()).includes("an uncommitted tweak"), "the diff holds the change");

  p = await visit(`/ui/runs/${ids.replay}`, "run-replay.png");
  check((await page.locator("#replay-verdict").innerText()) === "identical", "a replay shows its verdict");
  check((await page.locator("#replay-outputs").innerText()).includes("model.pkl"), "a replay shows per-output results");
  check(!p.text.includes("never replayed"), "a replay's page does not say never replayed");

  p = await visit(`/ui/runs/${ids.api}`, "run-api.png");
  check((await page.locator("#not-captured").count()) === 1, "an API run says what was not captured");
  for (const invented of ["generated by repro", "usable cores", "Command: in"]) {
    check(!p.text.includes(invented), `an API run invents nothing ("${invented}")`);
  }
  check((await page.locator("#tags-table").innerText()).includes("team"), "an API run's tags are shown");
  check((await page.locator("#files-table").innerText()).includes("eval/notes.txt"), "an API run's artifact is listed");
  check(p.text.includes("28029.79") || p.text.includes("28,029.79"), "a one-point metric keeps its leading digits");

  const resp = await page.goto(base + `/ui/runs/${ids.long}`);
  const bytes = (await resp.body()).length;
  check(bytes <= 200 * 1024, `the 50,000-step run page is ${bytes} bytes (≤ 200 KB)`);
  await page.screenshot({ path: join(outDir, "run-long.png"), fullPage: true });

  const missing = await visit("/ui/runs/00000000000000000000000000000000", "run-missing.png");
  check(missing.status === 404, "an unknown run is a 404 page");
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
