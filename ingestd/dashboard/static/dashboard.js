// ingestd dashboard: live refresh without a framework. An element with data-live="N" is
// replaced every N seconds by the same element of a fresh copy of this page (plain fetch,
// same origin). Paused while the tab is hidden or while the user is typing in a form.
(function () {
  "use strict";
  function refresh(el, seconds) {
    setTimeout(function tick() {
      var busy = document.activeElement && el.contains(document.activeElement) &&
        /INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName);
      if (document.hidden || busy) { setTimeout(tick, seconds * 1000); return; }
      fetch(window.location.href, { headers: { "X-Requested-With": "fetch" }, cache: "no-store" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-live]");
          if (fresh) {
            el.replaceChildren.apply(el, Array.from(fresh.childNodes));
            el.setAttribute("data-refreshed", String(Date.now()));
            var next = Number(fresh.getAttribute("data-live"));
            if (next > 0) { setTimeout(tick, next * 1000); }
          }
        })
        .catch(function () { setTimeout(tick, seconds * 4000); });
    }, seconds * 1000);
  }
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var seconds = Number(el.getAttribute("data-live"));
    if (seconds > 0) { refresh(el, seconds); }
  });
})();
