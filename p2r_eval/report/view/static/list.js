// The sample list of one task: filters, search, sort and pages over window.P2R_ROWS.
// Every value is written with textContent: model and annotation text is shown, never parsed.
(function () {
  "use strict";
  const PAGE_SIZE = 100;
  const rows = window.P2R_ROWS || [];
  const controls = {
    status: document.getElementById("filter-status"),
    kind: document.getElementById("filter-kind"),
    cat: document.getElementById("filter-cat"),
    search: document.getElementById("filter-search"),
    sort: document.getElementById("sort"),
  };
  const body = document.getElementById("sample-rows");
  const shown = document.getElementById("shown-count");
  const pageLabel = document.getElementById("page-label");
  const previous = document.getElementById("page-previous");
  const next = document.getElementById("page-next");
  let page = 0;

  function matches(row, query) {
    if (controls.status.value && row.status !== controls.status.value) return false;
    if (controls.kind.value && !row.kinds.includes(controls.kind.value)) return false;
    if (controls.cat.value && !row.cats.includes(controls.cat.value)) return false;
    if (query && !(row.question.toLowerCase().includes(query) ||
                   row.output.toLowerCase().includes(query))) return false;
    return true;
  }

  function selected() {
    const query = controls.search.value.trim().toLowerCase();
    const list = rows.filter((row) => matches(row, query));
    if (controls.sort.value === "longest") list.sort((a, b) => b.words - a.words || a.n - b.n);
    if (controls.sort.value === "shortest") list.sort((a, b) => a.words - b.words || a.n - b.n);
    return list;
  }

  function cell(tr, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function rowElement(row) {
    const tr = document.createElement("tr");
    tr.className = "sample-row";
    cell(tr, String(row.n), "num");
    const link = document.createElement("a");
    link.href = row.n + ".html";
    link.textContent = row.id;
    cell(tr, "").appendChild(link);
    const badge = document.createElement("span");
    badge.className = "status status-" + row.status.replace(/ /g, "-");
    badge.textContent = row.status;
    cell(tr, "").appendChild(badge);
    cell(tr, row.kinds.join(", "));
    cell(tr, row.question, "question");
    cell(tr, String(row.words), "num");
    cell(tr, row.score === null ? "–" : row.score.toFixed(3), "num");
    return tr;
  }

  function render() {
    const list = selected();
    const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    const fragment = document.createDocumentFragment();
    list.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).forEach((row) => {
      fragment.appendChild(rowElement(row));
    });
    body.replaceChildren(fragment);
    shown.textContent = String(list.length);
    pageLabel.textContent = "page " + (page + 1) + " of " + pages;
    previous.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  function applyHash() {
    const wanted = new URLSearchParams(window.location.hash.slice(1));
    for (const name of ["status", "kind", "cat"]) {
      if (wanted.has(name)) controls[name].value = wanted.get(name);
    }
  }

  for (const control of Object.values(controls)) {
    control.addEventListener("input", () => { page = 0; render(); });
  }
  previous.addEventListener("click", () => { page -= 1; render(); });
  next.addEventListener("click", () => { page += 1; render(); });
  window.addEventListener("hashchange", () => { applyHash(); page = 0; render(); });
  applyHash();
  render();
})();
