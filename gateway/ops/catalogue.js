// The dashboard's Catalogue view (#/catalogue?q=&linh_vuc=&offset=&code=): the national
// procedures as the gateway last pulled them from the portal, the sync's progress (refreshed
// every few seconds, every second while it runs) with "Sync now" for admins, a search by words
// and field code paged by offset, and one procedure's details (code=) as the portal gave them.
// A second script beside app.js, whose helpers (el, t, api, when, render...) it uses; every
// value from the API goes into the page as text (textContent), never as markup.
"use strict";

Object.assign(TEXT, {
  "cat.sync_title": ["Procedure catalogue from the national portal", "Đồng bộ danh mục thủ tục từ Cổng DVC quốc gia"],
  "cat.sync_now": ["Sync now", "Đồng bộ ngay"],
  "cat.phase": ["state", "trạng thái"],
  "cat.progress": ["details pulled", "đã tải chi tiết"],
  "cat.procedures": ["procedures", "số thủ tục"],
  "cat.last_success": ["last success", "lần thành công gần nhất"],
  "cat.never": ["never", "chưa có"],
  "cat.check": ["check at acceptance", "kiểm tra khi tiếp nhận hồ sơ"],
  "cat.every": ["pulled", "tự động đồng bộ"],
  "cat.every_secs": ["every {n} s", "mỗi {n} giây"],
  "cat.every_min": ["every {n} min", "mỗi {n} phút"],
  "cat.every_hours": ["every {n} h", "mỗi {n} giờ"],
  "cat.on_demand": ["only when asked", "chỉ khi được yêu cầu"],
  "cat.failed_details": ["{n} procedures' details could not be pulled in the last run: the list's entries stand in for them.", "Lần đồng bộ gần nhất không tải được chi tiết của {n} thủ tục: dùng tạm thông tin trong danh sách."],
  "cat.last_error": ["Last error: {m}", "Lỗi gần nhất: {m}"],
  "cat.asked": ["Sync asked for: it starts within a second.", "Đã yêu cầu đồng bộ: sẽ bắt đầu trong vòng một giây."],
  "cat.forbidden": ["This key may only watch: a sync needs an admin key.", "Khoá này chỉ được xem: đồng bộ cần khoá quản trị."],
  "phase.idle": ["never run", "chưa chạy lần nào"],
  "phase.details": ["pulling the details", "đang tải chi tiết thủ tục"],
  "phase.done": ["done", "hoàn tất"],
  "phase.failed": ["failed (the previous catalogue stands)", "thất bại (giữ danh mục trước đó)"],
  "check.off": ["off", "không kiểm tra"],
  "check.warn": ["warn of an unknown procedure", "cảnh báo thủ tục không có trong danh mục"],
  "check.refuse": ["refuse an unknown procedure", "từ chối thủ tục không có trong danh mục"],
  "cat.title": ["National procedures", "Thủ tục hành chính quốc gia"],
  "cat.words": ["words", "từ khoá"],
  "cat.words_hint": ["code or name, e.g. khai sinh", "mã hoặc tên, ví dụ: khai sinh"],
  "cat.field_code": ["field code", "mã lĩnh vực"],
  "cat.field_hint": ["MALINHVUC, e.g. HOTICH", "MALINHVUC, ví dụ: HOTICH"],
  "cat.none": ["No procedure matches.", "Không có thủ tục nào khớp."],
  "cat.empty": ["The catalogue is empty: it has not been pulled yet.", "Danh mục đang trống: chưa đồng bộ lần nào."],
  "cat.unavailable": ["The catalogue cannot be read: {m}", "Không đọc được danh mục thủ tục: {m}"],
  "cat.total": ["{n} procedures", "{n} thủ tục"],
  "cat.total_one": ["1 procedure", "1 thủ tục"],
  "cat.code": ["code (MaTTHC)", "mã thủ tục (MaTTHC)"],
  "cat.name": ["name", "tên thủ tục"],
  "cat.fields": ["fields", "lĩnh vực"],
  "cat.synced": ["synced", "đồng bộ lúc"],
  "cat.status": ["status", "tình trạng"],
  "cat.withdrawn": ["withdrawn", "ngừng áp dụng"],
  "cat.withdrawn_long": ["The national portal no longer lists this procedure: it is kept here as last pulled.", "Cổng DVC quốc gia không còn công bố thủ tục này: thông tin dưới đây là bản đã đồng bộ trước đó."],
  "proc.title": ["Procedure", "Thủ tục"],
  "proc.close": ["Close", "Đóng"],
  "proc.not_found": ["The catalogue (as last pulled) has no procedure {q}.", "Danh mục (bản đồng bộ gần nhất) không có thủ tục {q}."],
  "proc.agency": ["carried out by", "cơ quan thực hiện"],
  "proc.legal": ["legal basis", "căn cứ pháp lý"],
  "proc.results": ["Results", "Kết quả thực hiện"],
  "proc.documents": ["Documents to file", "Thành phần hồ sơ"],
  "proc.ways": ["How it is carried out", "Cách thức thực hiện"],
  "proc.none": ["Not given by the portal.", "Cổng không cung cấp."],
  "proc.time": ["time", "thời hạn giải quyết"],
  "proc.fees": ["fees", "phí, lệ phí"],
  "proc.no_fee": ["none listed", "không có"],
  "kenh.1": ["in person", "trực tiếp"],
  "kenh.2": ["online", "trực tuyến"],
  "kenh.3": ["by post", "qua bưu chính công ích"],
});

