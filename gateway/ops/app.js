// The operators' dashboard: reads the JSON API with the key entered once (kept for this tab
// only), in Vietnamese or English (the choice is remembered in this browser). Views are
// addressed by the URL fragment so that a link or a reload shows the same thing:
//   #/                      queues, failed messages (filter: ?ordering_key=), replays, audit
//   #/payments?status=&MaHoSo=&since=   the payments list
//   #/inbound?source=&offset=           dossiers handed down (portal push, link-up)
//   #/find/TEXT             a search: a MaThamChieu or a MaHoSo, whichever exists
//   #/dossier/MAHOSO, #/payment/MATHAMCHIEU   one story as a timeline
//   #/catalogue?q=&linh_vuc=&offset=&code=    the national procedures (catalogue.js)
// Every value from the API goes into the page as text (textContent), never as markup.
"use strict";
const $ = (s) => document.querySelector(s);

// A MaThamChieu as the gateway makes them (the API's path pattern for a payment).
const REFERENCE = /^HCC[0-9]{6}[A-HJ-NP-Z2-9]{8}$/;
const REFRESH_MS = 5000;
const REPLAY_REFRESH_MS = 1000;
const PAGE_SIZE = 50;

const TEXT = {
  subtitle: ["Operations console", "Bảng điều khiển vận hành"],
  "login.title": ["Connect", "Đăng nhập"],
  "login.label": ["API key (operator to watch, admin to act)", "Khoá API (khoá vận hành để theo dõi, khoá quản trị để thao tác)"],
  "login.connect": ["Connect", "Kết nối"],
  "login.hint": ["The key is kept in this browser tab only.", "Khoá chỉ được giữ trong thẻ trình duyệt này."],
  "nav.overview": ["Queues", "Hàng đợi"],
  "nav.payments": ["Payments", "Thanh toán"],
  "nav.inbound": ["Inbound", "Hồ sơ tiếp nhận từ cổng"],
  "nav.catalogue": ["Catalogue", "Danh mục thủ tục"],
  "nav.forget": ["Forget key", "Xoá khoá"],
  "search.placeholder": ["MaHoSo (dossier code) or MaThamChieu (payment reference)", "Mã hồ sơ (MaHoSo) hoặc mã tham chiếu thanh toán (MaThamChieu)"],
  "search.go": ["Search", "Tra cứu"],
  "queues.title": ["Queues", "Hàng đợi gửi đi"],
  "queues.name": ["queue", "hàng đợi"],
  "queues.ready": ["ready", "sẵn sàng"],
  "queues.scheduled": ["scheduled", "chờ thử lại"],
  "queues.in_flight": ["in flight", "đang gửi"],
  "queues.dead": ["failed", "lỗi"],
  "queues.blocked": ["blocked", "bị chặn"],
  "queues.delivered": ["delivered", "đã gửi"],
  "queues.oldest": ["oldest waiting", "chờ lâu nhất"],
  "queues.paused": ["paused", "tạm dừng"],
  "queues.breaker": ["breaker", "ngắt mạch"],
  "queues.history": ["last hour (waiting)", "1 giờ qua (đang chờ)"],
  "queues.is_paused": ["PAUSED", "ĐANG DỪNG"],
  no: ["no", "không"],
  "breaker.closed": ["closed", "bình thường"],
  "breaker.half_open": ["testing", "đang thử lại"],
  "breaker.open": ["open", "đang ngắt"],
  "dead.title": ["Failed messages (not delivered)", "Thông điệp lỗi, chưa gửi được"],
  "dead.filter": ["MaHoSo (ordering key)", "Mã hồ sơ"],
  "dead.apply": ["Filter", "Lọc"],
  "dead.clear": ["Clear", "Bỏ lọc"],
  "dead.explain": [
    "The portal or a centre refused these messages. Later updates of the same dossier wait behind them until they are replayed or discarded.",
    "Cổng DVC quốc gia hoặc trung tâm đã từ chối các thông điệp này. Các cập nhật sau của cùng hồ sơ phải chờ đến khi chúng được gửi lại hoặc huỷ bỏ.",
  ],
  "dead.none": ["None. Everything accepted is flowing.", "Không có. Mọi thông điệp đã tiếp nhận đang được gửi bình thường."],
  "dead.none_for": ["No failed message for MaHoSo {key}.", "Không có thông điệp lỗi nào của hồ sơ {key}."],
  "dead.queue": ["queue", "hàng đợi"],
  "dead.key": ["MaHoSo", "Mã hồ sơ"],
  "dead.kind": ["message", "loại thông điệp"],
  "dead.attempts": ["attempts", "số lần gửi"],
  "dead.reason": ["reason", "lý do"],
  "dead.id": ["id", "mã thông điệp"],
  "dead.more": ["Only the first page is shown: filter by MaHoSo to narrow it.", "Chỉ hiển thị trang đầu: lọc theo mã hồ sơ để thu hẹp."],
  "dead.replay": ["Replay", "Gửi lại"],
  "dead.discard": ["Discard", "Huỷ bỏ"],
  "dead.confirm_discard": ["Discard {id} for good?", "Huỷ bỏ vĩnh viễn thông điệp {id}?"],
  "dead.replayed": ["Replayed {id}", "Đã gửi lại {id}"],
  "dead.discarded": ["Discarded {id}", "Đã huỷ bỏ {id}"],
  "act.forbidden": ["This key may only watch: replay and discard need an admin key.", "Khoá này chỉ được xem: gửi lại và huỷ bỏ cần khoá quản trị."],
  "act.failed": ["Failed: {msg}", "Không thực hiện được: {msg}"],
  "replay.label": ["Replay the failed messages of", "Gửi lại các thông điệp lỗi của hàng đợi"],
  "replay.rate": ["at most, per second", "tối đa mỗi giây"],
  "replay.go": ["Start replay", "Bắt đầu gửi lại"],
  "replay.scope_all": ["(all of the queue)", "(toàn bộ hàng đợi)"],
  "replay.scope_key": ["(only MaHoSo {key})", "(chỉ hồ sơ {key})"],
  "replay.started": ["Replay started: {total} to send, {rate} per second.", "Đã bắt đầu gửi lại {total} thông điệp, {rate} thông điệp mỗi giây."],
  "replay.title": ["Replay of {queue} at {rate} per second", "Gửi lại hàng đợi {queue}, {rate} thông điệp mỗi giây"],
  "replay.count": ["{done} of {total}", "{done} / {total}"],
  "replay.running": ["running", "đang chạy"],
  "replay.finished": ["finished", "đã xong"],
  "replay.cancelled": ["cancelled", "đã dừng"],
  "replay.since": ["started {at}", "bắt đầu {at}"],
  "replay.until": ["finished {at}", "kết thúc {at}"],
  "audit.title": ["Recent actions and deliveries", "Nhật ký gần đây"],
  "payments.title": ["Payments", "Thanh toán"],
  "payments.status": ["status", "trạng thái"],
  "payments.any": ["any", "tất cả"],
  "payments.mahoso": ["MaHoSo", "Mã hồ sơ"],
  "payments.since": ["updated since", "cập nhật từ"],
  "payments.ref": ["MaThamChieu", "Mã tham chiếu"],
  "payments.amount": ["amount", "số tiền"],
  "payments.provider": ["provider", "kênh thanh toán"],
  "payments.duplicates": ["paid again", "nộp thừa"],
  "payments.created": ["created", "tạo lúc"],
  "payments.updated": ["updated", "cập nhật lúc"],
  "payments.none": ["No payment matches these filters.", "Không có khoản thanh toán nào khớp bộ lọc."],
  "payments.unavailable": ["Payments cannot be read: {m}", "Không đọc được danh sách thanh toán: {m}"],
  "unmatched.title": ["Bank money that matched nothing (open)", "Tiền ngân hàng chưa khớp khoản nào (đang mở)"],
  "unmatched.none": ["No open bank credit or reversal waits for a person.", "Không có khoản ghi có hay hoàn trả nào đang chờ xử lý."],
  "unmatched.booked": ["booked", "ngày hạch toán"],
  "unmatched.bank": ["bank", "ngân hàng"],
  "unmatched.account": ["account", "tài khoản"],
  "unmatched.reason": ["why", "lý do"],
  "unmatched.text": ["transfer note", "nội dung chuyển khoản"],
  "unmatched.id": ["id", "mã"],
  "unmatched.no_reference": ["no reference", "không có mã tham chiếu"],
  "unmatched.ambiguous_reference": ["several references", "nhiều mã tham chiếu"],
  "unmatched.amount_mismatch": ["another amount", "sai số tiền"],
  "unmatched.wrong_account": ["another account", "sai tài khoản thụ hưởng"],
  "unmatched.unmatched_reversal": ["reversal of nothing", "hoàn trả không khớp"],
  "unmatched.possible_repeat": ["possible repeat", "có thể trùng lặp"],
  "unmatched.already_paid": ["fee already paid", "khoản phí đã nộp"],
  "pay.pending": ["pending", "chờ thanh toán"],
  "pay.paid": ["paid", "đã thanh toán"],
  "pay.failed": ["failed", "thất bại"],
  "pay.amount_mismatch": ["amount mismatch", "sai số tiền"],
  "pay.reversed": ["reversed", "đã hoàn trả"],
  "pay.expired": ["expired (not paid in time)", "hết hạn (chưa thanh toán)"],
  "pay.duplicate": ["paid twice", "nộp trùng"],
  "inbound.title": ["Dossiers handed down by the national portal and the link-up", "Hồ sơ tiếp nhận từ Cổng DVC quốc gia và hệ thống liên thông"],
  "inbound.source": ["source", "nguồn"],
  "inbound.all": ["all", "tất cả"],
  "inbound.procedure": ["procedure (MaTTHC)", "thủ tục (MaTTHC)"],
  "inbound.received": ["received", "tiếp nhận lúc"],
  "inbound.files": ["files", "số tệp"],
  "inbound.ack": ["acknowledgement", "xác nhận với nguồn"],
  "inbound.ack_none": ["—", "—"],
  "inbound.acked": ["acknowledged {at}", "đã xác nhận {at}"],
  "inbound.ack_waiting": ["waiting for the centre", "chờ trung tâm tiếp nhận"],
  "inbound.total": ["{n} dossiers", "{n} hồ sơ"],
  "inbound.total_one": ["1 dossier", "1 hồ sơ"],
  "inbound.none": ["No dossier handed down matches this filter.", "Không có hồ sơ tiếp nhận nào khớp bộ lọc."],
  "inbound.unavailable": ["Dossiers handed down cannot be read: {m}", "Không đọc được danh sách hồ sơ tiếp nhận: {m}"],
  "source.dvcqg": ["national portal (push)", "Cổng DVC quốc gia (đẩy sang)"],
  "source.dvclt": ["link-up (DVCLT)", "hệ thống liên thông (DVCLT)"],
  "file.name": ["file", "tên tệp"],
  "file.type": ["type", "loại"],
  "file.size": ["size", "dung lượng"],
  "dossier.inbound": ["Handed down to the province", "Hồ sơ tiếp nhận từ cổng"],
  "dossier.no_files": ["No file came with it.", "Hồ sơ không kèm tệp nào."],
  "dest.dvcqg": ["to the national portal", "gửi lên Cổng DVC quốc gia"],
  "dest.inbound": ["to the centre (handed down)", "chuyển về trung tâm (hồ sơ tiếp nhận)"],
  "dest.dvclt": ["to the link-up (DVCLT)", "gửi lên hệ thống liên thông (DVCLT)"],
  "pager.first": ["First page", "Trang đầu"],
  "pager.previous": ["Previous page", "Trang trước"],
  "pager.page_of": ["Page {n} of {m}", "Trang {n} / {m}"],
  "pager.next": ["Next page", "Trang sau"],
  "pager.page": ["Page {n}", "Trang {n}"],
  "msg.queued": ["waiting", "chờ gửi"],
  "msg.in_flight": ["being sent", "đang gửi"],
  "msg.retrying": ["retrying", "đang thử lại"],
  "msg.delivered": ["delivered", "đã gửi"],
  "msg.dead": ["refused", "bị từ chối"],
  "msg.blocked": ["blocked", "bị chặn"],
  "msg.discarded": ["discarded", "đã huỷ bỏ"],
  "kind.dossier.sync": ["Dossier data", "Đồng bộ hồ sơ"],
  "kind.dossier.progress": ["Progress update", "Cập nhật tiến độ xử lý"],
  "kind.dossier.received": ["Dossier handed to the centre", "Chuyển hồ sơ cho trung tâm"],
  "kind.dossier.status": ["Status sent back to the source", "Gửi trạng thái xử lý về nguồn"],
  "dossier.title": ["Dossier", "Hồ sơ"],
  "dossier.portal": ["Status on the national portal", "Trạng thái trên Cổng DVC quốc gia"],
  "dossier.portal_none": ["not on the portal yet", "chưa lên Cổng"],
  "dossier.messages": ["Messages", "Số thông điệp"],
  "dossier.failed": ["Refused", "Bị từ chối"],
  "dossier.delivered": ["Delivered", "Đã gửi"],
  "dossier.blocked": [
    "Blocked: the portal refused a message of this dossier. Later updates wait until it is replayed or discarded.",
    "Hồ sơ đang bị chặn: Cổng DVC quốc gia đã từ chối một thông điệp của hồ sơ. Các cập nhật sau phải chờ đến khi thông điệp đó được gửi lại hoặc huỷ bỏ.",
  ],
  "dossier.show_dead": ["Show in failed messages", "Xem trong danh sách lỗi"],
  "dossier.story": ["Timeline", "Diễn biến"],
  "step.accepted": ["Accepted from the centre", "Tiếp nhận từ trung tâm"],
  "step.accepted.inbound": ["Received from the source", "Tiếp nhận từ nguồn"],
  "step.delivered.inbound": ["Delivered to the centre", "Đã chuyển cho trung tâm"],
  "step.delivered.dvclt": ["Delivered to the link-up", "Đã gửi lên hệ thống liên thông"],
  "step.attempts": ["Sent {n} times", "Đã gửi {n} lần"],
  "step.attempt": ["Sent once", "Đã gửi 1 lần"],
  "step.delivered": ["Delivered to the national portal", "Đã gửi lên Cổng DVC quốc gia"],
  "step.dead": ["Refused, not delivered", "Bị từ chối, chưa gửi được"],
  "step.blocked": ["Waiting: an earlier message of this dossier was refused", "Đang chờ: thông điệp trước của hồ sơ bị từ chối"],
  "step.queued": ["Waiting to be sent", "Đang chờ gửi"],
  "step.retrying": ["Failed for now, will try again", "Tạm thời lỗi, sẽ gửi lại"],
  "step.in_flight": ["Being sent now", "Đang gửi"],
  "step.discarded": ["Discarded by an operator", "Người vận hành đã huỷ bỏ"],
  "step.technical": ["Technical detail", "Chi tiết kỹ thuật"],
  "payment.title": ["Payment", "Thanh toán"],
  "payment.history": ["Timeline", "Diễn biến"],
  "payment.no_history": ["No event recorded.", "Chưa ghi nhận diễn biến nào."],
  "payment.agency": ["receiving agency (MaDonVi)", "đơn vị thụ hưởng (MaDonVi)"],
  "payment.transaction": ["provider's transaction", "mã giao dịch của kênh"],
  "payment.confirmed_by": ["confirmed by", "xác nhận qua"],
  "payment.duplicates": ["extra paid transactions (to refund)", "giao dịch nộp thừa (cần hoàn trả)"],
  "payment.dossier": ["dossier", "hồ sơ"],
  "payment.qr": ["Scan with a banking app (VietQR)", "Quét bằng ứng dụng ngân hàng (VietQR)"],
  "payment.qr_alt": ["VietQR code of payment {r}", "Mã VietQR của khoản thanh toán {r}"],
  "payment.time_left": ["time left", "thời gian còn lại"],
  "payment.left": ["{m} min {s} s", "{m} phút {s} giây"],
  "payment.over": ["over: a late transfer still pays it", "đã hết: chuyển khoản muộn vẫn được ghi nhận"],
  "ev.created": ["Created with the provider", "Tạo yêu cầu thanh toán"],
  "ev.callback_received": ["Notice received from the provider", "Nhận thông báo từ kênh thanh toán"],
  "ev.callback_verified": ["Provider's notice verified", "Đã xác thực thông báo của kênh"],
  "ev.callback_refused": ["Provider's notice refused", "Từ chối thông báo của kênh"],
  "ev.paid": ["Paid", "Đã thanh toán"],
  "ev.failed": ["Payment failed", "Thanh toán thất bại"],
  "ev.amount_mismatch": ["Amount does not match: for a person to check", "Số tiền không khớp: cần người kiểm tra"],
  "ev.duplicate": ["Paid a second time: to refund", "Nộp lần thứ hai: cần hoàn trả"],
  "ev.reversed": ["Reversed by the provider", "Kênh thanh toán đã hoàn trả giao dịch"],
  "ev.expired": ["Expired: not paid within its time; money that still arrives pays it", "Hết hạn: chưa thanh toán trong thời hạn; tiền đến muộn vẫn được ghi nhận"],
  "ev.webhook_queued": ["Centre notified (webhook queued)", "Đã báo cho trung tâm (webhook)"],
  "ev.reconciled": ["Found by reconciliation", "Phát hiện qua đối soát"],
  "find.none": ["No dossier and no payment with the code {q}.", "Không tìm thấy hồ sơ hay khoản thanh toán nào có mã {q}."],
  "find.no_dossier": ["No dossier {q} has been accepted by the gateway.", "Cổng kết nối chưa tiếp nhận hồ sơ nào có mã {q}."],
  "find.no_payment": ["No payment with the reference {q}.", "Không có khoản thanh toán nào có mã tham chiếu {q}."],
  "find.invalid": ["{q} is neither a MaHoSo nor a MaThamChieu.", "{q} không phải mã hồ sơ hay mã tham chiếu thanh toán hợp lệ."],
  "status.none": ["not connected", "chưa kết nối"],
  "status.updated": ["updated {t}", "cập nhật {t}"],
  "status.refused": ["key refused", "khoá bị từ chối"],
  "status.cannot": ["cannot load: {m}", "không tải được: {m}"],
  loading: ["Loading…", "Đang tải…"],
  "portal.1": ["Newly registered", "Mới đăng ký"],
  "portal.2": ["Received", "Được tiếp nhận"],
  "portal.3": ["Refused at reception", "Không được tiếp nhận"],
  "portal.4": ["Being processed", "Đang xử lý"],
  "portal.5": ["Documents requested", "Yêu cầu bổ sung giấy tờ"],
  "portal.6": ["Fees requested", "Yêu cầu thực hiện nghĩa vụ tài chính"],
  "portal.7": ["Withdrawn by the applicant", "Công dân yêu cầu rút hồ sơ"],
  "portal.8": ["Processing stopped", "Dừng xử lý"],
  "portal.9": ["Processing finished", "Đã xử lý xong"],
  "portal.10": ["Result returned", "Đã trả kết quả"],
};

