// Optional conveniences: the page reads fully without them.
(function () {
  "use strict";
  var controls = document.getElementById("controls");
  var onlyProblems = document.getElementById("only-problems");
  var filterText = document.getElementById("filter-text");
  controls.hidden = false;

  function matches(el, query) {
    var wanted = !onlyProblems.checked || el.classList.contains("problem");
    var name = (el.getAttribute("data-name") || "").toLowerCase();
    return wanted && (query === "" || name.indexOf(query) >= 0);
  }

  function apply() {
    var query = filterText.value.trim().toLowerCase();
    document.querySelectorAll("details.case, .card").forEach(function (el) {
      el.hidden = !matches(el, query);
    });
  }

  function setAll(open) {
    document.querySelectorAll("details.case").forEach(function (d) {
      d.open = open;
    });
  }

  // Following a matrix link opens the case it points to.
  function openTarget() {
    var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === "DETAILS") {
      target.open = true;
    }
  }

  onlyProblems.addEventListener("change", apply);
  filterText.addEventListener("input", apply);
  document.getElementById("expand-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll(false); });
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
