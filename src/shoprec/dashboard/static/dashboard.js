// shoprec dashboard: the only script (served from the package, no CDN). Pages work without it;
// it just submits the platform selector when it changes.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
});
