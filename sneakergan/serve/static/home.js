// Home and permalink pages: "another one" swaps in a fresh random seed without reloading the page.
(() => {
  const img = document.getElementById("sneaker");
  const another = document.getElementById("another");
  const seedEl = document.getElementById("seed");
  const edit = document.getElementById("edit");
  const breed = document.getElementById("breed");
  const permalink = document.getElementById("permalink");
  const psi = Number(document.querySelector(".hero").dataset.psi);
  const model = document.body.dataset.model;
  let seed = Number(seedEl.textContent);

  const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0];
  // The token of a plain seed at the site's psi, as the server writes it ("1." + base64url of compact JSON).
  const b64url = (s) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const psiText = Number.isInteger(psi) ? psi.toFixed(1) : String(psi);
  const token = () => `1.${b64url(`[${JSON.stringify(model)},${seed},${psiText}]`)}`;

  const syncFav = window.Favourites.bind(document.getElementById("favourite"), token);

  function show(s) {
    seed = s;
    img.src = `/api/sneaker/${s}.webp`;
    img.alt = `A generated sneaker, seed ${s}`;
    seedEl.textContent = s;
    edit.href = `/edit?seed=${s}`;
    breed.href = `/breed?a=${s}`;
    permalink.href = `/s/${s}`;
    syncFav();
  }

  another.addEventListener("click", (ev) => {
    ev.preventDefault();
    show(randomSeed());
  });
})();
