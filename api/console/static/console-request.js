/* A request's page: new messages and changes to this request (from any channel) are
   fetched and swapped in without a reload; the reply and note boxes are outside the
   swapped parts, so nothing typed is lost. Canned responses can be inserted into the
   reply box before sending. */
"use strict";

(function () {
  var heading = document.getElementById("request-heading");
  var requestId = heading ? Number(heading.dataset.requestId) : 0;
  var timer = null;

  function focusedIn(id) {
    var el = document.getElementById(id);
    return el && el.contains(document.activeElement);
  }

  function refresh() {
    timer = null;
    ConsoleLive.refetch().then(function (doc) {
      if (!doc) return;
      var changed = false;
      ["request-top", "request-bottom"].forEach(function (id) {
        if (focusedIn(id)) {
          document.getElementById(id).addEventListener("focusout", schedule, { once: true });
          return;
        }
        changed = ConsoleLive.swap(doc, id) || changed;
      });
      if (changed) ConsoleLive.announce(ConsoleLive.t("request_updated"));
    });
  }

  function schedule() {
    if (timer) return;
    timer = window.setTimeout(refresh, 200);
  }

  ConsoleLive.listen(function (frame) {
    var data = frame.data || {};
    if (frame.type === "reconnected" ||
        (frame.type === "request_updated" && data.id === requestId) ||
        (frame.type === "new_message" && data.request === requestId)) {
      schedule();
    }
  });

  var insert = document.getElementById("canned-insert");
  var select = document.getElementById("canned-select");
  var reply = document.getElementById("reply-content");
  if (insert && select && reply) {
    insert.hidden = false;
    insert.addEventListener("click", function () {
      var option = select.options[select.selectedIndex];
      if (!option) return;
      var text = option.getAttribute("data-text") || "";
      var start = reply.selectionStart || 0;
      var end = reply.selectionEnd || 0;
      reply.value = reply.value.slice(0, start) + text + reply.value.slice(end);
      reply.focus();
      reply.selectionStart = reply.selectionEnd = start + text.length;
    });
  }
})();
