// Swagger UI for /openapi.json, from this server's own copy of its assets (no CDN; works offline).
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,  // the default validator is a remote service
    presets: [SwaggerUIBundle.presets.apis],
  });
});
