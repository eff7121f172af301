// The UI's only script (no inline scripts: the pages' CSP allows 'self' only).
// Everything works without it; it adds small conveniences.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-toggle]");
  if (!button) return;
  var target = document.getElementById(button.getAttribute("data-toggle"));
  if (!target) return;
  var open = target.hidden;
  target.hidden = !open;
  button.setAttribute("aria-expanded", open ? "true" : "false");
});