let key = sessionStorage.getItem("hcc-key") || "";
let lang = localStorage.getItem("hcc-lang") === "en" ? "en" : "vi";
const MESSAGE_STATES = ["queued", "in_flight", "retrying", "delivered", "dead", "blocked", "discarded"];
const PAYMENT_STATES = ["pending", "paid", "failed", "amount_mismatch", "reversed", "expired", "duplicate"];

function has(k) { return Object.prototype.hasOwnProperty.call(TEXT, k); }
function t(k, vars) {
  const pair = has(k) ? TEXT[k] : [k, k];
  let s = pair[lang === "en" ? 0 : 1];
  if (vars) for (const [name, v] of Object.entries(vars)) s = s.split("{" + name + "}").join(String(v));
  return s;
}
// A label for a value the API names (a status, an event), or the value itself when unknown.
function label(prefix, v) { return has(prefix + v) ? t(prefix + v) : String(v); }

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const n of document.querySelectorAll("[data-i18n]")) n.textContent = t(n.dataset.i18n);
  for (const n of document.querySelectorAll("[data-i18n-placeholder]")) n.placeholder = t(n.dataset.i18nPlaceholder);
  for (const n of document.querySelectorAll("[data-i18n-title]")) n.title = t(n.dataset.i18nTitle);
  for (const b of document.querySelectorAll("#lang button")) b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
  if (!key) setStatus(t("status.none"), "");
}

