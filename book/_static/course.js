// Loaded in the page head (_config.yml, html_js_files) to work around a Chromium behaviour seen on machines
// without a CJK font: text laid out while the bundled "Course CJK" subset font (course.css) is still loading
// can keep showing empty boxes after the font arrives. So start loading the font at once, and when it is
// in, set a font property that makes the browser lay the text out again (the dummy variation axis in
// course.css changes nothing else). Every page has Chinese text: the glossary's title in the side bar.
(function () {
  var fonts = document.fonts;
  if (!fonts || !fonts.load) return;
  fonts.load('1em "Course CJK"', "\u4e2d").then(function (faces) {
    if (faces.length) document.documentElement.classList.add("course-cjk-loaded");
  }, function () {});
})();

// The language switch: every page of the English edition links to the same page of the Chinese edition,
// built into zh/ under the site root, and back. The site root is the page's Sphinx content root.
document.addEventListener("DOMContentLoaded", function () {
  var root = document.documentElement.dataset.content_root;
  var bar = document.querySelector(".article-header-buttons");
  if (root === undefined || !bar) return;
  var here = new URL(window.location.href);
  var base = new URL(root, here);                       // this edition's root
  var zh = (document.documentElement.lang || "").toLowerCase().indexOf("zh") === 0;
  var page = here.pathname.slice(base.pathname.length);  // the page, relative to the root
  var site = zh ? new URL("../", base) : base;            // the English edition's root
  var link = document.createElement("a");
  link.href = new URL((zh ? "" : "zh/") + page, site).href + here.hash;
  link.textContent = zh ? "English" : "中文";
  link.className = "btn btn-sm course-language";
  link.title = zh ? "Read this page in English" : "阅读本页中文版";
  bar.insertBefore(link, bar.firstChild);
});