const PHASES = ["idle", "details", "done", "failed"];
const CHECK_MODES = ["off", "warn", "refuse"];
// After "Sync now", the page refreshes every second until the run has shown (bounded).
const ASKED_FAST_MS = 10000;
let syncAskedAt = 0;

VIEWS["/catalogue"] = { view: "catalogue", show: showCatalogue };

// The view's address with these parameters (empty ones left out).
function catalogueHash(p) {
  const q = new URLSearchParams();
  for (const k of ["q", "linh_vuc", "offset", "code"]) if (p[k]) q.set(k, String(p[k]));
  return "#/catalogue" + (q.toString() ? "?" + q : "");
}
function list(v) { return Array.isArray(v) ? v.slice(0, 200) : []; }
function fieldsText(p) { return list(p.LINHVUCTHUCHIEN).map((l) => (l.TENLINHVUC ? `${l.TENLINHVUC} (${l.MALINHVUC})` : String(l.MALINHVUC ?? ""))).join(", "); }
function withdrawnBadge() { return el("span", { class: "badge cat-withdrawn", text: t("cat.withdrawn") }); }

async function showCatalogue(params, mine) {
  const words = (params.get("q") || "").slice(0, 200);
  const field = (params.get("linh_vuc") || "").slice(0, 50);
  const raw = params.get("offset") || "0";
  const offset = /^[0-9]{1,9}$/.test(raw) ? Number(raw) : 0;
  const code = (params.get("code") || "").slice(0, 50);
  const qs = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
  if (words.trim()) qs.set("q", words.trim());
  if (field.trim()) qs.set("linh_vuc", field.trim());
  const [state, page, detail] = await Promise.all([
    api("GET", "/v1/catalogue/sync"),
    api("GET", "/v1/catalogue/procedures?" + qs).catch((e) => {
      if (e.status !== 503) throw e;
      return { procedures: [], total: 0, unavailable: e.message };
    }),
    code ? api("GET", "/v1/catalogue/procedures/" + encodeURIComponent(code)).catch((e) => ({ error: e })) : null,
  ]);
  if (mine !== generation) return;
  showSyncState(state);

  if (document.activeElement?.closest("#catalogue-filter") == null) { $("#cf-q").value = words; $("#cf-field").value = field; }
  const rows = list(page.procedures);
  const total = typeof page.total === "number" ? page.total : rows.length;
  const go = (p) => { location.hash = catalogueHash({ q: words, linh_vuc: field, ...p }); };
  const tb = $("#catalogue tbody"); tb.replaceChildren();
  for (const p of rows) {
    const link = el("a", { href: catalogueHash({ q: words, linh_vuc: field, offset, code: p.MATTHC }), class: "mono", text: p.MATTHC });
    tb.append(el("tr", { "data-code": p.MATTHC, "data-withdrawn": String(p.withdrawn === true), class: p.withdrawn ? "withdrawn" : null },
      el("td", {}, link), cell(p.TENTTHC), cell(fieldsText(p), "small"), cell(when(p.synced_at), "small"),
      el("td", {}, p.withdrawn ? withdrawnBadge() : null)));
  }
  const filtered = !!(words.trim() || field.trim());
  $("#catalogue-total").textContent = page.unavailable ? "" : total === 1 ? t("cat.total_one") : t("cat.total", { n: total });
  $("#catalogue-empty").textContent = page.unavailable ? t("cat.unavailable", { m: page.unavailable }) : filtered ? t("cat.none") : t("cat.empty");
  $("#catalogue-empty").hidden = rows.length > 0; $("#catalogue").hidden = rows.length === 0;
  $("#view-catalogue").dataset.query = qs.toString(); // which search and page the table shows
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  $("#cp-page").textContent = t("pager.page_of", { n: Math.floor(offset / PAGE_SIZE) + 1, m: pages });
  $("#cp-first").disabled = offset === 0; $("#cp-first").onclick = () => go({});
  $("#cp-prev").disabled = offset === 0; $("#cp-prev").onclick = () => go({ offset: Math.max(0, offset - PAGE_SIZE) });
  $("#cp-next").disabled = offset + rows.length >= total || rows.length === 0; $("#cp-next").onclick = () => go({ offset: offset + PAGE_SIZE });

  const slot = $("#procedure-slot");
  const shown = slot.firstElementChild?.dataset.code;
  if (!code) slot.replaceChildren();
  else if (detail && detail.error) {
    if (detail.error.status !== 404 && detail.error.status !== 400) throw detail.error;
    slot.replaceChildren(el("div", { class: "procedure", "data-code": code }, el("p", { class: "notice not-found", text: t("proc.not_found", { q: code }) })));
  } else {
    slot.replaceChildren(procedureBlock(detail, () => go({ offset })));
    if (shown !== code) slot.scrollIntoView({ block: "start" });
  }
}

