// A counter clerk opens a pending VietQR payment in the /ops dashboard (Debian's Chromium): the
// code is drawn (fetched with the key, decoded by the browser as an image), with the amount, the
// agency and the time left beside it.
// Usage: node qr.mjs CONFIG_JSON, with {base, key, reference, amount_text, ma_don_vi, shot}
// Exits 1 with "FAIL: ..." when the page does not show what it must.
import { cfg, WAIT, browser, fail } from "./harness.mjs";


try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, locale: "vi-VN", timezoneId: "Asia/Ho_Chi_Minh" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(cfg.base + "/ops");
  await page.fill("#key", cfg.key);
  await page.click("#key-form button[type=submit]");
  await page.waitForSelector("#queues tbody tr", WAIT);
  await page.goto(cfg.base + "/ops#/payment/" + encodeURIComponent(cfg.reference));
  await page.waitForSelector("#payment-qr img", WAIT);
  // The image really decoded: a blob the browser drew, not a broken icon.
  await page.waitForFunction(() => { const i = document.querySelector("#payment-qr img"); return i && i.complete && i.naturalWidth > 100; }, null, WAIT);
  const text = (await page.textContent("#payment-qr")) || "";
  for (const want of [cfg.amount_text, cfg.ma_don_vi, "VietQR", "phút"]) {
    if (!text.includes(want)) await fail(`${JSON.stringify(want)} not in the QR panel: ${text.replace(/\s+/g, " ")}`);
  }
  const left = Number(await page.getAttribute("#payment-qr [data-left]", "data-left"));
  if (!(left > 0 && left <= 15 * 60)) await fail("time left is not within the code's 15 minutes: " + left);
  if (cfg.shot) await page.screenshot({ path: cfg.shot, fullPage: true });
  if (errors.length) await fail("the page raised errors: " + errors.join(" | "));
  console.log("ok: the VietQR code, its amount, agency and time left");
  await browser.close();
} catch (e) {
  await fail(e.message);
}
