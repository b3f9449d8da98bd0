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

// Every page of a store without tokens.
async function browse(page, visit, dialogs) {
  await runsTable(page, visit);
  await runPages(page, visit);
  await comparePages(page, visit);
  await registry(page, visit);
  check(dialogs.length === 0, "no script ran (no dialogs)");
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