function showSyncState(s) {
  const phase = PHASES.includes(s.phase) ? s.phase : "";
  const card = $("#catalogue-sync");
  card.dataset.phase = String(s.phase ?? "");
  card.dataset.started = String(s.started_at ?? "");
  const running = phase === "details";
  const at = running ? (s.started_at ? t("replay.since", { at: when(s.started_at) }) : "") : when(s.finished_at);
  $("#cat-phase").replaceChildren(el("span", { class: "badge phase-" + phase, text: label("phase.", s.phase) }), el("span", { class: "muted small", text: at ? " " + at : "" }));
  $("#cat-progress-fact").hidden = !running;
  const total = Number(s.total) || 0;
  const done = Number(s.done) || 0;
  $("#cat-progress").max = Math.max(1, total); $("#cat-progress").value = Math.min(done, Math.max(1, total));
  $("#cat-count").textContent = t("replay.count", { done, total });
  $("#cat-procedures").textContent = String(s.procedures ?? "");
  $("#cat-last-success").textContent = s.last_success_at ? when(s.last_success_at) : t("cat.never");
  $("#cat-check").textContent = CHECK_MODES.includes(s.check) ? t("check." + s.check) : String(s.check ?? "");
  $("#cat-check").dataset.mode = String(s.check ?? "");
  const every = Number(s.sync_every_secs) || 0;
  $("#cat-every").textContent = every <= 0 ? t("cat.on_demand")
    : every % 3600 === 0 ? t("cat.every_hours", { n: every / 3600 })
    : every % 60 === 0 ? t("cat.every_min", { n: every / 60 }) : t("cat.every_secs", { n: every });
  const failedDetails = Number(s.failed_details) || 0;
  $("#cat-failed-details").hidden = failedDetails === 0;
  $("#cat-failed-details").textContent = t("cat.failed_details", { n: failedDetails });
  $("#cat-last-error").hidden = !s.last_error;
  $("#cat-last-error").textContent = s.last_error ? t("cat.last_error", { m: s.last_error }) : "";
  // A run going on, or one just asked for: every second.
  fast = running || Date.now() - syncAskedAt < ASKED_FAST_MS;
}

