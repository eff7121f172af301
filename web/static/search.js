// Search page: load the facets and timeline after the results (their counting is a
// request of its own, /facets). Without this script the page links to /facets instead.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("facets");
  if (!box || !box.getAttribute("data-src") || !window.fetch) return;
  box.classList.add("loading");
  fetch(box.getAttribute("data-src"), { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    })
    .then(function (html) {
      // our own server-rendered fragment, every stored text escaped there
      box.innerHTML = html;
      box.classList.remove("loading");
    })
    .catch(function () { box.classList.remove("loading"); });
});
