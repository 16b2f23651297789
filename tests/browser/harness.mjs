// What every dashboard script shares: its config (argv[2], JSON), the bounded wait, Debian's
// Chromium launched headless without network side-channels, `fail` (prints "FAIL: ...", closes
// the browser, exits 1) and `expectText` (waits, bounded, until an element's text holds every
// one of some texts, else fails naming what it saw).
import { chromium } from "playwright-core";

export const cfg = JSON.parse(process.argv[2] || "{}");
export const WAIT = { timeout: 20000 };
export const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
export const fail = async (msg) => {
  console.error("FAIL: " + msg);
  await browser.close();
  process.exit(1);
};

// Waits (bounded) until the element's text contains every one of `texts`.
export async function expectText(page, selector, texts, what) {
  try {
    await page.waitForFunction(
      ([s, ts]) => { const n = document.querySelector(s); return !!n && ts.every((x) => n.textContent.includes(x)); },
      [selector, texts], WAIT);
  } catch {
    const seen = await page.evaluate((s) => document.querySelector(s)?.textContent ?? "(missing)", selector);
    await fail(`${what}: ${JSON.stringify(texts)} not in ${selector}: ${seen.replace(/\s+/g, " ").slice(0, 600)}`);
  }
}