// Builds an element; children are nodes or strings (strings become text nodes).
function el(tag, props, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === "text") n.textContent = v;
    else if (k === "class") n.className = v;
    else n.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}
function cell(text, cls) { return el("td", { class: cls, text: text === null || text === undefined ? "" : String(text) }); }
function badge(kind, state) {
  const known = (kind === "pay" ? PAYMENT_STATES : MESSAGE_STATES).includes(state);
  return el("span", { class: known ? `badge ${kind}-${state}` : "badge", text: label(kind + ".", state) });
}
function dossierLink(ma) { return el("a", { href: "#/dossier/" + encodeURIComponent(ma), text: ma }); }
function paymentLink(ref) { return el("a", { href: "#/payment/" + encodeURIComponent(ref), text: ref, class: "mono" }); }
function locale() { return lang === "en" ? "en-GB" : "vi-VN"; }
function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString(locale(), { dateStyle: "short", timeStyle: "medium" });
}
function money(n) { return typeof n === "number" ? new Intl.NumberFormat("vi-VN").format(n) + " ₫" : String(n ?? ""); }
function setStatus(text, cls) { $("#status").textContent = text; $("#status").className = cls; }

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + key } };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { const e = new Error(data.detail || data.title || "HTTP " + r.status); e.status = r.status; throw e; }
  return data;
}

