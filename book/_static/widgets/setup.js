// Loaded before embed-amd.js on pages with saved ipywidgets state (nb_ipywidgets_js in _config.yml).
(function () {
  // The widget manager's CSS fetches its Font Awesome fonts from the folder of its AMD modules, which
  // RequireJS would place next to the page. Map that folder onto this one: a global `require` object
  // defined before require.js loads is its configuration.
  var script = document.currentScript;
  if (script && script.src) {
    var here = new URL(".", script.src).href;
    window.__jupyter_widgets_assets_path__ = here;
    if (typeof window.require === "undefined") {
      window.require = { paths: { "@jupyter-widgets/html-manager/dist": here.replace(/\/$/, "") } };
    }
  }
  // ipywidgets typesets widget labels with the MathJax 2 call MathJax.Hub.Queue; the book loads
  // MathJax 3, which has no Hub. Map the call onto MathJax 3 once MathJax (a deferred script) is in.
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || mj.Hub) return;
    mj.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        var typeset = function () {
          if (window.MathJax.typesetPromise) {
            window.MathJax.typesetPromise(element ? [element] : undefined).catch(function () {});
          }
        };
        if (mj.startup && mj.startup.promise) mj.startup.promise.then(typeset);
        else typeset();
      }
    };
  });
})();
