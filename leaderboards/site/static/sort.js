// Sort a table by a column when its header is clicked (or activated with Enter / Space).
// Numbers sort numerically from each cell's data-value; text sorts alphabetically; empty cells always go last.
// The first click puts the best values first (data-better="high" or "low"), the next click reverses the order.
// Each <tbody> is sorted on its own, so reported rows never mix with reproduced ones; rows marked "fixed" stay put.
(function () {
  "use strict";

  function valueOf(row, index) {
    const cell = row.cells[index];
    if (!cell) return "";
    return cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
  }

  function compare(a, b, numeric) {
    if (numeric) return parseFloat(a) - parseFloat(b);
    return a.localeCompare(b);
  }

  function sortTable(table, header) {
    const index = header.cellIndex;
    const numeric = header.dataset.sort === "number";
    const previous = header.getAttribute("aria-sort");
    let descending = numeric && header.dataset.better !== "low";
    if (previous) descending = previous === "ascending";
    for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    for (const body of table.tBodies) {
      const rows = Array.from(body.rows).filter((row) => !row.classList.contains("fixed"));
      rows.sort((first, second) => {
        const a = valueOf(first, index);
        const b = valueOf(second, index);
        if (a === "" || b === "") return (a === "") - (b === "");
        const order = compare(a, b, numeric);
        return descending ? -order : order;
      });
      for (const row of rows) body.appendChild(row);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const header of document.querySelectorAll("table.sortable th[data-sort]")) {
      header.tabIndex = 0;
      header.classList.add("sortable-header");
      header.addEventListener("click", () => sortTable(header.closest("table"), header));
      header.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortTable(header.closest("table"), header);
        }
      });
    }
  });
})();
