// Drives the /ops dashboard in Debian's Chromium through a refused dossier and the payments
// page: search the MaHoSo, read its timeline (the refused message with its plain reason, the
// blocked banner, the portal status), switch the language (remembered over a reload), filter
// the payments by status, open a payment's timeline, then replay the refused message at a
// capped rate from the dashboard and watch its progress and the dossier turn delivered.
// Usage: node timeline.mjs CONFIG_JSON, with
//   {base, key, mahoso, dead_id, blocked_id, reason_vi, reason_en, portal_vi, portal_en,
//    mismatch_ref, paid_ref, pending_ref, shots: {timeline, timeline_en, payments, payment, replay}}
// Exits 1 with "FAIL: ..." when the page does not show what it must.
import { cfg, WAIT, browser, fail, expectText } from "./harness.mjs";


try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: "vi-VN", timezoneId: "Asia/Ho_Chi_Minh" });
  const page = await context.newPage();
  const outside = [];
  const errors = [];
  page.on("request", (r) => { if (!r.url().startsWith(cfg.base)) outside.push(r.url()); });
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => d.accept());

  // A first visit is in Vietnamese, the operators' language.
  await page.goto(cfg.base + "/ops");
  if ((await page.getAttribute("html", "lang")) !== "vi") await fail("the first visit is not in Vietnamese");
  await page.fill("#key", cfg.key);
  await page.click("#key-form button[type=submit]");
  await page.waitForSelector("#queues tbody tr", WAIT);

  // The search box finds the dossier and tells its story.
  await page.fill("#search", cfg.mahoso);
  await page.click("#search-form button[type=submit]");
  const dead = `#dossier li[data-id="${cfg.dead_id}"][data-status="dead"]`;
  await page.waitForSelector(dead, WAIT);
  await expectText(page, dead, [cfg.reason_vi, "Bị từ chối"], "the refused message in Vietnamese");
  await page.waitForSelector(`#dossier li[data-id="${cfg.blocked_id}"][data-status="blocked"]`, WAIT);
  await expectText(page, "#blocked-banner", ["Hồ sơ đang bị chặn"], "the blocked banner");
  await expectText(page, "#dossier .portal-status", [cfg.portal_vi], "the portal status");
  await expectText(page, "#dossier .ident", [cfg.mahoso], "the MaHoSo");
  await page.screenshot({ path: cfg.shots.timeline, fullPage: true });

  // English, remembered over a reload.
  await page.click('#lang button[data-lang="en"]');
  await expectText(page, dead, [cfg.reason_en, "Refused"], "the refused message in English");
  await page.reload();
  await expectText(page, dead, [cfg.reason_en], "English after a reload");
  if ((await page.getAttribute("html", "lang")) !== "en") await fail("the language choice was not remembered");
  await expectText(page, "#dossier .portal-status", [cfg.portal_en], "the portal status in English");
  await page.screenshot({ path: cfg.shots.timeline_en, fullPage: true });

  // A code nobody sent is answered plainly.
  await page.fill("#search", cfg.mahoso + "-X");
  await page.click("#search-form button[type=submit]");
  await expectText(page, "#result .notice", ["No dossier", cfg.mahoso + "-X"], "the not-found answer");

  // The payments page, filtered by status; the filter leaves the other payment out.
  await page.click('#tabs a[data-view="payments"]');
  for (const ref of [cfg.paid_ref, cfg.mismatch_ref, cfg.pending_ref]) await page.waitForSelector(`#payments tr[data-ref="${ref}"]`, WAIT);
  await expectText(page, `#payments tr[data-ref="${cfg.pending_ref}"]`, ["pending"], "the pending payment");
  await page.screenshot({ path: cfg.shots.payments, fullPage: true });
  await page.selectOption("#pf-status", "amount_mismatch");
  await page.click("#payments-filter button[type=submit]");
  await page.waitForSelector('#view-payments[data-query="status=amount_mismatch"]', WAIT);
  const mismatch = `#payments tr[data-ref="${cfg.mismatch_ref}"]`;
  await expectText(page, mismatch, [cfg.mahoso, "amount mismatch"], "the mismatched payment");
  for (const other of [cfg.paid_ref, cfg.pending_ref]) {
    if (await page.$(`#payments tr[data-ref="${other}"]`)) await fail("the status filter still shows " + other);
  }

  // The payment's own timeline, by the search box as well.
  await page.fill("#search", cfg.mismatch_ref);
  await page.click("#search-form button[type=submit]");
  await page.waitForSelector("#payment .timeline li", WAIT);
  await expectText(page, "#payment", [cfg.mismatch_ref, "amount mismatch", cfg.mahoso], "the payment's timeline");
  if (cfg.shots.payment) await page.screenshot({ path: cfg.shots.payment, fullPage: true });

  // Replay the refused message at a capped rate from the failed-messages list.
  await page.goto(cfg.base + "/ops#/?ordering_key=" + encodeURIComponent(cfg.mahoso));
  const row = `#dead tr[data-id="${cfg.dead_id}"]`;
  await page.waitForSelector(row, WAIT);
  await expectText(page, row, [cfg.reason_en], "the plain reason in the failed messages");
  await page.fill("#replay-rate", "2");
  await page.click("#replay-form button[type=submit]");
  await expectText(page, "#action-result", ["Replay started"], "the replay confirmation");
  await page.waitForSelector('#replays .replay-row[data-state="finished"]', WAIT);
  await expectText(page, "#replays", ["1 of 1", "2 per second"], "the replay's progress");
  if (cfg.shots.replay) await page.screenshot({ path: cfg.shots.replay, fullPage: true });
  await page.goto(cfg.base + "/ops#/dossier/" + encodeURIComponent(cfg.mahoso));
  await page.waitForSelector(`#dossier li[data-id="${cfg.dead_id}"][data-status="delivered"]`, WAIT);
  if (await page.$("#blocked-banner")) await fail("the dossier is still shown blocked after the replay");

  if (outside.length) await fail("the page reached outside the gateway: " + outside.join(", "));
  if (errors.length) await fail("the page raised errors: " + errors.join(" | "));
  console.log("ok: dossier and payment timelines, payments filter, language switch, rate-capped replay");
  await browser.close();
} catch (e) {
  await fail(e.message);
}
