// The favourites shelf: design tokens kept in this browser (localStorage), per model, newest first. Nothing is
// sent to the server; the crossbreed page offers them as parents.
(() => {
  const model = document.body.dataset.model || "model";
  const KEY = `sneakergan:favourites:${model}`;
  const MAX = 60;

  function list() {
    try {
      const v = JSON.parse(localStorage.getItem(KEY) || "[]");
      return Array.isArray(v) ? v.filter((t) => typeof t === "string" && t.length < 4096) : [];
    } catch { return []; }
  }
  function save(items) {
    try { localStorage.setItem(KEY, JSON.stringify(items.slice(0, MAX))); } catch { /* storage full or blocked */ }
    window.dispatchEvent(new CustomEvent("favourites-changed"));
  }
  const has = (token) => list().includes(token);
  const add = (token) => { if (token && !has(token)) save([token, ...list()]); };
  const remove = (token) => save(list().filter((t) => t !== token));
  const toggle = (token) => (has(token) ? remove(token) : add(token), has(token));

  // A ♥ button bound to a function that gives the current design's token.
  function bind(button, currentToken) {
    const sync = () => {
      const on = has(currentToken());
      button.setAttribute("aria-pressed", String(on));
      button.textContent = on ? "\u2665 Favourite" : "\u2661 Favourite";
    };
    button.addEventListener("click", () => { toggle(currentToken()); sync(); });
    window.addEventListener("favourites-changed", sync);
    sync();
    return sync;
  }

  window.Favourites = { list, add, remove, has, toggle, bind };
})();