function spark(points) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("viewBox", "0 0 160 28");
  if (points.length > 1) {
    const max = Math.max(1, ...points);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.map((v, i) => `${(i / (points.length - 1)) * 160},${27 - (v / max) * 26}`).join(" "));
    svg.appendChild(line);
  }
  return svg;
}

// ---- routing ---------------------------------------------------------------------------
function current() {
  const h = location.hash.replace(/^#/, "") || "/";
  const i = h.indexOf("?");
  return { path: i < 0 ? h : h.slice(0, i), params: new URLSearchParams(i < 0 ? "" : h.slice(i + 1)) };
}
let generation = 0; // a render started before the latest navigation is dropped
let timer = null;
let fast = false; // a replay or a catalogue sync runs: refresh every second
// Views the other scripts add (catalogue.js): path → {view, show(params, mine)}.
const VIEWS = {};

async function render() {
  clearTimeout(timer);
  if (!key) return;
  const mine = ++generation;
  fast = false; // the view says whether something runs
  const { path, params } = current();
  let m;
  let view = "overview";
  let job;
  if ((m = path.match(/^\/dossier\/(.+)$/))) { view = "search"; job = () => showDossier(decodeURIComponent(m[1]), mine); }
  else if ((m = path.match(/^\/payment\/(.+)$/))) { view = "search"; job = () => showPayment(decodeURIComponent(m[1]), mine); }
  else if ((m = path.match(/^\/find\/(.+)$/))) { view = "search"; job = () => find(decodeURIComponent(m[1]), mine); }
  else if (path === "/payments") { view = "payments"; job = () => showPayments(params, mine); }
  else if (path === "/inbound") { view = "inbound"; job = () => showInbound(params, mine); }
  else if (Object.hasOwn(VIEWS, path)) { view = VIEWS[path].view; job = () => VIEWS[path].show(params, mine); }
  else job = () => showOverview(params, mine);
  for (const v of ["overview", "search", "payments", "inbound", ...Object.values(VIEWS).map((x) => x.view)]) $("#view-" + v).hidden = v !== view;
  // The search box holds the code being shown, and nothing once the operator has moved on.
  if (view !== "search" && document.activeElement !== $("#search")) $("#search").value = "";
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === view);
  try {
    await job();
    if (mine === generation) setStatus(t("status.updated", { t: new Date().toLocaleTimeString(locale()) }), "");
  } catch (e) {
    if (mine !== generation) return;
    setStatus(e.status === 401 ? t("status.refused") : t("status.cannot", { m: e.message }), "error");
    if (e.status === 401) { sessionStorage.removeItem("hcc-key"); key = ""; show(); return; }
  }
  if (mine === generation) timer = setTimeout(render, fast ? REPLAY_REFRESH_MS : REFRESH_MS);
}

