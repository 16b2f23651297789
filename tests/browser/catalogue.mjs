// Drives the /ops dashboard's Catalogue view in Debian's Chromium, in two stages around a
// withdrawal on the mock portal (made by the Rust test between them):
//   first:     the view of a catalogue never pulled; "Sync now" with the admin key, until done;
//              the list, a search without diacritics ("khai sinh"), a field filter, kept in the
//              address; an operator's key is told a sync needs an admin key.
//   withdrawn: sync again; the withdrawn procedure carries its badge; a procedure's details
//              (fields, results, documents, ways) in Vietnamese then English, over a reload;
//              the progress bar of a run (its state answered by the test through page.route).
// Usage: node catalogue.mjs CONFIG_JSON, with
//   {stage, base, admin_key, operator_key, count, check, birth, withdrawn, shots: {list, details, progress}}
// Exits 1 with "FAIL: ..." when the page does not show what it must.
import { cfg, WAIT, browser, fail, expectText } from "./harness.mjs";


// The codes of the rows the table shows, once the table shows `query` (search and page).
async function rowsFor(page, query) {
  await page.waitForFunction((q) => document.querySelector("#view-catalogue")?.dataset.query === q, query, WAIT)
    .catch(async () => fail(`the table never showed ${query}: ${await page.evaluate(() => document.querySelector("#view-catalogue")?.dataset.query)}`));
  return page.$$eval("#catalogue tbody tr", (trs) => trs.map((tr) => tr.dataset.code).sort());
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const row = (code) => `#catalogue tr[data-code="${code}"]`;

// "Sync now", then the end of a run that started after the click.
async function syncNow(page, thanks) {
  const before = await page.getAttribute("#catalogue-sync", "data-started");
  await page.click("#cat-sync-now");
  await expectText(page, "#cat-action", [thanks], "the answer to Sync now");
  await page.waitForFunction((b) => { const c = document.querySelector("#catalogue-sync"); return c.dataset.phase === "done" && c.dataset.started !== b; }, before, WAIT)
    .catch(async () => fail("the sync never showed done: " + (await page.getAttribute("#catalogue-sync", "data-phase"))));
}
async function search(page, words, field) {
  await page.fill("#cf-q", words);
  await page.fill("#cf-field", field);
  await page.click("#catalogue-filter button[type=submit]");
}

try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: "vi-VN", timezoneId: "Asia/Ho_Chi_Minh" });
  const page = await context.newPage();
  const outside = [];
  const errors = [];
  page.on("request", (r) => { if (!r.url().startsWith(cfg.base)) outside.push(r.url()); });
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => { errors.push("a dialog opened: " + d.message()); d.dismiss(); });

  // Straight to the view: the address is kept over the key's entry.
  await page.goto(cfg.base + "/ops#/catalogue");
  await page.click('#lang button[data-lang="vi"]');
  await page.fill("#key", cfg.admin_key);
  await page.click("#key-form button[type=submit]");
  await page.waitForSelector("#catalogue-sync[data-phase]", WAIT);
  await expectText(page, '#tabs a[data-view="catalogue"]', ["Danh mục thủ tục"], "the tab in Vietnamese");
  await expectText(page, "#catalogue-sync", ["Đồng bộ danh mục thủ tục từ Cổng DVC quốc gia", "Đồng bộ ngay", "kiểm tra khi tiếp nhận hồ sơ", "chỉ khi được yêu cầu"], "the sync card's labels");
  if ((await page.getAttribute("#cat-check", "data-mode")) !== cfg.check) await fail("the check mode is not " + cfg.check);

  if (cfg.stage === "first") {
    await expectText(page, "#cat-phase", ["chưa chạy lần nào"], "a catalogue never pulled");
    await expectText(page, "#cat-last-success", ["chưa có"], "no success yet");
    await expectText(page, "#catalogue-empty", ["Danh mục đang trống"], "the empty catalogue");
    await syncNow(page, "Đã yêu cầu đồng bộ");
    await expectText(page, "#cat-phase", ["hoàn tất"], "the sync done");
    await expectText(page, "#cat-procedures", [String(cfg.count)], "the procedures' count");
    if ((await page.textContent("#cat-last-success")).includes("chưa có")) await fail("no last success after a sync");
    let rows = await rowsFor(page, "limit=50&offset=0");
    if (rows.length !== cfg.count) await fail("the list shows " + JSON.stringify(rows));
    await expectText(page, "#catalogue-total", [`${cfg.count} thủ tục`], "the total");
    await expectText(page, "#cp-page", ["Trang 1 / 1"], "the pager");

    // Words without diacritics find the Vietnamese name; kept in the address over a reload.
    await search(page, "khai sinh", "");
    rows = await rowsFor(page, "limit=50&offset=0&q=khai+sinh");
    if (!same(rows, [cfg.birth])) await fail("'khai sinh' finds " + JSON.stringify(rows));
    await expectText(page, row(cfg.birth), [cfg.birth, "Đăng ký khai sinh", "Hộ tịch (HOTICH)"], "the birth registration's row");
    if (!page.url().endsWith("#/catalogue?q=khai+sinh")) await fail("the search is not in the address: " + page.url());
    await page.reload();
    rows = await rowsFor(page, "limit=50&offset=0&q=khai+sinh");
    if (!same(rows, [cfg.birth])) await fail("after a reload the search finds " + JSON.stringify(rows));
    if ((await page.inputValue("#cf-q")) !== "khai sinh") await fail("after a reload the words are not in the form");
    await search(page, "", "CHUNGTHUC");
    rows = await rowsFor(page, "limit=50&offset=0&linh_vuc=CHUNGTHUC");
    if (!same(rows, ["2.000815", "2.000908"])) await fail("the field CHUNGTHUC finds " + JSON.stringify(rows));
    await search(page, "", "");
    await rowsFor(page, "limit=50&offset=0");
    await page.screenshot({ path: cfg.shots.list, fullPage: true });

    // An operator may watch but not sync.
    await page.click("#forget");
    await page.fill("#key", cfg.operator_key);
    await page.click("#key-form button[type=submit]");
    await page.waitForSelector("#catalogue tbody tr", WAIT);
    await page.click("#cat-sync-now");
    await expectText(page, "#cat-action", ["Khoá này chỉ được xem: đồng bộ cần khoá quản trị."], "an operator's Sync now");
  } else {
    await syncNow(page, "Đã yêu cầu đồng bộ");
    await search(page, "khai tu", "");
    await rowsFor(page, "limit=50&offset=0&q=khai+tu");
    await page.waitForSelector(`${row(cfg.withdrawn)}[data-withdrawn="true"]`, WAIT).catch(() => fail("the withdrawn procedure is not marked"));
    await expectText(page, row(cfg.withdrawn), ["Đăng ký khai tử", "ngừng áp dụng"], "the withdrawn badge");
    await search(page, "khai", "");
    const rows = await rowsFor(page, "limit=50&offset=0&q=khai");
    if (!rows.includes(cfg.birth) || !rows.includes(cfg.withdrawn)) await fail("'khai' finds " + JSON.stringify(rows));
    if (await page.$(`${row(cfg.birth)} .cat-withdrawn`)) await fail("a procedure still listed has the withdrawn badge");

    // A code opens its details, kept in the address.
    await page.click(`${row(cfg.birth)} a`);
    await page.waitForSelector(`#procedure[data-code="${cfg.birth}"]`, WAIT);
    if (!page.url().includes("code=" + cfg.birth)) await fail("the details are not in the address: " + page.url());
    const vi = ["Thủ tục", "Đăng ký khai sinh", "lĩnh vực", "Hộ tịch (HOTICH)", "cơ quan thực hiện", "Ủy ban nhân dân cấp xã",
      "Kết quả thực hiện", "Giấy khai sinh (bản chính)", "KQ.1.001193.01", "Thành phần hồ sơ", "Tờ khai đăng ký khai sinh theo mẫu",
      "GT.1.001193.01", "Giấy chứng sinh", "Cách thức thực hiện", "trực tiếp", "trực tuyến", "thời hạn giải quyết: 1 Ngày làm việc",
      "Miễn lệ phí đăng ký khai sinh đúng hạn", "căn cứ pháp lý"];
    await expectText(page, "#procedure", vi, "the details in Vietnamese");
    await page.reload();
    await expectText(page, "#procedure", ["Đăng ký khai sinh", "Giấy chứng sinh"], "the details after a reload");
    await page.screenshot({ path: cfg.shots.details, fullPage: true });
    await page.click('#lang button[data-lang="en"]');
    await expectText(page, "#procedure", ["Procedure", "fields", "carried out by", "Results", "Documents to file", "How it is carried out", "in person", "online", "time: 1"], "the details in English");
    await expectText(page, row(cfg.withdrawn), ["withdrawn"], "the withdrawn badge in English");

    // The withdrawn one says so in its details.
    await page.click(`${row(cfg.withdrawn)} a`);
    await page.waitForSelector(`#procedure[data-code="${cfg.withdrawn}"][data-withdrawn="true"]`, WAIT);
    await expectText(page, "#procedure", ["Đăng ký khai tử", "withdrawn", "no longer lists this procedure"], "the withdrawn procedure's details");
    await page.click("#proc-close");
    await page.waitForFunction(() => !document.querySelector("#procedure"), null, WAIT).catch(() => fail("Close leaves the details"));
    if (page.url().includes("code=")) await fail("Close leaves the code in the address: " + page.url());

    // A run in progress: a progress bar of done / total (the state answered here).
    const running = { phase: "details", started_at: new Date().toISOString(), finished_at: null, last_success_at: new Date().toISOString(), total: cfg.count, done: 3,
      failed_details: 0, last_error: null, procedures: cfg.count, check: cfg.check, sync_every_secs: 0 };
    await page.route("**/v1/catalogue/sync", (r) => (r.request().method() === "GET" ? r.fulfill({ json: running }) : r.continue()));
    await page.click('#lang button[data-lang="vi"]');
    await page.waitForSelector("#cat-progress-fact:not([hidden])", WAIT).catch(() => fail("no progress bar while the details are pulled"));
    await expectText(page, "#catalogue-sync", ["đang tải chi tiết thủ tục", `3 / ${cfg.count}`], "the progress");
    if (Number(await page.getAttribute("#cat-progress", "value")) !== 3) await fail("the bar is not at 3");
    if (/null|undefined/.test(await page.textContent("#catalogue-sync"))) await fail("the sync card shows null or undefined");
    await page.screenshot({ path: cfg.shots.progress });
    await page.unroute("**/v1/catalogue/sync");
    await page.waitForSelector('#catalogue-sync[data-phase="done"] #cat-progress-fact[hidden]', { ...WAIT, state: "attached" }).catch(() => fail("the bar stays after the run"));
  }

  if (outside.length) await fail("the page reached outside the gateway: " + outside.join(", "));
  if (errors.length) await fail("script errors: " + errors.join("; "));
  console.log(`ok: the Catalogue view (${cfg.stage})`);
  await browser.close();
} catch (e) {
  await fail(e.message);
}
