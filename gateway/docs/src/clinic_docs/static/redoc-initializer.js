// Starts Redoc on the merged document named by the page's JSON block (#redoc-config).
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("redoc-config").textContent);
  Redoc.init(config.specUrl, config.options, document.getElementById("redoc"));
})();
