// The editor. The design lives in one plain object; every change re-renders through /api/render.webp with the
// design as query parameters (debounced, stale requests aborted), and the response's X-Edit-State header is the
// canonical share token. Undo/redo keep whole designs; before/after shows the same sneaker without edits.
(() => {
  const data = JSON.parse(document.getElementById("editor-data").textContent);
  const $ = (id) => document.getElementById(id);
  const view = $("view"), caption = $("caption"), errorBox = $("error");
  const psiInput = $("psi"), psiOut = $("psi-out"), seedInput = $("seed");
  const download = $("download"), downloadLarge = $("download-large"), shareUrl = $("share-url");
  const DEBOUNCE_MS = 60;
  const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0];

  // ---- the design ---------------------------------------------------------------------------------------------
  const s0 = data.state;
  const initial = {
    seed: s0.seed, latent: s0.latent, cross: data.cross, psi: s0.psi,
    edits: Object.fromEntries(s0.edits),
    mixes: Object.fromEntries(s0.mixes.filter(([, l]) => data.limits.mix_levels.includes(l)).map(([s, l]) => [l, s])),
  };
  let design = clone(initial);
  let token = data.token;
  const undoStack = [], redoStack = [];
  let committed = clone(design);

  function clone(d) { return JSON.parse(JSON.stringify(d)); }

  function query(d, before = false) {
    const p = new URLSearchParams();
    if (d.cross) p.set("cross", d.cross);
    else if (d.latent) p.set("latent", d.latent);
    else p.set("seed", String(d.seed));
    p.set("psi", String(d.psi));
    if (!before) {
      for (const [id, amount] of Object.entries(d.edits)) if (Number(amount) !== 0) p.append("edit", `${id}:${amount}`);
      for (const level of data.limits.mix_levels) {
        const s = d.mixes[level];
        if (s !== undefined && s !== null && s !== "") p.append("mix", `${s}:${level}`);
      }
    }
    return p.toString();
  }

  // ---- rendering: debounce + abort ----------------------------------------------------------------------------
  let timer = null, controller = null, showingBefore = false, currentUrl = null;

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(render, DEBOUNCE_MS);
  }

  async function render() {
    if (controller) controller.abort();  // a newer design supersedes whatever is in flight
    controller = new AbortController();
    const url = `/api/render.webp?${query(design, showingBefore)}`;
    try {
      const res = await fetch(url, { signal: controller.signal });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.error || `HTTP ${res.status}`);
      }
      const blob = await res.blob();
      if (!showingBefore) setToken(res.headers.get("X-Edit-State"));
      if (currentUrl) URL.revokeObjectURL(currentUrl);
      currentUrl = URL.createObjectURL(blob);
      view.src = currentUrl;
      view.dataset.src = url;
      errorBox.hidden = true;
    } catch (err) {
      if (err.name === "AbortError") return;
      errorBox.textContent = `Could not render: ${err.message}`;
      errorBox.hidden = false;
    }
  }

  function setToken(t) {
    if (!t) return;
    token = t;
    view.dataset.state = t;
    // The server names the files (sneaker-TOKEN.png, sneaker-TOKEN-1024px-upscaled.png) via Content-Disposition.
    download.href = `/api/render.png?state=${t}&download=true`;
    downloadLarge.href = `/api/render.png?state=${t}&size=${data.download_side}&download=true`;
    $("breed-link").href = `/breed?a=${t}`;
    shareUrl.value = `${data.base_url}/edit?state=${t}`;
    history.replaceState(null, "", `/edit?state=${t}`);
    syncFavourite();
  }
  const syncFavourite = window.Favourites.bind($("favourite"), () => token);

  // ---- history ------------------------------------------------------------------------------------------------
  function commit() {
    if (JSON.stringify(committed) === JSON.stringify(design)) return;
    undoStack.push(committed);
    redoStack.length = 0;
    committed = clone(design);
    updateHistoryButtons();
  }

  function restore(d) {
    design = clone(d);
    committed = clone(d);
    syncControls();
    updateHistoryButtons();
    schedule();
  }

  function updateHistoryButtons() {
    $("undo").disabled = undoStack.length === 0;
    $("redo").disabled = redoStack.length === 0;
  }

  $("undo").addEventListener("click", () => {
    if (!undoStack.length) return;
    redoStack.push(clone(committed));
    restore(undoStack.pop());
  });
  $("redo").addEventListener("click", () => {
    if (!redoStack.length) return;
    undoStack.push(clone(committed));
    restore(redoStack.pop());
  });
  document.addEventListener("keydown", (ev) => {
    if (!(ev.ctrlKey || ev.metaKey) || ev.key.toLowerCase() !== "z" || ev.target.tagName === "INPUT" && ev.target.type !== "range") return;
    ev.preventDefault();
    $(ev.shiftKey ? "redo" : "undo").click();
  });

  // ---- controls -----------------------------------------------------------------------------------------------
  const sliders = [...document.querySelectorAll("input[data-direction]")];
  const mixInputs = [...document.querySelectorAll("input[data-mix]")];

  function showValue(input, digits) {
    const out = input.parentElement.querySelector("output");
    if (out) out.textContent = Number(input.value).toFixed(digits);
  }

  function syncControls() {
    psiInput.value = design.psi;
    showValue(psiInput, 2);
    seedInput.value = design.latent || design.cross ? "" : design.seed;
    $("latent-note").hidden = !design.latent || !!design.cross;
    $("cross-note").hidden = !design.cross;
    for (const s of sliders) {
      s.value = design.edits[s.dataset.direction] || 0;
      showValue(s, 1);
    }
    for (const m of mixInputs) m.value = design.mixes[m.dataset.mix] ?? "";
  }

  psiInput.addEventListener("input", () => { design.psi = Number(psiInput.value); showValue(psiInput, 2); schedule(); });
  psiInput.addEventListener("change", commit);
  for (const s of sliders) {
    s.addEventListener("input", () => {
      const v = Number(s.value);
      if (v === 0) delete design.edits[s.dataset.direction]; else design.edits[s.dataset.direction] = v;
      showValue(s, 1);
      schedule();
    });
    s.addEventListener("change", commit);
  }

  function setSeed(v) {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > data.limits.seed_max) return;
    design.seed = n;
    design.latent = null;
    design.cross = null;
    syncControls();
    schedule();
    commit();
  }
  seedInput.addEventListener("change", () => setSeed(seedInput.value));
  $("new-seed").addEventListener("click", () => setSeed(randomSeed()));

  function setMix(level, v) {
    if (v === "" || v === null) delete design.mixes[level];
    else {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > data.limits.seed_max) return;
      design.mixes[level] = n;
    }
    syncControls();
    schedule();
    commit();
  }
  for (const m of mixInputs) m.addEventListener("change", () => setMix(m.dataset.mix, m.value));
  for (const b of document.querySelectorAll("[data-mix-random]")) b.addEventListener("click", () => setMix(b.dataset.mixRandom, randomSeed()));
  for (const b of document.querySelectorAll("[data-mix-clear]")) b.addEventListener("click", () => setMix(b.dataset.mixClear, null));

  $("randomise").addEventListener("click", () => {
    // A random but tasteful design: each visible direction within +-2 sigma, sometimes left alone.
    design.edits = {};
    for (const s of sliders) {
      if (Math.random() < 0.35) continue;
      design.edits[s.dataset.direction] = Math.round((Math.random() * 4 - 2) * 10) / 10;
    }
    syncControls();
    schedule();
    commit();
  });
  $("reset").addEventListener("click", () => {
    design.edits = {};
    design.mixes = {};
    syncControls();
    schedule();
    commit();
  });

  $("compare").addEventListener("click", () => {
    showingBefore = !showingBefore;
    $("compare").setAttribute("aria-pressed", String(showingBefore));
    caption.textContent = showingBefore ? "before" : "after";
    render();
  });

  $("share").addEventListener("click", async () => {
    const text = shareUrl.value;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      shareUrl.select();  // clipboard API needs a secure context; fall back to the selection
      document.execCommand && document.execCommand("copy");
    }
    $("share").textContent = "Link copied";
    setTimeout(() => { $("share").textContent = "Copy share link"; }, 1500);
  });

  $("controls").addEventListener("submit", (ev) => ev.preventDefault());

  // ---- start from a photo -------------------------------------------------------------------------------------
  const photo = $("photo"), bar = $("project-progress"), status = $("project-status");
  const TYPES = ["image/png", "image/jpeg", "image/webp"];
  photo.addEventListener("change", async () => {
    const file = photo.files[0];
    if (!file) return;
    // The server checks everything again; these spare a visitor the upload of a file it would refuse.
    if (file.type && !TYPES.includes(file.type)) { status.textContent = "Please choose a PNG, JPEG or WebP photo."; return; }
    if (file.size > 10 * 1024 * 1024) { status.textContent = "That photo is larger than 10 MB."; return; }
    const form = new FormData();
    form.append("file", file);
    status.textContent = "Uploading…";
    bar.hidden = false;
    bar.removeAttribute("value");  // indeterminate while the bytes travel
    try {
      const res = await fetch("/api/project", { method: "POST", body: form });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
      bar.value = 0;
      status.textContent = `Waiting for the projector: step 0 of ${body.steps}`;
      await poll(body.job);
    } catch (err) {
      status.textContent = `Could not use that photo: ${err.message}`;
      bar.hidden = true;
    }
  });

  async function poll(job) {
    for (;;) {
      const res = await fetch(`/api/project/${job}`);
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
      bar.value = body.progress;
      if (body.status === "done") {
        status.textContent = "Done: opening your sneaker.";
        location.href = `/edit?state=${body.result.state}`;
        return;
      }
      if (body.status === "failed") throw new Error(body.error);
      const what = body.status === "queued" ? "Waiting for the projector" : (body.phase || "Finding your sneaker");
      status.textContent = `${what[0].toUpperCase()}${what.slice(1)}: step ${body.step} of ${body.steps}`;
      await new Promise((r) => setTimeout(r, 400));
    }
  }

  syncControls();
  updateHistoryButtons();
})();
