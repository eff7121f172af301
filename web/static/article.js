// Article page (web/templates/article.html): a button that copies the citation. Optional:
// without JavaScript the citation is plain text to select.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  if (!navigator.clipboard) return; // only on https or localhost
  for (const block of document.querySelectorAll(".cite-text")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-cite";
    button.textContent = "复制引用";
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(block.textContent.trim());
        button.textContent = "已复制";
      } catch {
        button.textContent = "无法复制，请手动选择";
      }
    });
    block.after(button);
  }
});
