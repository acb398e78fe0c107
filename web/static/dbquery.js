// dbquery: a little progressive enhancement. Every page works without it.
"use strict";

function csrfToken() {
  var meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// Reason dialogs: a button with data-open opens the <dialog> of that id.
document.addEventListener("click", function (event) {
  var opener = event.target.closest("[data-open]");
  if (opener) {
    var dialog = document.getElementById(opener.getAttribute("data-open"));
    if (dialog && dialog.showModal) { dialog.showModal(); }
    return;
  }
  var closer = event.target.closest("[data-close]");
  if (closer) {
    var open = closer.closest("dialog");
    if (open) { open.close(); }
  }
});

// The query box or the file input, whichever the chosen kind of submission needs.
function showSubmissionKind() {
  var form = document.getElementById("new-request");
  if (!form) { return; }
  var checked = form.querySelector('input[name="submission_type"]:checked');
  var script = checked && checked.value === "script";
  form.querySelector(".when-query").hidden = script;
  form.querySelector(".when-script").hidden = !script;
}
document.addEventListener("change", function (event) {
  if (event.target.name === "submission_type") { showSubmissionKind(); }
});
document.addEventListener("DOMContentLoaded", showSubmissionKind);

// Live status: while a request is pending or running, reload its page when the status moves.
document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("live");
  if (!live) { return; }
  var id = live.getAttribute("data-request");
  var seen = live.getAttribute("data-status");
  function poll() {
    fetch("/api/v1/requests/" + encodeURIComponent(id), {
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken() }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (body) {
      if (body && body.status !== seen) { window.location.reload(); return; }
      window.setTimeout(poll, 1500);
    }).catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1500);
});
