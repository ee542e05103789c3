// Crossbreeding: two parents (a seed, a pasted design link, a favourite), three "how much of parent B" sliders,
// and a row of children from /api/breed. Each child opens in the editor and can be favourited or bred again.
(() => {
  const data = JSON.parse(document.getElementById("breed-data").textContent);
  const $ = (id) => document.getElementById(id);
  const parents = { a: data.a, b: data.b };
  const blendInputs = [...document.querySelectorAll("input[data-blend]")];
  const variety = $("variety"), childrenBox = $("children"), errorBox = $("breed-error");
  const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0];
  let row = 0, controller = null;

  function showValue(input) {
    input.parentElement.querySelector("output").textContent = Number(input.value).toFixed(2);
  }

  function setParent(name, ref) {
    parents[name] = String(ref);
    $(`parent-${name}`).src = /^\d+$/.test(parents[name]) ? `/api/sneaker/${parents[name]}.webp`
      : `/api/render.webp?state=${encodeURIComponent(parents[name])}`;
    history.replaceState(null, "", `/breed?a=${encodeURIComponent(parents.a)}&b=${encodeURIComponent(parents.b)}`);
  }

  function refOf(text) {
    const t = text.trim();
    const m = t.match(/[?&]state=([^&#]+)/);
    if (m) return decodeURIComponent(m[1]);
    const s = t.match(/\/s\/(\d+)/);  // a permalink
    return s ? s[1] : t;
  }

  async function breed() {
    if (controller) controller.abort();
    controller = new AbortController();
    const p = new URLSearchParams({ a: parents.a, b: parents.b, variety: variety.value, row: String(row), count: "6" });
    for (const input of blendInputs) p.set(input.dataset.blend, input.value);
    try {
      const res = await fetch(`/api/breed?${p}`, { signal: controller.signal });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
      errorBox.hidden = true;
      const frag = document.createDocumentFragment();
      body.children.forEach((child, i) => frag.appendChild(card(child.token, child.image, `Child ${i + 1}`, child.edit)));
      childrenBox.replaceChildren(frag);
    } catch (err) {
      if (err.name === "AbortError") return;
      errorBox.textContent = `Could not breed these two: ${err.message}`;
      errorBox.hidden = false;
    }
  }

  // A thumbnail with its actions: open in the editor, favourite, use as parent A or B.
  function card(token, image, label, editUrl) {
    const div = document.createElement("div");
    div.className = "child";
    div.dataset.token = token;
    const a = document.createElement("a");
    a.href = editUrl || `/edit?state=${token}`;
    a.className = "open";
    const img = document.createElement("img");
    img.src = image;
    img.alt = label;
    img.width = 128;
    img.height = 128;
    a.appendChild(img);
    div.appendChild(a);
    const tools = document.createElement("div");
    tools.className = "toolbar";
    const fav = document.createElement("button");
    fav.type = "button";
    fav.className = "fav";
    window.Favourites.bind(fav, () => token);
    tools.appendChild(fav);
    for (const name of ["a", "b"]) {
      const use = document.createElement("button");
      use.type = "button";
      use.textContent = `as ${name.toUpperCase()}`;
      use.dataset.as = name;
      use.addEventListener("click", () => { setParent(name, token); breed(); });
      tools.appendChild(use);
    }
    div.appendChild(tools);
    return div;
  }

  function showFavourites() {
    const items = window.Favourites.list();
    $("fav-empty").hidden = items.length > 0;
    const frag = document.createDocumentFragment();
    items.forEach((t, i) => frag.appendChild(card(t, `/api/render.webp?state=${t}`, `Favourite ${i + 1}`)));
    $("favourites").replaceChildren(frag);
  }

  for (const input of blendInputs) {
    input.addEventListener("input", () => showValue(input));
    input.addEventListener("change", breed);
  }
  variety.addEventListener("input", () => showValue(variety));
  variety.addEventListener("change", breed);
  for (const b of document.querySelectorAll("[data-random]")) {
    b.addEventListener("click", () => { setParent(b.dataset.random, randomSeed()); breed(); });
  }
  for (const b of document.querySelectorAll("[data-use]")) {
    b.addEventListener("click", () => {
      const v = refOf($(`ref-${b.dataset.use}`).value);
      if (v) { setParent(b.dataset.use, v); breed(); }
    });
  }
  for (const name of ["a", "b"]) {
    $(`ref-${name}`).addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); document.querySelector(`[data-use="${name}"]`).click(); }
    });
  }
  $("breed-go").addEventListener("click", () => { row = 0; breed(); });
  $("more-children").addEventListener("click", () => { row += 1; breed(); });
  window.addEventListener("favourites-changed", showFavourites);
  showFavourites();
  breed();
})();
