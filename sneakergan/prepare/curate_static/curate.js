// The curate page: a grid of images, keyboard marks sent to the server at once, a session undo stack.
(() => {
  "use strict";
  const PAGE = 300;
  const grid = document.getElementById("grid");
  const statusLine = document.getElementById("status");
  const more = document.getElementById("more");
  const state = { filter: "all", order: "boring", items: [], total: 0, counts: {}, selected: 0, loading: false, undo: [] };

  function setStatus(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
  }

  async function api(method, url, body) {
    const res = await fetch(url, {
      method, headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`${res.status} ${(await res.text()).slice(0, 200)}`);
    return res.json();
  }

  function card(item, index) {
    const el = document.createElement("div");
    el.className = "card";
    el.dataset.sha = item.sha256;
    el.dataset.index = index;
    el.dataset.mark = item.mark || "";
    // prepare's verdict (boring, duplicate, ...) when it did not keep the image
    const note = ["ok", "raw", ""].includes(item.status) ? "" : `<span class="note">${item.status}</span>`;
    el.innerHTML = `<img loading="lazy" alt="" src="${item.url}">
      <div class="meta"><span class="badge">${item.mark || ""}</span>${note}<span>boring ${item.boring.toFixed(2)}</span></div>`;
    el.addEventListener("click", () => select(index));
    return el;
  }

  function updateCounts(counts) {
    for (const [k, v] of Object.entries(counts)) {
      const span = document.querySelector(`[data-count="${k}"]`);
      if (span) span.textContent = v;
    }
  }

  async function load(reset) {
    if (state.loading) return;
    if (!reset && state.items.length >= state.total) return;
    state.loading = true;
    try {
      const offset = reset ? 0 : state.items.length;
      const data = await api("GET", `/api/images?filter=${state.filter}&order=${state.order}&offset=${offset}&limit=${PAGE}`);
      if (reset) { grid.innerHTML = ""; state.items = []; state.selected = 0; }
      state.total = data.total;
      state.counts = data.counts;
      updateCounts(data.counts);
      const frag = document.createDocumentFragment();
      for (const item of data.items) {
        frag.appendChild(card(item, state.items.length));
        state.items.push(item);
      }
      grid.appendChild(frag);
      more.textContent = state.items.length < state.total ? `${state.items.length} of ${state.total}` :
        (state.total ? "" : `nothing here (source: ${data.source})`);
      if (reset) select(0);
    } catch (e) {
      setStatus(`could not load images: ${e.message}`, true);
    } finally {
      state.loading = false;
    }
  }

  function cards() { return grid.querySelectorAll(".card"); }

  function select(i) {
    const all = cards();
    if (!all.length) return;
    i = Math.max(0, Math.min(all.length - 1, i));
    all[state.selected] && all[state.selected].classList.remove("selected");
    state.selected = i;
    all[i].classList.add("selected");
    all[i].scrollIntoView({ block: "nearest" });
    if (i > state.items.length - 20) load(false);
  }

  function columns() {
    const all = cards();
    if (all.length < 2) return 1;
    const top = all[0].offsetTop;
    let n = 0;
    while (n < all.length && all[n].offsetTop === top) n++;
    return Math.max(1, n);
  }

  function showMark(i, mark) {
    const el = cards()[i];
    if (!el) return;
    state.items[i].mark = mark;
    el.dataset.mark = mark || "";
    el.querySelector(".badge").textContent = mark || "";
  }

  // Marks are shown at once and sent one after another, so fast key presses reach the manifest in order.
  let queue = Promise.resolve();
  function enqueue(task) { queue = queue.then(task).catch(() => {}); }

  function bucket(mark) { return mark && mark !== "clear" ? mark : "unmarked"; }

  function setLocal(sha, mark) {
    const i = state.items.findIndex((it) => it.sha256 === sha);
    if (i < 0) return;
    const old = bucket(state.items[i].mark);
    const now = bucket(mark);
    if (old !== now) { state.counts[old] -= 1; state.counts[now] += 1; updateCounts(state.counts); }
    showMark(i, mark && mark !== "clear" ? mark : null);
  }

  function mark(value) {
    const i = state.selected;
    const item = state.items[i];
    if (!item) return;
    const before = item.mark || "clear";
    const entry = { sha256: item.sha256, to: before };
    state.undo.push(entry);
    setLocal(item.sha256, value);
    select(i + 1);
    enqueue(async () => {
      try {
        const res = await api("POST", "/api/mark", { sha256: item.sha256, mark: value });
        setLocal(item.sha256, res.mark);
        setStatus(`${value}: ${item.sha256.slice(0, 12)}`);
      } catch (e) {
        state.undo = state.undo.filter((u) => u !== entry);
        setLocal(item.sha256, before);
        setStatus(`mark not saved: ${e.message}`, true);
      }
    });
  }

  function undo() {
    const last = state.undo.pop();
    if (!last) { setStatus("nothing to undo"); return; }
    setLocal(last.sha256, last.to);
    const i = state.items.findIndex((it) => it.sha256 === last.sha256);
    if (i >= 0) select(i);
    enqueue(async () => {
      try {
        const res = await api("POST", "/api/undo", { sha256: last.sha256, to: last.to });
        setLocal(last.sha256, res.mark);
        setStatus(`undone: ${last.sha256.slice(0, 12)} is ${res.mark || "unmarked"} again`);
      } catch (e) {
        setStatus(`undo failed: ${e.message}`, true);
      }
    });
  }

  function setFilter(f) {
    state.filter = f;
    for (const b of document.querySelectorAll("#filters button")) b.classList.toggle("active", b.dataset.filter === f);
    load(true);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target.tagName === "SELECT") return;
    const keys = {
      k: () => mark("keep"), r: () => mark("reject"), f: () => mark("favourite"), c: () => mark("clear"),
      u: () => undo(),
      ArrowRight: () => select(state.selected + 1), ArrowLeft: () => select(state.selected - 1),
      ArrowDown: () => select(state.selected + columns()), ArrowUp: () => select(state.selected - columns()),
    };
    const action = keys[ev.key];
    if (action) { ev.preventDefault(); action(); }
  });
  for (const b of document.querySelectorAll("#filters button")) b.addEventListener("click", () => setFilter(b.dataset.filter));
  document.getElementById("order").addEventListener("change", (ev) => { state.order = ev.target.value; load(true); });
  document.getElementById("btn-keep").addEventListener("click", () => mark("keep"));
  document.getElementById("btn-reject").addEventListener("click", () => mark("reject"));
  document.getElementById("btn-favourite").addEventListener("click", () => mark("favourite"));
  document.getElementById("btn-undo").addEventListener("click", () => undo());
  window.addEventListener("scroll", () => {
    if (window.innerHeight + window.scrollY > document.body.offsetHeight - 600) load(false);
  });
  setFilter("all");
})();
