// Starts Swagger UI with the options of the page's JSON block (#swagger-config).
// StandaloneLayout (from swagger-ui-standalone-preset.js) brings the top bar with the spec picker.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("swagger-config").textContent);
  window.ui = SwaggerUIBundle(
    Object.assign(
      {
        dom_id: "#swagger-ui",
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        plugins: [SwaggerUIBundle.plugins.DownloadUrl],
        layout: "StandaloneLayout",
      },
      config
    )
  );
})();
