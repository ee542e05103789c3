// Endless gallery: pages of sneakers from /api/gallery, the next one fetched when the sentinel scrolls into view.
(() => {
  const grid = document.getElementById("grid");
  const more = document.getElementById("more");
  const size = Number(grid.dataset.pageSize) || 60;
  // Through the CSSOM, not a style attribute: the CSP allows no inline styles.
  grid.style.setProperty("--tile-aspect", `${grid.dataset.width} / ${grid.dataset.height}`);
  let page = 0;
  let loading = false;
  let done = false;

  async function loadPage() {
    if (loading || done) return;
    loading = true;
    more.textContent = "Loading…";
    try {
      const res = await fetch(`/api/gallery?page=${page}&size=${size}`);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const data = await res.json();
      const frag = document.createDocumentFragment();
      for (const item of data.items) {
        const a = document.createElement("a");
        a.href = item.permalink;
        const img = document.createElement("img");
        img.src = item.image;
        img.loading = "lazy";
        img.width = Number(grid.dataset.width);
        img.height = Number(grid.dataset.height);
        img.alt = `Sneaker ${item.seed}`;
        a.appendChild(img);
        frag.appendChild(a);
      }
      grid.appendChild(frag);
      if (data.next === null) { done = true; more.textContent = "That's all of them."; }
      else { page = data.next; more.textContent = ""; }
    } catch (err) {
      more.textContent = "Could not load more sneakers; scroll to retry.";
      loading = false;
      return;
    }
    loading = false;
    // A tall screen may still show the sentinel: keep filling until it is pushed out of view.
    if (!done && more.getBoundingClientRect().top < window.innerHeight + 400) requestAnimationFrame(loadPage);
  }

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage();
  }, { rootMargin: "400px" }).observe(more);
})();
