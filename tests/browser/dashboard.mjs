// Drives the /ops dashboard in Debian's Chromium: enter a key, see the dead letter, replay it,
// see it go. Usage: node dashboard.mjs BASE_URL API_KEY DEAD_ID SCREENSHOT.png
import { chromium } from "playwright-core";

const [base, key, deadId, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const fail = async (msg) => {
  console.error("FAIL: " + msg);
  await browser.close();
  process.exit(1);
};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const outside = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) outside.push(r.url()); });
  page.on("dialog", (d) => d.accept());
  await page.goto(base + "/ops");
  await page.click('#lang button[data-lang="en"]');
  await page.fill("#key", key);
  await page.click("#key-form button[type=submit]");
  const row = `#dead tr[data-id="${deadId}"]`;
  await page.waitForSelector(row, { timeout: 20000 });
  const queues = await page.textContent("#queues");
  if (!queues.includes("dvcqg")) await fail("the queues table does not show dvcqg");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-before.png"), fullPage: true });
  await page.click(`${row} button[data-action="replay"]`);
  await page.waitForSelector(row, { state: "detached", timeout: 20000 });
  const result = await page.textContent("#action-result");
  if (!result.includes("Replayed")) await fail("no confirmation of the replay: " + result);
  await page.waitForFunction(() => document.querySelector("#audit").textContent.includes("dead.replay"), null, { timeout: 20000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  if (outside.length) await fail("the page reached outside the gateway: " + outside.join(", "));
  console.log("ok: dead letter replayed from the dashboard");
  await browser.close();
} catch (e) {
  await fail(e.message);
}