// ---- overview: queues, failed messages, replays, audit --------------------------------
async function showOverview(params, mine) {
  const filter = (params.get("ordering_key") || "").trim();
  const [{ queues }, history, { entries }] = await Promise.all([api("GET", "/v1/queues"), api("GET", "/v1/queues/history"), api("GET", "/v1/audit?limit=15")]);
  const dead = [];
  let more = false;
  for (const q of queues) {
    if (!(q.dead > 0)) continue;
    const qs = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filter) qs.set("ordering_key", filter);
    const page = await api("GET", `/v1/queues/${encodeURIComponent(q.name)}/dead?${qs}`);
    for (const d of page.dead) dead.push([q.name, d]);
    if (page.next_cursor) more = true;
  }
  if (mine !== generation) return;

  const qb = $("#queues tbody"); qb.replaceChildren();
  for (const q of queues) {
    const tr = el("tr", {},
      cell(q.name, "mono"), cell(q.ready, "num"), cell(q.scheduled, "num"), cell(q.in_flight, "num"), cell(q.dead, q.dead ? "num alert" : "num"),
      cell(q.blocked, q.blocked ? "num warn" : "num"), cell(q.delivered_total, "num"), cell(Number(q.oldest_ready_age_seconds || 0).toFixed(1) + " s", "num"),
      cell(q.paused ? t("queues.is_paused") : t("no"), q.paused ? "alert" : "muted"));
    const b = q.breaker && has("breaker." + q.breaker) ? q.breaker : "";
    tr.append(cell(q.breaker ? label("breaker.", q.breaker) : "–", b ? "breaker-" + b : "muted"));
    tr.append(el("td", {}, spark(history.samples.map((s) => (s.queues[q.name] || {}).waiting || 0))));
    qb.appendChild(tr);
  }

  if (document.activeElement !== $("#dead-key")) $("#dead-key").value = filter;
  const db = $("#dead tbody"); db.replaceChildren();
  $("#dead-empty").textContent = filter ? t("dead.none_for", { key: filter }) : t("dead.none");
  $("#dead-empty").hidden = dead.length > 0; $("#dead").hidden = dead.length === 0; $("#dead-more").hidden = !more;
  for (const [qn, d] of dead) {
    const tr = el("tr", { "data-id": d.id });
    const reason = el("td", { class: "reason" });
    if (d.plain_reason) reason.append(el("div", { class: "plain", text: d.plain_reason[lang] || d.plain_reason.en || "", title: d.plain_reason[lang === "en" ? "vi" : "en"] || "" }));
    if (d.last_error) reason.append(el("div", { class: "technical", text: d.last_error }));
    const actions = el("td", { class: "actions" });
    const replay = el("button", { type: "button", "data-action": "replay", text: t("dead.replay") });
    replay.onclick = () => act("POST", `/v1/queues/${encodeURIComponent(qn)}/dead/${encodeURIComponent(d.id)}/replay`, t("dead.replayed", { id: d.id }));
    const discard = el("button", { type: "button", "data-action": "discard", class: "danger", text: t("dead.discard") });
    discard.onclick = () => { if (confirm(t("dead.confirm_discard", { id: d.id }))) act("DELETE", `/v1/queues/${encodeURIComponent(qn)}/dead/${encodeURIComponent(d.id)}`, t("dead.discarded", { id: d.id })); };
    actions.append(replay, discard);
    tr.append(cell(qn, "mono"), el("td", {}, dossierLink(d.ordering_key)), cell(label("kind.", d.kind), "nowrap"), cell(d.attempts, "num"), reason,
      el("td", { class: "mono small", title: d.id, text: d.id.slice(0, 8) + "…" }), actions);
    db.appendChild(tr);
  }

  // The replay form offers every queue, the ones with failed messages first.
  const sel = $("#replay-queue");
  const names = queues.map((q) => q.name);
  if ([...sel.options].map((o) => o.value).join() !== names.join()) {
    const keep = sel.value;
    sel.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
    const first = queues.find((q) => q.dead > 0);
    sel.value = names.includes(keep) ? keep : first ? first.name : names[0] || "";
  }
  $("#replay-scope").textContent = filter ? t("replay.scope_key", { key: filter }) : t("replay.scope_all");

  const rb = $("#replays"); rb.replaceChildren();
  fast = false;
  for (const q of queues) {
    const r = q.replay;
    if (!r) continue;
    if (r.state === "running") fast = true;
    const bar = el("progress", { max: String(Math.max(1, r.total)), value: String(r.done) });
    const state = has("replay." + r.state) ? r.state : "";
    rb.append(el("div", { class: "replay-row", "data-queue": q.name, "data-state": r.state },
      el("div", { class: "replay-title", text: t("replay.title", { queue: q.name, rate: r.rate_per_sec }) }),
      bar,
      el("span", { class: "replay-count", text: t("replay.count", { done: r.done, total: r.total }) }),
      el("span", { class: "badge replay-" + state, text: label("replay.", r.state) }),
      el("span", { class: "muted small", text: r.finished_at ? t("replay.until", { at: when(r.finished_at) }) : t("replay.since", { at: when(r.started_at) }) })));
  }

  const ab = $("#audit"); ab.replaceChildren();
  for (const e of entries) {
    ab.appendChild(el("li", {}, el("time", { text: when(e.at) }), el("span", { class: "actor", text: e.actor }), el("span", { class: "action", text: e.action }),
      el("span", { text: e.target + (e.detail ? "  " + e.detail : "") })));
  }
}

async function act(method, path, done, body) {
  try { const r = await api(method, path, body); $("#action-result").textContent = typeof done === "function" ? done(r) : done; $("#action-result").className = "ok"; }
  catch (e) { $("#action-result").textContent = e.status === 403 ? t("act.forbidden") : t("act.failed", { msg: e.message }); $("#action-result").className = "error"; }
  render();
}

// ---- the search box: a payment reference, else a dossier ------------------------------
async function find(q, mine) {
  if (REFERENCE.test(q)) {
    try { return await showPayment(q, mine, true); }
    catch (e) { if (e.status !== 404 && e.status !== 503) throw e; }
  }
  return showDossier(q, mine, true);
}

function notice(text, cls) { $("#result").replaceChildren(el("section", { class: "card" }, el("p", { class: "notice " + (cls || ""), text }))); }

