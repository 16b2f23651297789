// Drives the /ops dashboard in Debian's Chromium through the dossiers handed down: the Inbound
// view lists them (source, procedure, files, acknowledgement) with their total, the source
// filter narrows them and stays in the address over a reload, the labels follow the language,
// and a dossier's timeline shows where it came from, its files' names as text, and the
// direction of each message.
// Usage: node inbound.mjs CONFIG_JSON, with
//   {base, key, portal, waiting, acked, webhook_id, shots: {list, dossier}}
// (portal: a dvcqg dossier with two files, one named like markup; waiting: a dvclt dossier not
// acknowledged; acked: a dvclt dossier acknowledged.)
// Exits 1 with "FAIL: ..." when the page does not show what it must.
import { cfg, WAIT, browser, fail, expectText } from "./harness.mjs";


// The MaHoSo of the rows the table shows, once the table shows `query` (filter and page).
async function rowsFor(page, query) {
  await page.waitForFunction((q) => document.querySelector("#view-inbound")?.dataset.query === q, query, WAIT)
    .catch(async () => fail(`the table never showed ${query}`));
  return page.$$eval("#inbound tbody tr", (trs) => trs.map((tr) => tr.dataset.mahoso).sort());
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const row = (ma) => `#inbound tr[data-mahoso="${ma}"]`;

try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: "en-GB", timezoneId: "Asia/Ho_Chi_Minh" });
  const page = await context.newPage();
  const outside = [];
  const errors = [];
  page.on("request", (r) => { if (!r.url().startsWith(cfg.base)) outside.push(r.url()); });
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => { errors.push("a dialog opened: " + d.message()); d.dismiss(); });

  await page.goto(cfg.base + "/ops");
  await page.click('#lang button[data-lang="en"]');
  await page.fill("#key", cfg.key);
  await page.click("#key-form button[type=submit]");
  await page.waitForSelector("#queues tbody tr", WAIT);

  // The tab opens the list of every source, newest first.
  await page.click('#tabs a[data-view="inbound"]');
  let rows = await rowsFor(page, "limit=50&offset=0");
  if (!same(rows, [cfg.portal, cfg.waiting, cfg.acked].sort())) await fail("the list shows " + JSON.stringify(rows));
  await expectText(page, "#inbound-total", ["3 dossiers"], "the total");
  await expectText(page, row(cfg.portal), [cfg.portal, "national portal (push)", "1.000001", "—"], "the portal's dossier");
  if ((await page.textContent(`${row(cfg.portal)} td.num`)).trim() !== "2") await fail("the portal's dossier does not count 2 files");
  await expectText(page, row(cfg.waiting), ["link-up (DVCLT)", "waiting for the centre"], "the link-up's dossier not acknowledged");
  await expectText(page, row(cfg.acked), ["link-up (DVCLT)", "acknowledged "], "the link-up's dossier acknowledged");
  if (await page.$eval("#ip-next", (b) => !b.disabled)) await fail("a next page is offered for three dossiers");
  await expectText(page, "#ip-page", ["Page 1 of 1"], "the pager");
  await page.screenshot({ path: cfg.shots.list, fullPage: true });

  // The source filter narrows the list, and is kept in the address.
  await page.selectOption("#if-source", "dvclt");
  rows = await rowsFor(page, "limit=50&offset=0&source=dvclt");
  if (!same(rows, [cfg.waiting, cfg.acked].sort())) await fail("the link-up filter shows " + JSON.stringify(rows));
  await expectText(page, "#inbound-total", ["2 dossiers"], "the link-up's total");
  if (!page.url().endsWith("#/inbound?source=dvclt")) await fail("the filter is not in the address: " + page.url());
  await page.reload();
  rows = await rowsFor(page, "limit=50&offset=0&source=dvclt");
  if (!same(rows, [cfg.waiting, cfg.acked].sort())) await fail("after a reload the list shows " + JSON.stringify(rows));
  if ((await page.inputValue("#if-source")) !== "dvclt") await fail("after a reload the filter does not show the link-up");
  await page.selectOption("#if-source", "dvcqg");
  rows = await rowsFor(page, "limit=50&offset=0&source=dvcqg");
  if (!same(rows, [cfg.portal])) await fail("the portal filter shows " + JSON.stringify(rows));
  await expectText(page, "#inbound-total", ["1 dossier"], "the portal's total");

  // In Vietnamese.
  await page.click('#lang button[data-lang="vi"]');
  await expectText(page, '#tabs a[data-view="inbound"]', ["Hồ sơ tiếp nhận từ cổng"], "the tab in Vietnamese");
  await expectText(page, row(cfg.portal), ["Cổng DVC quốc gia (đẩy sang)"], "the source in Vietnamese");
  await page.selectOption("#if-source", "");
  await rowsFor(page, "limit=50&offset=0");
  await expectText(page, row(cfg.waiting), ["chờ trung tâm tiếp nhận"], "the acknowledgement in Vietnamese");
  await page.click('#lang button[data-lang="en"]');

  // The MaHoSo opens the dossier's timeline: where it came from, its files, the webhook's way.
  await page.click(`${row(cfg.portal)} a`);
  await page.waitForSelector("#dossier-inbound", WAIT);
  if (!page.url().endsWith("#/dossier/" + cfg.portal)) await fail("the link goes to " + page.url());
  await expectText(page, "#dossier-inbound", ["national portal (push)", "1.000001", "—"], "the inbound block");
  await expectText(page, "#inbound-files", ["don.pdf", "application/pdf", "2 KiB", "<img src=x onerror=alert(1)>.png", "70 B"], "the files");
  if (await page.$("#dossier-inbound img, #dossier-inbound a")) await fail("a file name became markup or a link");
  const hook = `#dossier li[data-id="${cfg.webhook_id}"][data-destination="inbound"]`;
  await page.waitForSelector(hook, WAIT);
  await expectText(page, hook, ["Dossier handed to the centre", "to the centre (handed down)", "Received from the source"], "the webhook's direction");
  await page.waitForSelector(`${hook}[data-status="delivered"]`, WAIT);
  await expectText(page, hook, ["Delivered to the centre"], "the webhook delivered");
  if (await page.$("#dossier .portal-status")) await fail("a dossier handed down is said not to be on the portal");
  await page.screenshot({ path: cfg.shots.dossier, fullPage: true });

  if (outside.length) await fail("the page reached outside the gateway: " + outside.join(", "));
  if (errors.length) await fail("script errors: " + errors.join("; "));
  console.log("ok: the Inbound view lists, filters and opens the dossiers handed down");
  await browser.close();
} catch (e) {
  await fail(e.message);
}
