// Home and permalink pages: "another one" swaps in a fresh random seed without reloading the page.
(() => {
  const img = document.getElementById("sneaker");
  const another = document.getElementById("another");
  const seedEl = document.getElementById("seed");
  const edit = document.getElementById("edit");
  const permalink = document.getElementById("permalink");

  const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0];

  function show(seed) {
    img.src = `/api/sneaker/${seed}.webp`;
    img.alt = `A generated sneaker, seed ${seed}`;
    seedEl.textContent = seed;
    edit.href = `/edit?seed=${seed}`;
    permalink.href = `/s/${seed}`;
  }

  another.addEventListener("click", (ev) => {
    ev.preventDefault();
    show(randomSeed());
  });
})();