async function showDossier(ma, mine, searched) {
  let d;
  try { d = await api("GET", "/v1/dossiers/" + encodeURIComponent(ma)); }
  catch (e) {
    if (mine !== generation) return;
    if (e.status === 404) return notice(searched && REFERENCE.test(ma) ? t("find.none", { q: ma }) : t("find.no_dossier", { q: ma }), "not-found");
    if (e.status === 400 || e.status === 422) return notice(t("find.invalid", { q: ma }), "not-found");
    throw e;
  }
  if (mine !== generation) return;
  const msgs = Array.isArray(d.messages) ? d.messages : [];
  const refused = msgs.filter((m) => m.status === "dead").length;
  const delivered = msgs.filter((m) => m.status === "delivered").length;
  const onPortal = d.portal_status !== null && d.portal_status !== undefined;
  const portal = onPortal ? `${d.portal_status} · ${label("portal.", d.portal_status)}` : t("dossier.portal_none");
  const card = el("section", { class: "card story", id: "dossier" },
    el("div", { class: "card-head" },
      el("h2", {}, t("dossier.title") + " ", el("span", { class: "mono ident", text: d.MaHoSo })),
      d.blocked ? el("span", { class: "badge msg-blocked", text: t("msg.blocked") }) : null));
  if (d.blocked) {
    const link = el("a", { href: "#/?ordering_key=" + encodeURIComponent(d.MaHoSo), text: t("dossier.show_dead") });
    card.append(el("div", { class: "banner", role: "alert", id: "blocked-banner" }, el("span", { text: t("dossier.blocked") }), " ", link));
  }
  // A dossier handed down came from the portal or the link-up: "not on the portal yet" would mislead.
  const portalFact = onPortal || !d.inbound ? el("div", {}, el("dt", { text: t("dossier.portal") }), el("dd", { class: "portal-status", text: portal })) : null;
  card.append(el("dl", { class: "facts" },
    portalFact,
    el("div", {}, el("dt", { text: t("dossier.messages") }), el("dd", { class: "num", text: String(msgs.length) })),
    el("div", {}, el("dt", { text: t("dossier.delivered") }), el("dd", { class: "num", text: String(delivered) })),
    el("div", {}, el("dt", { text: t("dossier.failed") }), el("dd", { class: refused ? "num alert" : "num", text: String(refused) }))));
  if (d.inbound) card.append(inboundBlock(d.inbound));
  card.append(el("h3", { text: t("dossier.story") }));
  const tl = el("ol", { class: "timeline" });
  for (const m of msgs) tl.append(messageStory(m));
  card.append(tl);
  $("#result").replaceChildren(card);
}

// One message's life: accepted, sent n times, and where it stands.
function messageStory(m) {
  const state = MESSAGE_STATES.includes(m.status) ? m.status : "queued";
  const dest = typeof m.destination === "string" ? m.destination : "";
  const li = el("li", { class: "event st-" + state, "data-id": m.id, "data-status": state, "data-destination": dest });
  li.append(el("div", { class: "event-head" },
    el("strong", { text: label("kind.", m.kind) }), badge("msg", m.status),
    dest ? el("span", { class: "direction dir-" + (has("dest." + dest) ? dest : "other"), text: label("dest.", dest) }) : null,
    el("span", { class: "mono small muted", title: m.id, text: m.id })));
  const steps = el("ul", { class: "steps" });
  // Each step says where the message goes: the portal's words stay the default.
  const step = (s) => (has(`step.${s}.${dest}`) ? t(`step.${s}.${dest}`) : t("step." + s));
  steps.append(el("li", {}, el("time", { text: when(m.accepted_at) }), el("span", { text: step("accepted") })));
  if (m.attempts > 0) steps.append(el("li", {}, el("time", { text: "" }), el("span", { text: m.attempts === 1 ? t("step.attempt") : t("step.attempts", { n: m.attempts }) })));
  const last = el("li", { class: "final" }, el("time", { text: when(m.delivered_at) }), el("span", { class: "outcome", text: step(state) }));
  steps.append(last);
  if (m.plain_reason && (state === "dead" || state === "retrying" || state === "discarded")) {
    steps.append(el("li", { class: "reason" }, el("time", { text: "" }), el("span", { class: "plain", text: m.plain_reason[lang] || m.plain_reason.en || "" })));
  }
  if (m.last_error && state !== "delivered") {
    steps.append(el("li", { class: "technical" }, el("time", { text: t("step.technical") }), el("span", { text: m.last_error })));
  }
  li.append(steps);
  return li;
}