// One procedure as the portal described it: name, fields, results, documents, ways.
function procedureBlock(p, close) {
  const shut = el("button", { type: "button", class: "quiet", id: "proc-close", text: t("proc.close") });
  shut.addEventListener("click", close);
  const head = el("div", { class: "card-head" },
    el("h2", {}, t("proc.title") + " ", el("span", { class: "mono ident", text: p.MATTHC }), " ", el("span", { class: "proc-name", text: p.TENTTHC ?? "" })),
    el("div", {}, p.withdrawn ? withdrawnBadge() : null, " ", shut));
  const fact = (k, v, cls) => (v ? el("div", {}, el("dt", { text: t(k) }), el("dd", { class: cls, text: String(v) })) : null);
  const facts = el("dl", { class: "facts" },
    fact("cat.fields", fieldsText(p)), fact("proc.agency", p.COQUANTHUCHIEN), fact("cat.synced", when(p.synced_at), "small"));
  const block = el("div", { class: "procedure", id: "procedure", "data-code": p.MATTHC, "data-withdrawn": String(p.withdrawn === true) }, head);
  if (p.withdrawn) block.append(el("p", { class: "banner", text: t("cat.withdrawn_long") }));
  block.append(facts);
  if (p.CANCUPHAPLY) block.append(el("p", { class: "hint" }, el("strong", { text: t("proc.legal") + ": " }), String(p.CANCUPHAPLY)));

  const named = (items, codeKey, nameKey) => {
    const ul = el("ul", { class: "named" });
    for (const x of items) ul.append(el("li", {}, el("span", { text: String(x?.[nameKey] ?? "") }), " ", el("span", { class: "mono small muted", text: String(x?.[codeKey] ?? "") })));
    return items.length ? ul : el("p", { class: "empty", text: t("proc.none") });
  };
  block.append(el("h3", { text: t("proc.results") }), el("div", { id: "proc-results" }, named(list(p.KETQUATHUCHIEN), "MAKETQUA", "TENKETQUA")));
  const docs = list(p.THANHPHANHOSO).flatMap((part) => list(part?.GIAYTO)).slice(0, 200);
  block.append(el("h3", { text: t("proc.documents") }), el("div", { id: "proc-documents" }, named(docs, "MAGIAYTO", "TENGIAYTO")));

  const ways = el("ul", { class: "named", id: "proc-ways" });
  for (const w of list(p.CACHTHUCTHUCHIEN)) {
    for (const time of list(w?.THOIGIAN).length ? list(w.THOIGIAN) : [{}]) {
      const fees = list(time.PHILEPHI).map((f) => [f?.MUCPHI, f?.MOTA].filter((x) => x !== undefined && x !== null && x !== "").join(" · ")).join("; ");
      ways.append(el("li", {},
        el("strong", { text: label("kenh.", w?.KENH) }),
        time.THOIGIANGIAIQUYET ? el("span", { text: ` · ${t("proc.time")}: ${time.THOIGIANGIAIQUYET} ${time.DONVITINH ?? ""}`.trimEnd() }) : null,
        el("span", { class: "muted", text: ` · ${t("proc.fees")}: ${fees || t("proc.no_fee")}` })));
    }
  }
  block.append(el("h3", { text: t("proc.ways") }), ways.childElementCount ? ways : el("p", { class: "empty", id: "proc-ways", text: t("proc.none") }));
  return block;
}

$("#catalogue-filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  // A new search reads from the first page.
  const next = catalogueHash({ q: $("#cf-q").value.trim(), linh_vuc: $("#cf-field").value.trim() });
  if (location.hash === next) render(); else location.hash = next;
});
$("#cat-sync-now").addEventListener("click", async () => {
  const out = $("#cat-action");
  try {
    await api("POST", "/v1/catalogue/sync");
    syncAskedAt = Date.now();
    out.textContent = t("cat.asked"); out.className = "ok";
  } catch (e) {
    out.textContent = e.status === 403 ? t("cat.forbidden") : t("act.failed", { msg: e.message }); out.className = "error";
  }
  render();
});