// Where a dossier handed down came from, what came with it, and whether its source was told.
// File names are text only: reading a file needs the centre's key.
function inboundBlock(b) {
  const files = Array.isArray(b.files) ? b.files : [];
  const facts = el("dl", { class: "facts" },
    el("div", {}, el("dt", { text: t("inbound.source") }), el("dd", { class: "inbound-source", text: label("source.", b.source) })),
    b.MaTTHC ? el("div", {}, el("dt", { text: t("inbound.procedure") }), el("dd", { class: "mono", text: b.MaTTHC })) : null,
    el("div", {}, el("dt", { text: t("inbound.received") }), el("dd", { text: when(b.received_at) })),
    el("div", {}, el("dt", { text: t("inbound.ack") }), el("dd", { class: "inbound-ack", text: ackState(b) })));
  const block = [el("h3", { text: t("dossier.inbound") }), facts];
  if (!files.length) block.push(el("p", { class: "empty", text: t("dossier.no_files") }));
  else {
    const tb = el("tbody");
    for (const f of files.slice(0, 100)) tb.append(el("tr", {}, cell(f.name), cell(f.content_type, "mono small"), cell(size(f.size), "num")));
    block.push(el("table", { id: "inbound-files" },
      el("thead", {}, el("tr", {}, el("th", { text: t("file.name") }), el("th", { text: t("file.type") }), el("th", { class: "num", text: t("file.size") }))), tb));
  }
  return el("div", { id: "dossier-inbound", "data-source": String(b.source) }, ...block);
}
function ackState(b) {
  if (!b.needs_acknowledgement) return t("inbound.ack_none");
  return b.acknowledged_at ? t("inbound.acked", { at: when(b.acknowledged_at) }) : t("inbound.ack_waiting");
}
function size(n) {
  if (typeof n !== "number" || !isFinite(n)) return String(n ?? "");
  const f = (v) => new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(v);
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${f(n / 1024)} KiB` : `${f(n / 1024 / 1024)} MiB`;
}

async function showPayment(ref, mine, searched) {
  let p;
  try { p = await api("GET", "/v1/payments/" + encodeURIComponent(ref)); }
  catch (e) {
    if (searched) throw e;
    if (mine !== generation) return;
    if (e.status === 404) return notice(t("find.no_payment", { q: ref }), "not-found");
    throw e;
  }
  if (mine !== generation) return;
  const facts = el("dl", { class: "facts" },
    el("div", {}, el("dt", { text: t("payment.dossier") }), el("dd", {}, dossierLink(p.MaHoSo))),
    el("div", {}, el("dt", { text: t("payments.amount") }), el("dd", { class: "num", text: money(p.SoTien) })),
    el("div", {}, el("dt", { text: t("payments.provider") }), el("dd", { text: p.provider })),
    el("div", {}, el("dt", { text: t("payment.agency") }), el("dd", { class: "mono", text: p.MaDonVi })));
  if (p.provider_transaction) facts.append(el("div", {}, el("dt", { text: t("payment.transaction") }), el("dd", { class: "mono", text: p.provider_transaction })));
  if (p.confirmed_by) facts.append(el("div", {}, el("dt", { text: t("payment.confirmed_by") }), el("dd", { text: p.confirmed_by })));
  if (p.duplicates > 0) facts.append(el("div", {}, el("dt", { text: t("payment.duplicates") }), el("dd", { class: "num alert", text: String(p.duplicates) })));
  const card = el("section", { class: "card story", id: "payment" },
    el("div", { class: "card-head" }, el("h2", {}, t("payment.title") + " ", el("span", { class: "mono ident", text: p.MaThamChieu })), badge("pay", p.status)),
    facts);
  if (p.qr && p.status === "pending") card.append(await qrFigure(p));
  card.append(el("h3", { text: t("payment.history") }));
  const history = Array.isArray(p.history) ? p.history : [];
  if (!history.length) card.append(el("p", { class: "empty", text: t("payment.no_history") }));
  const tl = el("ol", { class: "timeline" });
  for (const h of history) {
    const tone = /mismatch|duplicate|refused|failed/.test(h.event) ? "event bad" : /revers/.test(h.event) ? "event warn" : /paid|verified/.test(h.event) ? "event good" : "event";
    tl.append(el("li", { class: tone, "data-event": h.event },
      el("div", { class: "event-head" }, el("time", { text: when(h.at) }), el("strong", { text: label("ev.", h.event) })),
      h.detail ? el("div", { class: "detail", text: h.detail }) : null));
  }
  card.append(tl);
  $("#result").replaceChildren(card);
}

// A pending VietQR payment's code, for the citizen at the counter: the image (fetched with the
// key, since an <img> cannot send it, and kept while the same payment is shown), the amount,
// the agency and the time left.
let qrShown = { ref: null, url: null };
async function qrFigure(p) {
  if (qrShown.ref !== p.MaThamChieu) {
    if (qrShown.url) URL.revokeObjectURL(qrShown.url);
    qrShown = { ref: p.MaThamChieu, url: null };
    const r = await fetch(p.qr.png, { headers: { Authorization: "Bearer " + key } });
    if (r.ok) qrShown.url = URL.createObjectURL(await r.blob());
  }
  const left = p.expires_at ? Math.floor((Date.parse(p.expires_at) - Date.now()) / 1000) : null;
  const leftText = left === null ? "" : left > 0 ? t("payment.left", { m: Math.floor(left / 60), s: left % 60 }) : t("payment.over");
  return el("figure", { class: "qr", id: "payment-qr" },
    qrShown.url ? el("img", { src: qrShown.url, alt: t("payment.qr_alt", { r: p.MaThamChieu }), width: "240", height: "240" }) : null,
    el("figcaption", {},
      el("strong", { text: t("payment.qr") }),
      el("dl", { class: "facts" },
        el("div", {}, el("dt", { text: t("payments.amount") }), el("dd", { class: "num", text: money(p.SoTien) })),
        el("div", {}, el("dt", { text: t("payment.agency") }), el("dd", { class: "mono", text: p.MaDonVi })),
        left === null ? null : el("div", {}, el("dt", { text: t("payment.time_left") }), el("dd", { class: left > 0 ? "" : "alert", "data-left": String(left), text: leftText })))));
}

// ---- payments list ---------------------------------------------------------------------
let cursors = [""]; // cursors[i] reads page i + 1
let cursorFor = "";

async function showPayments(params, mine) {
  const filters = new URLSearchParams();
  for (const k of ["status", "MaHoSo", "since"]) if (params.get(k)) filters.set(k, params.get(k));
  if (filters.toString() !== cursorFor) { cursors = [""]; cursorFor = filters.toString(); }
  const qs = new URLSearchParams(filters);
  qs.set("limit", String(PAGE_SIZE));
  const cur = cursors[cursors.length - 1];
  if (cur) qs.set("cursor", cur);
  let page;
  try { page = await api("GET", "/v1/payments?" + qs); }
  catch (e) {
    if (e.status !== 503 || mine !== generation) throw e;
    // Payments not configured here (or the backend is down): said in the card, not only the corner.
    page = { payments: [], next_cursor: null, unavailable: e.message };
  }
  if (mine !== generation) return;
  if (document.activeElement?.closest("#payments-filter") == null) {
    $("#pf-status").value = PAYMENT_STATES.includes(params.get("status")) ? params.get("status") : "";
    $("#pf-ma").value = params.get("MaHoSo") || "";
    const since = params.get("since") ? new Date(params.get("since")) : null;
    $("#pf-since").value = since && !isNaN(since) ? localInput(since) : "";
  }
  const tb = $("#payments tbody"); tb.replaceChildren();
  const rows = Array.isArray(page.payments) ? page.payments : [];
  for (const p of rows) {
    tb.append(el("tr", { "data-ref": p.MaThamChieu },
      el("td", {}, paymentLink(p.MaThamChieu)), el("td", {}, dossierLink(p.MaHoSo)), cell(money(p.SoTien), "num"), cell(p.provider),
      el("td", {}, badge("pay", p.status)), cell(p.duplicates || "", p.duplicates ? "num alert" : "num"), cell(when(p.created_at), "small"), cell(when(p.updated_at), "small")));
  }
  $("#payments-empty").textContent = page.unavailable ? t("payments.unavailable", { m: page.unavailable }) : t("payments.none");
  $("#payments-empty").hidden = rows.length > 0; $("#payments").hidden = rows.length === 0;
  $("#view-payments").dataset.query = filters.toString(); // which filters the table shows
  $("#pg-page").textContent = t("pager.page", { n: cursors.length });
  $("#pg-first").disabled = cursors.length === 1;
  $("#pg-next").disabled = !page.next_cursor;
  $("#pg-next").onclick = () => { if (page.next_cursor) { cursors.push(page.next_cursor); render(); } };
  await showUnmatched(mine);
}

// The open entries of the unmatched list: money a finance officer must assign or return
// (docs/operations.md). The actions are the API's (admin); the page only shows them.
async function showUnmatched(mine) {
  let page;
  try { page = await api("GET", "/v1/payments/unmatched?state=open&limit=" + PAGE_SIZE); }
  catch (e) {
    if (e.status !== 503 || mine !== generation) throw e;
    page = { unmatched: [] };
  }
  if (mine !== generation) return;
  const tb = $("#unmatched tbody"); tb.replaceChildren();
  const rows = Array.isArray(page.unmatched) ? page.unmatched : [];
  for (const u of rows) {
    tb.append(el("tr", { "data-id": u.id },
      cell(u.booking_date, "small"), cell(u.bank), cell(u.account), cell(money(u.amount), "num"),
      el("td", { title: u.detail || "" }, el("span", { class: "badge alert", text: t("unmatched." + u.reason) })),
      cell(u.remittance, "small"), cell(u.id, "small mono")));
  }
  $("#unmatched-empty").hidden = rows.length > 0; $("#unmatched").hidden = rows.length === 0;
}
function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// ---- dossiers handed down ----------------------------------------------------------------
const SOURCES = ["dvcqg", "dvclt"];

// The list reads by offset: the page is in the address (#/inbound?source=&offset=).
async function showInbound(params, mine) {
  const source = SOURCES.includes(params.get("source")) ? params.get("source") : "";
  const raw = params.get("offset") || "0";
  const offset = /^[0-9]{1,9}$/.test(raw) ? Number(raw) : 0;
  const qs = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
  if (source) qs.set("source", source);
  let page;
  try { page = await api("GET", "/v1/inbound/dossiers?" + qs); }
  catch (e) {
    if (e.status !== 503 || mine !== generation) throw e;
    page = { dossiers: [], total: 0, unavailable: e.message };
  }
  if (mine !== generation) return;
  if (document.activeElement !== $("#if-source")) $("#if-source").value = source;
  const rows = Array.isArray(page.dossiers) ? page.dossiers : [];
  const total = typeof page.total === "number" ? page.total : rows.length;
  const tb = $("#inbound tbody"); tb.replaceChildren();
  for (const d of rows) {
    const files = Array.isArray(d.files) ? d.files.length : 0;
    tb.append(el("tr", { "data-mahoso": d.MaHoSo, "data-source": d.source },
      el("td", {}, dossierLink(d.MaHoSo)), cell(label("source.", d.source)), cell(d.MaTTHC, "mono small"), cell(when(d.received_at), "small"),
      cell(files, "num"), cell(ackState(d), d.needs_acknowledgement && !d.acknowledged_at ? "warn" : "")));
  }
  $("#inbound-total").textContent = page.unavailable ? "" : total === 1 ? t("inbound.total_one") : t("inbound.total", { n: total });
  $("#inbound-empty").textContent = page.unavailable ? t("inbound.unavailable", { m: page.unavailable }) : t("inbound.none");
  $("#inbound-empty").hidden = rows.length > 0; $("#inbound").hidden = rows.length === 0;
  $("#view-inbound").dataset.query = qs.toString(); // which filter and page the table shows
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  $("#ip-page").textContent = t("pager.page_of", { n: Math.floor(offset / PAGE_SIZE) + 1, m: pages });
  const go = (to) => { const q = new URLSearchParams(); if (source) q.set("source", source); if (to > 0) q.set("offset", String(to)); location.hash = "#/inbound" + (q.toString() ? "?" + q : ""); };
  $("#ip-first").disabled = offset === 0; $("#ip-first").onclick = () => go(0);
  $("#ip-prev").disabled = offset === 0; $("#ip-prev").onclick = () => go(Math.max(0, offset - PAGE_SIZE));
  $("#ip-next").disabled = offset + rows.length >= total || rows.length === 0; $("#ip-next").onclick = () => go(offset + PAGE_SIZE);
}

// ---- wiring ----------------------------------------------------------------------------
function show() {
  $("#login").hidden = !!key; $("#board").hidden = !key; $("#toolbar").hidden = !key;
  applyLanguage();
  if (key) render(); else { clearTimeout(timer); setStatus(t("status.none"), ""); }
}

$("#key-form").addEventListener("submit", (ev) => { ev.preventDefault(); key = $("#key").value.trim(); $("#key").value = ""; sessionStorage.setItem("hcc-key", key); show(); });
$("#forget").addEventListener("click", () => { sessionStorage.removeItem("hcc-key"); key = ""; show(); });
for (const b of document.querySelectorAll("#lang button")) {
  b.addEventListener("click", () => { lang = b.dataset.lang === "en" ? "en" : "vi"; localStorage.setItem("hcc-lang", lang); applyLanguage(); render(); });
}
$("#search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("#search").value.trim();
  if (q) location.hash = "#/find/" + encodeURIComponent(q);
});
$("#dead-filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const k = $("#dead-key").value.trim();
  location.hash = k ? "#/?ordering_key=" + encodeURIComponent(k) : "#/";
});
$("#dead-clear").addEventListener("click", () => { $("#dead-key").value = ""; location.hash = "#/"; });
$("#replay-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const queue = $("#replay-queue").value;
  const rate = Number($("#replay-rate").value);
  const body = { rate_per_sec: rate };
  const filter = (current().params.get("ordering_key") || "").trim();
  if (filter) body.ordering_key = filter;
  act("POST", `/v1/queues/${encodeURIComponent(queue)}/dead/replay`, (r) => (r.replay ? t("replay.started", { total: r.replay.total, rate: r.replay.rate_per_sec }) : ""), body);
});
$("#payments-filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const qs = new URLSearchParams();
  if ($("#pf-status").value) qs.set("status", $("#pf-status").value);
  if ($("#pf-ma").value.trim()) qs.set("MaHoSo", $("#pf-ma").value.trim());
  if ($("#pf-since").value) { const d = new Date($("#pf-since").value); if (!isNaN(d)) qs.set("since", d.toISOString()); }
  const next = "#/payments" + (qs.toString() ? "?" + qs : "");
  if (location.hash === next) render(); else location.hash = next;
});
$("#pg-first").addEventListener("click", () => { cursors = [""]; render(); });
// A new source reads from the first page.
$("#inbound-filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const v = $("#if-source").value;
  const next = "#/inbound" + (SOURCES.includes(v) ? "?source=" + v : "");
  if (location.hash === next) render(); else location.hash = next;
});
$("#if-source").addEventListener("change", () => $("#inbound-filter").requestSubmit());
window.addEventListener("hashchange", render);
// Started once every script has run, so that the views and words they add are known.
document.addEventListener("DOMContentLoaded", show);
